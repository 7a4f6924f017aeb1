"""Training reliability: checkpoints only from finite states, --resume-with, checks before the run
folder is written, the data fingerprint, outputs never inside inputs."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from msnlan.cli import main
from msnlan.errors import ConfigError, DataError
from msnlan.results.runs import read_log
from msnlan.training import checkpoint as ckpt
from msnlan.training.engine import TrainingDiverged, train

from test_training import TINY, data, one_thread, run  # noqa: F401 (fixtures)


def interrupted_at(monkeypatch, iteration: int):
    """Make the run stop right after it wrote last.pt at `iteration` (as a kill would)."""
    real = ckpt.save

    def save(obj, path):
        real(obj, path)
        if str(path).endswith("last.pt") and obj.get("iteration") == iteration:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save", save)


def test_resume_with_continues_a_diverged_run_with_a_lower_lr(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupted_at(m, 4)
        with pytest.raises(KeyboardInterrupt):
            run(data, out)
    # continuing with an absurd lr diverges; the message names the checkpoint that exists
    with pytest.raises(TrainingDiverged) as exc:
        run(data, out, resume_with=["lr=1e30"])
    msg = str(exc.value)
    assert f"{out / 'last.pt'} (iteration 4)" in msg and "--resume-with lr=" in msg
    state = ckpt.load_train_state(out / "last.pt")
    assert state["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # the documented way out: the same command with a lower lr continues from iteration 4
    run(data, out, resume_with=["lr=1e-4"])
    assert (out / "final.pt").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert [e["settings"] for e in config["resumed_with"]] == [{"lr": 1e30}, {"lr": 1e-4}]
    assert [e["iteration"] for e in config["resumed_with"]] == [4, 4]
    assert config["training"]["lr"] == 5e-4  # the run's identity is unchanged
    log = read_log(out / "log.csv")
    assert log.set_index("iteration").loc[5, "lr"] == 1e-4  # log.csv shows the rate in use
    assert run(data, out)["status"] == "finished"  # the plain command still recognises the run


def test_resume_with_is_refused_for_other_keys_and_without_last_pt(data, tmp_path):
    with pytest.raises(ConfigError, match="'patch_size' cannot change when continuing"):
        run(data, tmp_path / "a", resume_with=["patch_size=8"])
    with pytest.raises(ConfigError, match="has no last.pt"):
        run(data, tmp_path / "b", resume_with=["lr=1e-4"])
    assert not (tmp_path / "b" / "config.yaml").exists()


def test_cli_resume_with_option(data, tmp_path, capsys):
    code = main(["train", "--variant", "msnlan", "--scale", "2", "--train-data", str(data[0]), "--val-data",
                 str(data[1]), "--out", str(tmp_path / "r"), "--preset", "demo", "--resume-with", "lr=1e-4"])
    assert code == 2 and "--resume-with continues a run from its last.pt" in capsys.readouterr().err


def test_a_run_failing_before_its_first_step_writes_nothing(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DataError, match="patch_size=48"):
        run(data, out, overrides={"patch_size": 48})
    assert not out.exists()
    with pytest.raises(Exception, match="only 0 CUDA device"):
        train("msnlan", 2, data[0], data[1], out, preset="demo", overrides=TINY, device="cuda:7",
              stream=io.StringIO(), gpu_count=0)
    assert not out.exists()
    assert run(data, out, overrides={"iterations": 2})["status"] == "trained"  # no --restart needed


def test_changed_training_images_are_named_on_resume(data, tmp_path, monkeypatch):
    train_copy = tmp_path / "train"
    shutil.copytree(data[0], train_copy)
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupted_at(m, 4)
        with pytest.raises(KeyboardInterrupt):
            run((train_copy, data[1]), out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert len(config["data"]["train_fingerprint"]) == 64 and len(config["data"]["val_fingerprint"]) == 64
    img = np.asarray(Image.open(train_copy / "HR" / "img1.png"))
    Image.fromarray(np.ascontiguousarray(img[::-1])).save(train_copy / "HR" / "img1.png")  # rotated
    with pytest.raises(ConfigError, match=r"changed: HR/img1.png") as exc:
        run((train_copy, data[1]), out)
    assert "data.train_fingerprint" in str(exc.value)


def test_run_folder_inside_the_training_data_is_refused(data, tmp_path):
    train_copy = tmp_path / "train"
    shutil.copytree(data[0], train_copy)
    with pytest.raises(ConfigError, match="lies inside the --train-data"):
        run((train_copy, data[1]), train_copy / "HR" / "run")
    assert not (train_copy / "HR" / "run").exists()


def test_unreadable_checkpoint_keeps_the_reason_and_never_advises_unsafe_loading(tmp_path):
    from fractions import Fraction  # any class a weights-only load refuses to construct

    path = tmp_path / "foreign.pt"
    torch.save({"model": Fraction(1, 3)}, path)
    with pytest.raises(ckpt.CheckpointError) as exc:
        ckpt.load(path)
    msg = str(exc.value)
    assert "fractions.Fraction" in msg and "weights_only" not in msg and "Re-running" not in msg
    assert "Accepted are" in msg and "final.pt" in msg
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ckpt.CheckpointError, match="cannot be read: .*Error: .+\\. Accepted are"):
        ckpt.load(path)


def test_missing_base_names_the_referring_file_and_key(tmp_path):
    from msnlan.variants import resolve_variant

    child = tmp_path / "child.yaml"
    child.write_text("_base_: does_not_exist\n")
    with pytest.raises(ConfigError) as exc:
        resolve_variant(child)
    assert str(exc.value).startswith(f"{child}: key '_base_': unknown variant 'does_not_exist'")
