"""Training stages: the preset schema, the stage boundary, kills in either stage, the report's view."""
from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path

import pytest
import torch
import yaml

from msnlan.errors import ConfigError
from msnlan.results.runs import RunInfo, find_runs, read_log
from msnlan.training import checkpoint as ckpt
from msnlan.training import engine
from msnlan.training.engine import train
from msnlan.training.presets import list_presets, load_preset
from msnlan.training.stages import resolve_stages, stage_summary

from test_resume import finish, kill_when, log_rows, start
from test_training import TINY, assert_same_weights, data, one_thread, weights, write_images  # noqa: F401 (fixtures)

# the tiny network of test_training with the demo preset's two stages, shrunk: 8 + 6 iterations
STAGED = {**{k: v for k, v in TINY.items() if k != "stages"}, "iterations": 8, "milestones": [5],
          "val_interval": 4, "checkpoint_interval": 3,
          "stages.2.iterations": 6, "stages.2.patch_size": 16, "stages.2.lr": 2e-4, "stages.2.milestones": [3]}


def run(data, out, overrides=None, **kw):
    return train("msnlan", 2, data[0], data[1], out, preset="demo", overrides={**STAGED, **(overrides or {})},
                 device="cpu", stream=kw.pop("stream", None) or io.StringIO(), **kw)


# --- the schema -----------------------------------------------------------------------------------

def test_paper_preset_has_both_stages_and_paper_stage1_is_the_first():
    paper = load_preset("paper")
    first, second = resolve_stages(paper["settings"])
    assert (first["patch_size"], first["batch_size"], first["lr"], first["iterations"]) == (48, 16, 2e-4, 1_000_000)
    assert first["milestones"] == [200000, 400000, 600000, 800000]
    assert (second["patch_size"], second["batch_size"], second["lr"], second["iterations"]) == (64, 16, 1e-4, 250_000)
    assert second["milestones"] == [100000, 200000] and second["first_iteration"] == 1_000_000
    assert second["gamma"] == 0.5 and second["betas"] == [0.9, 0.999]  # shared keys
    assert "inferred" in paper["description"] and "inferred" in second["name"]
    text = Path(paper["source"]).read_text()
    for fact in ("finetune64x64", "option_test.py", "100-200", "250 epochs", "not confirmed", "paper_stage1"):
        assert fact in text, fact

    one = load_preset("paper_stage1")["settings"]
    assert "stages" not in one and {"paper", "paper_stage1", "demo"} <= set(list_presets())
    assert resolve_stages(one)[0] == {**first, "name": "stage 1"}


def test_demo_preset_has_a_small_second_stage_at_a_larger_patch():
    first, second = resolve_stages(load_preset("demo")["settings"])
    assert second["patch_size"] > first["patch_size"] and 10 <= second["iterations"] <= 100
    assert second["seed"] == first["seed"] + 1


def test_stage_overrides_and_their_errors(tmp_path):
    s = load_preset("demo", ["iterations=50", "stages.2.lr=1e-5", "stages.2.name=fine"])["settings"]
    first, second = resolve_stages(s)
    assert first["iterations"] == 50 and second["first_iteration"] == 50  # a stage without its own key inherits
    assert second["lr"] == 1e-5 and second["name"] == "fine" and first["lr"] == 5e-4
    assert [st["stage"] for st in stage_summary([first, second])] == [1, 2]
    assert "stages" not in load_preset("demo", ["stages=null"])["settings"] or \
        load_preset("demo", ["stages=null"])["settings"]["stages"] is None
    with pytest.raises(ConfigError, match="numbered 1 to 2"):
        load_preset("demo", ["stages.3.lr=1"])
    with pytest.raises(ConfigError, match="a stage sets only"):
        load_preset("demo", ["stages.2.gamma=0.1"])
    with pytest.raises(ConfigError, match="has no stages"):
        load_preset("paper_stage1", ["stages.2.lr=1"])
    with pytest.raises(ConfigError, match="stages"):
        load_preset("demo", ["stages.2.patch_size=0"])

    good = yaml.safe_load(Path(load_preset("demo")["source"]).read_text())
    path = tmp_path / "mine.yaml"
    for stages, word in (([{"name": "a"}], "stages"), ([{}, {"gamma": 0.1}], "gamma"),
                         ([{}, {"lr": "fast"}], "lr")):
        path.write_text(yaml.safe_dump({**good, "stages": stages}))
        with pytest.raises(ConfigError) as exc:
            load_preset(path)
        assert str(path) in str(exc.value) and word in str(exc.value), exc.value


