"""Training engine: presets, patch sampling, determinism, run-directory rules, checkpoints."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from msnlan.errors import CheckpointError, ConfigError, DataError
from msnlan.training import checkpoint as ckpt
from msnlan.training.data import PatchSampler, PrefetchingSampler, TrainImage, augment, training_images
from msnlan.training.engine import TrainingDiverged, train
from msnlan.results.runs import read_log, truncate_log
from msnlan.training.presets import list_presets, load_preset, parse_value
from msnlan.training.progress import Progress

# a network small enough to train a few iterations in well under a second
TINY = {"model.n_feats": 8, "model.n_resgroups": 2, "model.n_resblocks": 1, "model.patch_sizes": [3],
        "model.reduction": 4, "batch_size": 2, "patch_size": 12, "iterations": 12, "val_interval": 6,
        "checkpoint_interval": 4, "log_interval": 1, "milestones": [5, 9],
        "stages": None}  # one stage: the demo preset's fine-tuning stage is tested in test_stages.py


def write_images(folder: Path, n: int, size: int, seed: int, gray: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "HR").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y, x = np.mgrid[0:size, 0:size]
        base = 128 + 90 * np.sin(x / (2.5 + i)) * np.cos(y / (3.5 + i))
        img = base[..., None] + rng.integers(-15, 16, (size, size, 1 if gray else 3))
        img = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(img[..., 0] if gray else img).save(folder / "HR" / f"img{i}.png")
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and unaffected by other processes on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_images(root / "train", 3, 40, 0), write_images(root / "val", 2, 24, 1)


def run(data, out, stream=None, **kw):
    overrides = {**TINY, **kw.pop("overrides", {})}
    return train("msnlan", kw.pop("scale", 2), data[0], data[1], out, preset="demo", overrides=overrides,
                 device="cpu", stream=stream or io.StringIO(), **kw)


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- presets ------------------------------------------------------------------------------------

def test_paper_preset_is_the_published_recipe():
    s = load_preset("paper")["settings"]
    assert (s["patch_size"], s["batch_size"], s["lr"], s["loss"]) == (48, 16, 2e-4, "l1")
    assert (s["betas"], s["eps"], s["weight_decay"], s["gamma"]) == ([0.9, 0.999], 1e-8, 0.0, 0.5)
    assert s["iterations"] == 1000 * 1000 and s["milestones"] == [200000, 400000, 600000, 800000]
    assert s["augment"] and s["model"] == {}
    assert {"paper", "demo"} <= set(list_presets())


def test_demo_preset_is_tiny():
    s = load_preset("demo")["settings"]
    assert s["model"]["n_feats"] <= 16 and s["iterations"] <= 1000


def test_set_overrides_and_their_errors():
    s = load_preset("demo", ["lr=1e-4", "model.n_feats=4", "milestones=[3, 7]", "amp=bf16"])["settings"]
    assert s["lr"] == 1e-4 and s["model"]["n_feats"] == 4 and s["milestones"] == [3, 7] and s["amp"] == "bf16"
    assert parse_value("2e-4") == 2e-4 and parse_value("none") == "none" and parse_value("null") is None
    with pytest.raises(ConfigError, match="'learning_rate'"):
        load_preset("demo", ["learning_rate=1"])
    with pytest.raises(ConfigError, match="'batch_size'"):
        load_preset("demo", ["batch_size=0"])
    with pytest.raises(ConfigError, match="'amp'.*fp16"):
        load_preset("demo", ["amp=fp16"])
    with pytest.raises(ConfigError, match="key=value"):
        load_preset("demo", ["lr"])


def test_bad_preset_file_names_file_and_key(tmp_path):
    good = yaml.safe_load((Path(load_preset("demo")["source"])).read_text())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**good, "itertions": 5}))
    with pytest.raises(ConfigError) as exc:
        load_preset(path)
    assert str(path) in str(exc.value) and "itertions" in str(exc.value)
    path.write_text(yaml.safe_dump({**good, "val_interval": "often"}))
    with pytest.raises(ConfigError, match="val_interval"):
        load_preset(path)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_unknown_model_override_bad_scale_and_missing_data_are_refused(data, tmp_path):
    with pytest.raises(ConfigError, match="model.n_feets"):
        run(data, tmp_path / "r", overrides={"model.n_feets": 4})
    with pytest.raises(ConfigError, match="--scale 5"):
        run(data, tmp_path / "r", scale=5)
    with pytest.raises(DataError, match="--val-data .*nowhere"):
        run((data[0], tmp_path / "nowhere"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


# --- patch sampling ----------------------------------------------------------------------------

def _blocky_pair(name, h, w, s, seed):
    lr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return TrainImage(name, np.repeat(np.repeat(lr, s, 0), s, 1), lr)


def test_patches_are_aligned_under_all_eight_transforms():
    s = 3
    images = [_blocky_pair("a", 20, 17, s, 0), _blocky_pair("b", 9, 30, s, 1)]
    sampler = PatchSampler(images, s, 8, 64, seed=3)
    lr, hr = sampler.sample()
    assert lr.shape == (64, 8, 8, 3) and hr.shape == (64, 24, 24, 3)
    for a, b in zip(lr, hr):  # HR is LR block-upsampled, so an aligned pair satisfies this exactly
        assert np.array_equal(np.repeat(np.repeat(a, s, 0), s, 1), b)
    patch = np.arange(2 * 3 * 3).reshape(2, 3, 3).astype(np.uint8)
    variants = {augment(patch, m).tobytes() + bytes(augment(patch, m).shape) for m in range(8)}
    assert len(variants) == 8


def test_sampler_state_resumes_the_sequence_and_prefetch_keeps_it():
    images = [_blocky_pair("a", 20, 20, 2, 0)]
    plain = PatchSampler(images, 2, 6, 4, seed=5)
    batches = [plain.sample() for _ in range(6)]
    again = PatchSampler(images, 2, 6, 4, seed=5)
    for _ in range(3):
        again.sample()
    state = again.state_dict()
    restored = PatchSampler(images, 2, 6, 4, seed=99)
    restored.load_state_dict(state)
    assert all(np.array_equal(restored.sample()[0], b[0]) for b in batches[3:])

    prefetch = PrefetchingSampler(PatchSampler(images, 2, 6, 4, seed=5), depth=3)
    try:
        got = [prefetch.sample() for _ in range(2)]
        state = prefetch.state_dict()  # taken while later batches are already made
    finally:
        prefetch.close()
    assert all(np.array_equal(g[0], b[0]) for g, b in zip(got, batches))
    restored = PatchSampler(images, 2, 6, 4, seed=0)
    restored.load_state_dict(state)
    assert np.array_equal(restored.sample()[1], batches[2][1])


class _Pair:
    def __init__(self, name, hr, lr):
        self.name, self.hr, self.lr = name, hr, lr


def test_training_images_gray_small_and_mismatched():
    gray = _Pair("g", np.zeros((20, 20), np.uint8), np.zeros((10, 10), np.uint8))
    small = _Pair("tiny", np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    warnings = []
    images = training_images([gray, small], 2, 6, warn=warnings.append)
    assert [im.name for im in images] == ["g"] and images[0].hr.shape == (20, 20, 3)
    assert "tiny" in warnings[0]
    with pytest.raises(DataError, match="patch_size=6"):
        training_images([small], 2, 6, source="set X", warn=warnings.append)
    bad = _Pair("odd", np.zeros((20, 20, 3), np.uint8), np.zeros((9, 10, 3), np.uint8))
    with pytest.raises(DataError, match="odd"):
        training_images([bad], 2, 6)


# --- runs ----------------------------------------------------------------------------------------

def test_run_writes_the_contract_files_and_is_deterministic(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = run(data, a)
    assert summary["status"] == "trained" and summary["iterations"] == 12
    for name in ("config.yaml", "environment.json", "log.csv", "last.pt", "best.pt", "final.pt"):
        assert (a / name).is_file(), name
    env = json.loads((a / "environment.json").read_text())
    assert env["attention_mode"] == "auto" and env["attention_form"] == "fast"  # the form that ran
    rows = read_log(a / "log.csv")
    assert list(rows.iteration) == list(range(1, 13))
    assert list(rows.iteration[rows.val_psnr.notna()]) == [6, 12]
    assert list(rows.lr) == [5e-4] * 5 + [2.5e-4] * 4 + [1.25e-4] * 3
    assert math.isclose(rows.val_psnr.iloc[-1], summary["final_val_psnr"])
    config = yaml.safe_load((a / "config.yaml").read_text())
    assert config["variant"]["model"]["n_feats"] == 8 and config["training"]["lr"] == 5e-4
    assert config["data"]["train"] == str(data[0].resolve()) and config["preset"]["name"] == "demo"
    final = torch.load(a / "final.pt", weights_only=True)
    assert final["scale"] == 2 and final["preset"] == "demo" and final["iterations"] == 12

    run(data, b)
    assert_same_weights(weights(a / "final.pt"), weights(b / "final.pt"))
    c = tmp_path / "c"
    run(data, c, overrides={"seed": 2})
    assert not all(torch.equal(x, y) for x, y in zip(weights(a / "final.pt").values(),
                                                     weights(c / "final.pt").values()))
    d = tmp_path / "d"  # a background batch thread gives the same batches
    run(data, d, overrides={"num_workers": 1})
    assert_same_weights(weights(a / "final.pt"), weights(d / "final.pt"))

    model = ckpt.load_model(a / "final.pt", "cpu")
    assert not model.training and model.checkpoint_info["iterations"] == 12
    assert_same_weights({k: v for k, v in model.state_dict().items()}, weights(a / "final.pt"))
    assert run(data, a)["status"] == "finished"


def test_changed_config_is_refused_and_restart_moves_the_run_aside(data, tmp_path):
    out = tmp_path / "run"
    run(data, out, overrides={"iterations": 4})
    with pytest.raises(ConfigError) as exc:
        run(data, out, overrides={"iterations": 4, "lr": 1e-3, "model.n_feats": 4})
    assert "training.lr" in str(exc.value) and "variant.model.n_feats" in str(exc.value)
    assert "iterations" not in str(exc.value)
    run(data, out, overrides={"iterations": 4, "lr": 1e-3}, restart=True)
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "final.pt").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["lr"] == 1e-3


def test_truncated_and_foreign_checkpoints_are_refused(data, tmp_path):
    out = tmp_path / "run"
    run(data, out, overrides={"iterations": 8})
    (out / "final.pt").unlink()
    blob = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=str(out / "last.pt")):
        run(data, out, overrides={"iterations": 8})
    torch.save({"state_dict": {"w": torch.zeros(2)}}, out / "last.pt")
    with pytest.raises(CheckpointError, match="not an msnlan training state"):
        run(data, out, overrides={"iterations": 8})
    with pytest.raises(CheckpointError, match="not an msnlan weights file"):
        ckpt.load_model(out / "last.pt")


def test_nan_stop_never_checkpoints_diverged_weights_nor_claims_a_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    # an absurd lr: Adam moves every weight by ~1e30 in one step; the loss of step 1 is still finite,
    # but the weights it leaves overflow the next forward: they must not become last.pt
    with pytest.raises(TrainingDiverged, match=r"after iteration 1 ") as exc:
        run(data, out, overrides={"lr": 1e30, "checkpoint_interval": 1, "milestones": []})
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
    assert "No checkpoint had been written yet" in str(exc.value) and "is kept" not in str(exc.value)
    assert not (out / "final.pt").exists()


def test_init_from_x2_skips_only_the_upsampler(data, tmp_path):
    x2 = tmp_path / "x2"
    run(data, x2, overrides={"iterations": 2})
    x2_weights = weights(x2 / "final.pt")
    x4 = tmp_path / "x4"
    stream = io.StringIO()
    run(data, x4, scale=4, init_from=x2 / "final.pt", stream=stream,
        overrides={"iterations": 1, "patch_size": 6, "lr": 1e-12})
    env = yaml.safe_load((x4 / "environment.json").read_text())["init_from"]
    skipped = env["skipped"]
    assert skipped and all(reason == "upsampler" or "shape" in reason for reason in skipped.values())
    assert env["initialised_fresh"], "the x4 upsampler has weights x2 does not"
    assert "skipped" in stream.getvalue()
    model = ckpt.build_network(yaml.safe_load((x4 / "config.yaml").read_text())["variant"], 4)
    upsampler = ckpt.upsampler_prefixes(model)
    x4_state = torch.load(x4 / "last.pt", weights_only=True)["model"]
    for key, value in x2_weights.items():
        if key not in skipped:  # lr 1e-12 keeps them equal to within float rounding
            assert torch.allclose(value, x4_state[key], atol=1e-6), key
    assert all(any(k.startswith(p + ".") for p in upsampler) for k in skipped if skipped[k] == "upsampler")


def test_init_from_another_variant_is_refused(data, tmp_path):
    x2 = tmp_path / "x2"
    run(data, x2, overrides={"iterations": 1})
    with pytest.raises(CheckpointError, match="model.n_feats"):
        run(data, tmp_path / "x3", scale=3, init_from=x2 / "final.pt",
            overrides={"iterations": 1, "model.n_feats": 4, "patch_size": 8})


def test_log_truncation_drops_later_and_partial_rows(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("iteration,loss,lr,val_psnr,seconds,images_per_s\n1,2.0,0.1,,1.0,3.0\n2,2.0,0.1,,1.0,3.0\n"
                    "3,2.0,0.1,,1.0,3.0\n4,2.0,0.")
    truncate_log(path, 2)
    assert list(read_log(path).iteration) == [1, 2]


def test_progress_plain_lines_off_a_terminal():
    stream = io.StringIO()
    progress = Progress(10, 0, stream=stream, tty=False, every_s=0)
    progress.update(5, 1.5, 1e-4, 10.0)
    progress.update(10, 1.0, 1e-4, 10.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "iteration 5/10" in lines[0] and "ETA" in lines[0] and "\r" not in stream.getvalue()


def test_cli_reports_bad_set_key(data, tmp_path, capsys):
    from msnlan.cli import main

    code = main(["train", "--variant", "msnlan", "--scale", "2", "--train-data", str(data[0]), "--val-data",
                 str(data[1]), "--out", str(tmp_path / "r"), "--preset", "demo", "--set", "bogus=1"])
    assert code == 2 and "bogus" in capsys.readouterr().err


def test_bf16_autocast_and_channels_last_run(data, tmp_path):
    out = tmp_path / "run"
    summary = run(data, out, overrides={"iterations": 2, "amp": "bf16", "channels_last": True})
    assert summary["status"] == "trained" and math.isfinite(summary["final_val_psnr"])
    assert all(torch.isfinite(v).all() for v in weights(out / "final.pt").values() if v.is_floating_point())
    assert json.loads((out / "environment.json").read_text())["memory_format"] == "channels_last"


def test_channels_last_auto_is_cuda_only(data, tmp_path):
    from msnlan.training.engine import use_channels_last

    assert use_channels_last("auto", torch.device("cuda")) and not use_channels_last("auto", torch.device("cpu"))
    assert use_channels_last(True, torch.device("cpu")) and not use_channels_last(False, torch.device("cuda"))
    for preset in ("demo", "paper"):
        assert load_preset(preset)["settings"]["channels_last"] == "auto"
    with pytest.raises(ConfigError, match="'channels_last'"):
        load_preset("demo", ["channels_last=sometimes"])
    out = tmp_path / "run"  # the demo preset on the CPU: auto keeps the default format, and says so
    run(data, out, overrides={"iterations": 1})
    assert json.loads((out / "environment.json").read_text())["memory_format"] == "contiguous"


def test_a_run_resumes_under_another_memory_format(data, tmp_path):
    out = tmp_path / "run"  # e.g. a run started before the presets' channels_last: auto
    run(data, out, overrides={"iterations": 4, "channels_last": False})
    assert run(data, out, overrides={"iterations": 4, "channels_last": True})["status"] == "finished"
    with pytest.raises(ConfigError, match="training.amp"):  # what decides the weights is still compared
        run(data, out, overrides={"iterations": 4, "channels_last": True, "amp": "bf16"})


def test_adam_is_fused_and_a_resumed_run_keeps_its_implementation():
    from msnlan.training.engine import build_optimizer

    s = load_preset("paper")["settings"]
    model = torch.nn.Conv2d(3, 3, 3)
    assert build_optimizer(model, s, torch.device("cuda")).defaults["fused"] is True
    cpu = build_optimizer(model, s, torch.device("cpu"))
    assert cpu.defaults["fused"] is True and cpu.defaults["lr"] == s["lr"] and cpu.defaults["betas"] == tuple(s["betas"])
    # a checkpoint written before the optimiser was fused on the CPU resumes unfused, so the run's
    # remaining steps round as its first ones did
    older = torch.optim.Adam(model.parameters(), lr=s["lr"])
    model(torch.rand(1, 3, 5, 5)).sum().backward()
    older.step()
    cpu.load_state_dict(older.state_dict())
    assert not cpu.param_groups[0]["fused"]
    cpu.step()


def test_a_run_directory_in_use_is_refused(data, tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # what another training process holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(Exception, match="being trained by another process"):
            run(data, out, overrides={"iterations": 1})