# --- the boundary -----------------------------------------------------------------------------------

def test_stage_boundary_resets_lr_changes_patch_and_carries_the_weights(data, tmp_path, monkeypatch):
    samplers = []

    class Recording(engine.PatchSampler):
        def __init__(self, images, scale, patch_size, batch_size, seed, augment=True):
            samplers.append((patch_size, batch_size, seed))
            super().__init__(images, scale, patch_size, batch_size, seed, augment)

    monkeypatch.setattr(engine, "PatchSampler", Recording)
    out = tmp_path / "run"
    # stage 2 with an lr so small that its weights stay those stage 1 ended with (to float rounding)
    summary = run(data, out, {"stages.2.lr": 1e-12, "stages.2.milestones": []})
    assert samplers == [(12, 2, 1), (16, 2, 2)]
    assert summary["iterations"] == 14 and summary["final"] == str(out / "final.pt")

    rows = read_log(out / "log.csv")
    assert list(rows.iteration) == list(range(1, 15)) and list(rows.stage) == [1] * 8 + [2] * 6
    assert list(rows.lr) == [5e-4] * 5 + [2.5e-4] * 3 + [1e-12] * 6  # a fresh schedule at the boundary
    assert list(rows.iteration[rows.val_psnr.notna()]) == [4, 8, 12, 14]

    stage1, stage2 = weights(out / "stage1" / "final.pt"), weights(out / "stage2" / "final.pt")
    for key in stage1:
        assert torch.allclose(stage1[key], stage2[key], atol=1e-6), key
    state = ckpt.load_train_state(out / "stage2" / "last.pt")
    assert state["iteration"] == 6  # the stage's own count: a fresh optimiser, not stage 1's
    assert {int(v["step"]) for v in state["optimizer"]["state"].values()} == {6}

    final = torch.load(out / "final.pt", weights_only=True)
    assert_same_weights(final["model"], stage2)
    assert final["iterations"] == 14 and [s["stage"] for s in final["stages"]] == [1, 2]
    assert final["stages"][1]["first_iteration"] == 8 and final["best_iteration"] > 8
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert [(s["stage"], s["patch_size"], s["iterations"], s["lr"]) for s in config["stages"]] == \
        [(1, 12, 8, 5e-4), (2, 16, 6, 1e-12)]
    env = yaml.safe_load((out / "environment.json").read_text())
    assert [s["stage"] for s in env["sessions"]] == [1, 2] and env["stage_init"]["stage"] == 2
    assert ckpt.load_model(out / "final.pt").checkpoint_info["iterations"] == 14
    assert run(data, out, {"stages.2.lr": 1e-12, "stages.2.milestones": []})["status"] == "finished"


def test_one_stage_per_call_equals_all_stages_at_once(data, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    run(data, whole)
    first = run(data, split, until_stage=1)
    assert first["final"] == str(split / "stage1" / "final.pt") and not (split / "final.pt").exists()
    assert not (split / "stage2").exists()
    stream = io.StringIO()
    assert run(data, split, until_stage=1, stream=stream)["status"] == "finished"
    run(data, split, until_stage=2)
    assert_same_weights(weights(whole / "final.pt"), weights(split / "final.pt"))
    assert (whole / "log.csv").read_text().count("\n") == (split / "log.csv").read_text().count("\n")
    with pytest.raises(ConfigError, match="stages 1 to 2"):
        run(data, split, until_stage=3)
    with pytest.raises(ConfigError, match="no stages"):
        run(data, tmp_path / "one", {"stages": None}, until_stage=1)


def test_empty_stage_folder_is_no_leftover_but_stage_checkpoints_are(data, tmp_path):
    out = tmp_path / "run"
    (out / "stage1").mkdir(parents=True)  # what Snakemake makes before a train_stage job starts
    assert run(data, out, {"iterations": 2, "stages.2.iterations": 1}, until_stage=1)["status"] == "trained"
    (out / "config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"stage1/final.pt"):
        run(data, out, {"iterations": 2, "stages.2.iterations": 1})


def test_resume_with_changes_the_stage_in_progress_only(data, tmp_path):
    out = tmp_path / "run"
    run(data, out, until_stage=1)
    with pytest.raises(ConfigError, match="no stage of .* is in progress"):
        run(data, out, resume_with=["lr=1e-5"])
    run(data, out)
    for name in ("final.pt", "stage2/final.pt"):  # stage 2 back to its last checkpoint (its last iteration)
        (out / name).unlink()
    stream = io.StringIO()
    run(data, out, resume_with=["lr=1e-5"], stream=stream)
    assert str(out / "stage2" / "last.pt") in stream.getvalue()
    recorded = yaml.safe_load((out / "config.yaml").read_text())["resumed_with"]
    assert [e["iteration"] for e in recorded] == [6] and (out / "final.pt").is_file()


# --- SIGKILL in either stage ---------------------------------------------------------------------

def _rows(run_dir: Path) -> int:
    try:
        return (run_dir / "log.csv").read_text().count("\n") - 1
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_in_stage_two_and_at_the_boundary_resumes_bitwise(tmp_path):
    data = (write_images(tmp_path / "train", 3, 40, 0), write_images(tmp_path / "val", 2, 24, 1))
    settings = [f"{k}={v}" for k, v in TINY.items() if k not in ("stages", "iterations", "milestones")]
    settings += ["iterations=12", "milestones=[6]", "checkpoint_interval=3", "val_interval=6",
                 "stages.2.iterations=24", "stages.2.patch_size=16", "stages.2.milestones=[10,18]",
                 "stages.2.lr=3e-4"]
    reference = tmp_path / "reference"
    finish(start(reference, data, settings))

    rng = random.Random(os.getpid() ^ time.time_ns())
    at = rng.randint(12 + 4, 12 + 22)  # a row of stage 2 past its first checkpoint
    killed = tmp_path / "killed"
    boundary = kill_when(start(killed, data, settings), lambda: (killed / "stage1" / "final.pt").exists())
    in_stage2 = kill_when(start(killed, data, settings),
                           lambda: _rows(killed) >= at and (killed / "stage2" / "last.pt").exists())
    assert boundary or in_stage2, f"the run finished before it could be killed (row {at})"
    finish(start(killed, data, settings))

    ref, got = torch.load(reference / "final.pt", weights_only=True), torch.load(killed / "final.pt", weights_only=True)
    assert_same_weights(ref["model"], got["model"])
    assert_same_weights(weights(reference / "stage1" / "final.pt"), weights(killed / "stage1" / "final.pt"))
    ref_rows, got_rows = log_rows(reference), log_rows(killed)
    assert [r[0] for r in got_rows] == [str(i) for i in range(1, 37)]  # no duplicates after resume
    for column in (1, 2, 3, 6):  # loss, lr, validation PSNR, stage: bit for bit
        assert [r[column] for r in got_rows] == [r[column] for r in ref_rows], (column, at)
    lrs = {int(r[0]): float(r[2]) for r in ref_rows}
    assert lrs[12] == 2.5e-4 and lrs[13] == 3e-4 and lrs[23] == 1.5e-4 and lrs[31] == 7.5e-5


# --- the report's view -----------------------------------------------------------------------------

def test_report_reads_the_stages_marks_the_boundary_and_lists_them(data, tmp_path):
    from msnlan.report.plots import stage_boundaries, training_curves
    from msnlan.report.provenance_info import run_rows

    run(data, tmp_path / "results" / "runs" / "msnlan" / "x2")
    (info,) = find_runs(tmp_path / "results")
    assert [s["stage"] for s in info.stages] == [1, 2] and info.stage_starts == [8] and info.iterations == 14
    assert stage_boundaries([info]) == {2: [8]}
    row = run_rows([info])[0]
    assert row["patch_size"] == "12 → 16" and row["batch_size"] == 2 and row["iterations"] == 14
    assert row["stages"][1].startswith("2 (20x20 fine-tuning): 6 it from 8, batch 2, LR patch 16, lr 0.0002")
    assert training_curves([info], [2]) != training_curves([RunInfo(**{**info.__dict__, "config": {
        **info.config, "stages": None}})], [2])  # the boundary is drawn

    one = RunInfo("v", 2, tmp_path, {"training": {"iterations": 300, "patch_size": 16, "batch_size": 8, "lr": 1e-3}})
    assert one.stage_starts == [] and one.iterations == 300 and run_rows([one])[0]["patch_size"] == 16


# --- the workflow plan -------------------------------------------------------------------------------

def test_plan_counts_the_stages_and_names_their_weights(tmp_path):
    from msnlan.plan import PlanError, make_plan

    from test_plan import tiny_config

    plan = make_plan(tiny_config(tmp_path))
    assert plan.train_stages == 2
    assert plan.stage_weights("msnlan", 2, 1) == f"{plan.results}/runs/msnlan/x2/stage1/final.pt"
    one = make_plan(tiny_config(tmp_path, train={"preset": "demo", "overrides": {"stages": None}}))
    assert one.train_stages == 1
    with pytest.raises(PlanError, match="stages.3.lr"):
        make_plan(tiny_config(tmp_path, train={"preset": "demo", "overrides": {"stages.3.lr": 1.0}}))


def test_job_per_stage_off_puts_every_stage_in_the_train_job(tmp_path):
    from msnlan.plan import make_plan

    from test_plan import tiny_config

    assert make_plan(tiny_config(tmp_path)).job_per_stage is True  # the default: a wall time holds one stage
    plan = make_plan(tiny_config(tmp_path, train={"preset": "demo", "job_per_stage": False}))
    assert plan.train_stages == 2 and plan.job_per_stage is False
    demo = yaml.safe_load((Path(__file__).resolve().parent.parent / "config" / "config.yaml").read_text())
    assert demo["train"]["job_per_stage"] is False


# --- stages with several training seeds ---------------------------------------------------------------

def test_two_seed_plan_puts_the_stage_folders_in_the_seed_folders(tmp_path):
    from msnlan.plan import make_plan

    from test_plan import tiny_config

    plan = make_plan(tiny_config(tmp_path, seeds=[3, 5]))
    assert plan.seeded and plan.train_stages == 2
    assert plan.stage_weights("msnlan", 2, 1, 3) == f"{plan.results}/runs/msnlan/x2/seed3/stage1/final.pt"
    assert plan.stage_weights("{variant}", "{scale}", "{stage}", plan.seed_wildcard) == \
        f"{plan.results}/runs/{{variant}}/x{{scale}}/seed{{seed}}/stage{{stage}}/final.pt"
    # one seed: the layout of main, no seed level
    one = make_plan(tiny_config(tmp_path))
    assert one.stage_weights("msnlan", 2, 1, one.seed_wildcard) == f"{one.results}/runs/msnlan/x2/stage1/final.pt"


def test_stage_folders_are_no_runs_and_seed_folders_no_stages(data, tmp_path):
    from msnlan.report.plots import stage_boundaries, training_curves
    from msnlan.results.layout import run_dirs

    results = tmp_path / "results"
    for k in (3, 5):
        run(data, results / "runs" / "msnlan" / "x2" / f"seed{k}", {"seed": k})
    run(data, results / "runs" / "no_msnlab" / "x2")  # one-seed layout beside it
    found = [(v, s, k, p.relative_to(results).as_posix()) for v, s, k, p in run_dirs(results)]
    assert found == [("msnlan", 2, 3, "runs/msnlan/x2/seed3"), ("msnlan", 2, 5, "runs/msnlan/x2/seed5"),
                     ("no_msnlab", 2, None, "runs/no_msnlab/x2")]
    assert (results / "runs" / "msnlan" / "x2" / "seed5" / "stage1" / "final.pt").is_file()
    runs = [r for r in find_runs(results) if r.variant == "msnlan"]
    # each seed trains its stages with its own sampler seeds (k, k + 1) and the same boundary
    assert [[s["seed"] for s in r.stages] for r in runs] == [[3, 4], [5, 6]]
    assert [r.stage_starts for r in runs] == [[8], [8]] and stage_boundaries(runs) == {2: [8]}
    assert set(runs[0].log.stage) == {1, 2} and runs[0].log.iteration.max() == 14
    first, second = (weights(r.path / "final.pt") for r in runs)
    assert any(not torch.equal(first[key], second[key]) for key in first)  # two seeds, two networks
    # the curves draw a band over the two seeds and the boundary
    without_boundary = [RunInfo(**{**r.__dict__, "config": {**r.config, "stages": None}}) for r in runs]
    assert training_curves(runs, [2]) != training_curves(without_boundary, [2])
