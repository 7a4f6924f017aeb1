"""The Snakemake workflow: a tiny config end to end, its rerun behaviour, its config checks and the
checked download path.

Snakemake runs in a subprocess in a temporary folder (--directory), on the repository's Snakefile,
with a temporary ablations folder holding copies of two variant files. The end-to-end run is the
slow part (tiny networks, a few training iterations, one scale, one small benchmark).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY_VARIANTS = ("msnlan", "no_msnlab")


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    """Snakemake on the repository's workflow, in `workdir`, with `configfile` (default workdir/config.yaml)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
           "--configfile", str(configfile or workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def output_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs ({} when nothing is to be done)."""
    text = output_of(proc)
    assert proc.returncode == 0, text
    counts: dict[str, int] = {}
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", text, re.S)
    if match is None:
        assert "Nothing to be done" in text, text
        return counts
    for line in match.group(1).splitlines():
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


def planned_outputs(proc: subprocess.CompletedProcess) -> list[str]:
    """Every output path a dry run would write."""
    paths = []
    for line in output_of(proc).splitlines():
        line = line.strip()
        if line.startswith("output: "):
            paths += [p.strip() for p in line[len("output: "):].split(",")]
    return paths


def write_config(workdir: Path, **changes) -> Path:
    """A tiny config: two variants, x2, demo data, one benchmark, a few training iterations in each
    of the demo preset's two stages (a train_stage job for stage 1, `train` for stage 2)."""
    cfg = {
        "name": "tiny",
        "ablations_dir": str(workdir / "ablations"),
        "scales": [2],
        "device": "cpu",
        "train_data": {"name": "DemoTrain", "path": "demo:DemoTrain"},
        "val_data": {"name": "DemoVal", "path": "demo:DemoVal"},
        "benchmarks": {"DemoA": "demo:DemoA"},
        "train": {
            "preset": "demo",
            "overrides": {"iterations": 4, "batch_size": 2, "patch_size": 12, "milestones": [3],
                          "val_interval": 4, "checkpoint_interval": 4, "log_interval": 2,
                          "val_max_images": 1, "stages.2.iterations": 2, "stages.2.patch_size": 16,
                          "stages.2.milestones": []},
            "threads": 1,
        },
        "evaluate": {"threads": 1},
        "complexity": {"runs": 1, "runtime_size": "16x16", "threads": 1},
    }
    cfg.update(changes)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def make_workdir(root: Path, variants=TINY_VARIANTS) -> Path:
    (root / "ablations").mkdir(parents=True)
    for name in variants:
        shutil.copy(REPO / "ablations" / f"{name}.yaml", root / "ablations" / f"{name}.yaml")
    write_config(root)
    return root


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The tiny config run to the end once (the slow part of this module)."""
    workdir = make_workdir(tmp_path_factory.mktemp("workflow"))
    proc = run_snakemake(workdir, "--cores", "2", timeout=600)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results").rglob("*.log"))
        pytest.fail(f"workflow failed:\n{output_of(proc)[-6000:]}\n{logs}")
    return workdir


@pytest.mark.slow
def test_end_to_end_rows_and_report(finished_run):
    results = finished_run / "results" / "tiny"
    with open(results / "tables" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["method"], int(r["scale"]), r["benchmark"]) for r in rows}
    expected = {(m, 2, "DemoA") for m in ("bicubic",) + TINY_VARIANTS}
    assert expected <= got, f"missing summary rows: {sorted(expected - got)}"
    for r in rows:
        assert float(r["psnr"]) > 10, r
    html = results / "report" / "index.html"
    assert html.is_file() and html.stat().st_size > 1000
    for variant in TINY_VARIANTS:
        weights = results / "runs" / variant / "x2" / "final.pt"
        assert weights.is_file()
        assert not weights.stat().st_mode & 0o222, "trained weights must be protected (read-only)"
        assert (results / "complexity" / variant / "x2.json").is_file()
        # every rule leaves a benchmark file (wall time, max RSS)
        assert (results / "benchmarks" / "train" / f"{variant}_x2.tsv").is_file()
        # the two stages: stage 1 by its own job, protected; log rows of both; the run's weights are stage 2's
        stage1 = results / "runs" / variant / "x2" / "stage1" / "final.pt"
        assert stage1.is_file() and not stage1.stat().st_mode & 0o222
        assert (results / "benchmarks" / "train" / f"{variant}_x2_stage1.tsv").is_file()
        log = (results / "runs" / variant / "x2" / "log.csv").read_text().splitlines()
        assert log[0].endswith(",stage") and [r.split(",")[-1] for r in log[1:]] == ["1", "1", "2"]
        stage2 = results / "runs" / variant / "x2" / "stage2" / "final.pt"
        assert stage2.is_file() and (results / "runs" / variant / "x2" / "final.pt").is_file()
    assert (results / "workflow_config.yaml").is_file()
    text = html.read_text()
    assert "a dashed vertical line marks where a training stage begins" in text
    assert "2 (20x20 fine-tuning): 2 it from 4, batch 2, LR patch 16" in text  # the budget table lists stages


@pytest.mark.slow
def test_snakemake_report_bundle(finished_run):
    import zipfile

    proc = run_snakemake(finished_run, "--report", "report.zip")
    assert proc.returncode == 0, output_of(proc)
    names = zipfile.ZipFile(finished_run / "report.zip").namelist()
    for item in ("index.html", "summary.csv", "per_image.csv"):
        assert any(n.endswith("/" + item) for n in names), names


@pytest.mark.slow
def test_second_run_has_nothing_to_do(finished_run):
    assert planned_jobs(run_snakemake(finished_run, "-n")) == {}


@contextlib.contextmanager
def edited_variant(workdir: Path, name: str, edit):
    """The variant file `name` changed by edit(data) for the duration of the block, then restored."""
    path = workdir / "ablations" / f"{name}.yaml"
    original = path.read_text()
    try:
        data = yaml.safe_load(original)
        edit(data)
        path.write_text(yaml.safe_dump(data))
        yield
    finally:
        path.write_text(original)


@pytest.mark.slow
def test_editing_a_model_setting_reruns_only_that_variant(finished_run):
    with edited_variant(finished_run, "no_msnlab", lambda d: d.setdefault("model", {}).update(reduction=4)):
        proc = run_snakemake(finished_run, "-n")
        jobs = planned_jobs(proc)
        assert jobs == {"trained_variant": 1, "train_stage": 1, "train": 1, "evaluate": 1, "complexity": 1,
                        "collect": 1, "report": 1, "all": 1}, jobs
        for out in planned_outputs(proc):
            assert ("/no_msnlab/" in out or out.endswith("/no_msnlab.yaml")
                    or "/tables/" in out or "/report/" in out), out
    assert planned_jobs(run_snakemake(finished_run, "-n")) == {}


@pytest.mark.slow
def test_description_edit_or_touch_reruns_nothing(finished_run):
    with edited_variant(finished_run, "no_msnlab", lambda d: d.update(description="same network, new words")):
        assert planned_jobs(run_snakemake(finished_run, "-n")) == {}


@pytest.mark.slow
def test_another_device_reruns_nothing_that_computes(finished_run):
    """`device` reaches the shell commands as a param that is no rerun trigger: moving a finished
    workflow to another device reruns no training, evaluation or complexity job (only the recorded
    config, which holds every key, and the report after it)."""
    jobs = planned_jobs(run_snakemake(finished_run, "-n", "--config", "device=auto"))
    assert set(jobs) <= {"record_config", "report", "all"}, jobs


@pytest.mark.slow
def test_new_ablation_file_adds_its_jobs(finished_run):
    extra = finished_run / "ablations" / "wide_reduction.yaml"
    extra.write_text("_base_: msnlan\ndescription: channel-attention reduction 8\nmodel:\n  reduction: 8\n")
    try:
        proc = run_snakemake(finished_run, "-n")
        jobs = planned_jobs(proc)
        assert jobs.get("train") == 1 and jobs.get("evaluate") == 1 and jobs.get("complexity") == 1, jobs
        trained = sorted(o for o in planned_outputs(proc) if o.endswith("final.pt"))
        assert trained == ["results/tiny/runs/wide_reduction/x2/final.pt",
                           "results/tiny/runs/wide_reduction/x2/stage1/final.pt"]
    finally:
        extra.unlink()


# ---- several training seeds: a tiny 2-seed config end to end ----

@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory) -> Path:
    workdir = make_workdir(tmp_path_factory.mktemp("workflow_seeds"))
    write_config(workdir, seeds=[3, 5], evaluate={"threads": 1, "self_ensemble": ["msnlan"]},
                 complexity={"runs": 1, "runtime_size": "16x16", "threads": 1, "measure_runtime": False})
    proc = run_snakemake(workdir, "--cores", "2", "--resources", "gpu=2", timeout=900)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results").rglob("*.log"))
        pytest.fail(f"workflow failed:\n{output_of(proc)[-6000:]}\n{logs}")
    return workdir


@pytest.mark.slow
def test_two_seeds_end_to_end(seeded_run):
    import pandas as pd

    results = seeded_run / "results" / "tiny"
    for variant in TINY_VARIANTS:
        assert not (results / "runs" / variant / "x2" / "final.pt").exists()
        assert not (results / "runs" / variant / "x2" / "stage1").exists()
        for k in (3, 5):
            run = results / "runs" / variant / "x2" / f"seed{k}"
            assert (run / "final.pt").is_file() and (run / "stage1" / "final.pt").is_file()
            assert yaml.safe_load((run / "config.yaml").read_text())["training"]["seed"] == k
            assert (results / "eval" / variant / "x2" / f"seed{k}" / "DemoA.csv").is_file()
        # complexity does not depend on the seed: one file per variant and scale
        assert [p.name for p in (results / "complexity" / variant).iterdir()] == ["x2.json"]
    assert (results / "eval" / "msnlan+" / "x2" / "seed5" / "DemoA.csv").is_file()
    assert (results / "eval" / "bicubic" / "x2" / "DemoA.csv").is_file()     # bicubic once, no seed level
    assert not (results / "eval" / "bicubic" / "x2" / "seed3").exists()
    summary = pd.read_csv(results / "tables" / "summary.csv")
    for col in ("psnr", "psnr_sd", "ssim", "ssim_sd", "n_seeds"):
        assert col in summary.columns
    row = summary[summary.method == "no_msnlab"].iloc[0]
    per_seed = [pd.read_csv(results / "eval" / "no_msnlab" / "x2" / f"seed{k}" / "DemoA.csv").psnr.mean()
                for k in (3, 5)]
    assert row.n_seeds == 2 and row.psnr == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert row.psnr_sd == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)
    ablation = pd.read_csv(results / "report" / "tables" / "ablation.csv")
    delta = ablation[ablation.variant == "no_msnlab"].iloc[0]
    assert delta.n_seeds == 2 and delta.n_pairs >= 6 and delta.ci_low <= delta.delta <= delta.ci_high
    html = (results / "report" / "index.html").read_text()
    assert "two-level bootstrap" in html and "n=2 seeds × " in html and "training seed 3 only" in html
    assert "Demo data split" in html


@pytest.mark.slow
def test_two_seeds_second_run_has_nothing_to_do(seeded_run):
    assert planned_jobs(run_snakemake(seeded_run, "-n")) == {}


def test_seeds_plan_bicubic_and_complexity_once_and_gpu_per_training_job(dry_workdir):
    write_config(dry_workdir, seeds=[1, 2, 3])
    proc = run_snakemake(dry_workdir, "-n", "-p")
    jobs = planned_jobs(proc)
    assert jobs["train"] == 6 and jobs["train_stage"] == 6 and jobs["evaluate"] == 6
    assert jobs["evaluate_bicubic"] == 1 and jobs["complexity"] == 2 and jobs["trained_variant"] == 2
    text = output_of(proc)
    # every training job claims one unit of the gpu resource, whatever its seed: --resources gpu=2
    # keeps at most two at once across seeds
    train_blocks = [b for b in text.split("\n\n") if "rule train:" in b]
    assert len(train_blocks) == 6 and all("gpu=1" in b for b in train_blocks)
    assert "--set seed=2" in text and "--set seed=3" in text and "--set seed=1" not in text
    outputs = planned_outputs(proc)
    assert "results/tiny/runs/msnlan/x2/seed2/final.pt" in outputs
    assert "results/tiny/eval/bicubic/x2/DemoA.csv" in outputs


def test_two_seeds_with_two_stages_put_the_stage_folders_in_the_seed_folders(dry_workdir):
    write_config(dry_workdir, seeds=[3, 5], variants=["msnlan"])  # the demo preset's two stages, a job each
    proc = run_snakemake(dry_workdir, "-n", "-p")
    jobs = planned_jobs(proc)
    assert jobs["train"] == 2 and jobs["train_stage"] == 2, jobs
    outputs = planned_outputs(proc)
    for k in (3, 5):
        assert f"results/tiny/runs/msnlan/x2/seed{k}/stage1/final.pt" in outputs
    assert not any(re.search(r"runs/msnlan/x2/stage\d", o) for o in outputs)
    blocks = output_of(proc).split("\n\n")
    [stage] = [b for b in blocks if "rule train_stage:" in b and "seed5" in b]
    assert "log: results/tiny/logs/train/msnlan_x2_seed5_stage1.log" in stage
    assert re.search(r"--out results/tiny/runs/msnlan/x2/seed5 .*--set seed=5 --stage 1 ", stage)
    # the last stage of seed 5 starts from stage 1 of seed 5, in the same run folder
    [last] = [b for b in blocks if "rule train:" in b and "seed5" in b]
    assert "results/tiny/runs/msnlan/x2/seed5/stage1/final.pt" in last and "seed3" not in last
    assert re.search(r"--out results/tiny/runs/msnlan/x2/seed5 .*--set seed=5 ", last) and "--stage" not in last


def test_one_seed_keeps_the_layout_and_commands(dry_workdir):
    proc = run_snakemake(dry_workdir, "-n", "-p")
    outputs = planned_outputs(proc)
    assert "results/tiny/runs/msnlan/x2/final.pt" in outputs and not any("seed" in o for o in outputs)
    assert "--set seed" not in output_of(proc)


# ---- plans and checks before any job starts (dry runs: the plan itself is tested in test_plan.py) ----

@pytest.fixture
def dry_workdir(tmp_path) -> Path:
    return make_workdir(tmp_path)


def test_dry_run_plans_every_job(dry_workdir):
    jobs = planned_jobs(run_snakemake(dry_workdir, "-n"))
    assert jobs["train"] == 2 and jobs["train_stage"] == 2 and jobs["complexity"] == 2
    assert jobs["evaluate"] == 2 and jobs["evaluate_bicubic"] == 1
    assert jobs["demo_data"] == 1 and jobs["prepare"] == 3
    assert jobs["collect"] == jobs["report"] == 1


def test_jobs_carry_the_plan_priorities(dry_workdir):
    """Snakemake sees the priorities of msnlan.plan: data first, the three-branch variant's
    trainings before the variant without MSNLAB, complexity (longer) before evaluations, both after
    every training."""
    text = output_of(run_snakemake(dry_workdir, "-n"))
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\[|^Job stats|\Z)", text, re.S | re.M)

    def priority(rule: str, wildcard: str = "") -> set:
        return {int(re.search(r"priority: (\d+)", body).group(1)) for name, body in jobs
                if name == rule and wildcard in body}

    assert priority("prepare") == priority("demo_data") == {100}
    assert priority("train", "variant=msnlan") == priority("train_stage", "variant=msnlan") == {50 + 3 + 5 + 7}
    assert priority("train", "variant=no_msnlab") == {50}
    assert priority("complexity") == priority("trained_variant") == {30}
    assert priority("evaluate") == priority("evaluate_bicubic") == {20}


def test_self_ensemble_and_init_from_x2_plan(dry_workdir):
    write_config(dry_workdir, scales=[4], init_from_x2=True,
                 evaluate={"self_ensemble": ["msnlan"], "tile": "chop", "min_pixels": 2000})
    proc = run_snakemake(dry_workdir, "-n", "-p")
    jobs = planned_jobs(proc)
    assert jobs["train"] == 4                      # x4 and the x2 it starts from, per variant
    assert jobs["train_stage"] == 4                # their first stages
    assert jobs["evaluate"] == 3                   # msnlan, msnlan+, no_msnlab at x4
    text = output_of(proc)
    assert "--init-from results/tiny/runs/msnlan/x2/final.pt" in text
    # every job of the x4 run names the x2 weights (its config.yaml records them); stage 1 is a job of its own
    assert re.search(r"--init-from results/tiny/runs/msnlan/x2/final.pt .*--stage 1 ", text)
    assert re.search(r"evaluate --method results/tiny/variants/msnlan.yaml .*--tile chop --min-pixels 2000 --self-ensemble", text)
    assert "results/tiny/eval/msnlan+/x4/DemoA.csv" in planned_outputs(proc)


def test_one_stage_preset_plans_no_stage_jobs(dry_workdir):
    cfg = yaml.safe_load((dry_workdir / "config.yaml").read_text())
    cfg["train"]["overrides"] = {k: v for k, v in cfg["train"]["overrides"].items() if not k.startswith("stages.")}
    write_config(dry_workdir, train={**cfg["train"], "overrides": {**cfg["train"]["overrides"], "stages": None}})
    proc = run_snakemake(dry_workdir, "-n", "-p")
    jobs = planned_jobs(proc)
    assert jobs["train"] == 2 and "train_stage" not in jobs, jobs
    assert "--stage" not in output_of(proc) and "stage1" not in output_of(proc)


def test_job_per_stage_off_trains_both_stages_in_one_job(dry_workdir):
    cfg = yaml.safe_load((dry_workdir / "config.yaml").read_text())
    write_config(dry_workdir, train={**cfg["train"], "job_per_stage": False})
    proc = run_snakemake(dry_workdir, "-n", "-p")
    jobs = planned_jobs(proc)
    assert jobs["train"] == 2 and "train_stage" not in jobs, jobs
    assert "--stage" not in output_of(proc)


def test_bad_config_fails_dry_run_naming_file_and_key(dry_workdir):
    """The schema and plan checks themselves are tested in-process (test_plan.py); here: that the
    Snakefile runs them and reports the config file and key."""
    cfg = write_config(dry_workdir, train={"preset": "demo", "treads": 2})
    text = output_of(proc := run_snakemake(dry_workdir, "-n"))
    assert proc.returncode != 0
    assert str(cfg) in text and "unknown key 'train.treads'" in text, text
    write_config(dry_workdir, variants=["msnlan", "nope"])
    text = output_of(proc := run_snakemake(dry_workdir, "-n"))
    assert proc.returncode != 0 and "config key 'variants'" in text and "'nope'" in text, text


def test_paper_plan_with_data_in_place(tmp_path, shared_data):
    """The full paper plan, with the shared benchmarks and a stand-in DIV2K folder."""
    standin = tmp_path / "DIV2K_train_HR"
    standin.mkdir()
    for png in sorted((shared_data / "train" / "T91").glob("*.png"))[:3]:
        shutil.copy(png, standin / png.name)
    b = shared_data / "benchmarks"
    overrides = [f"train_data={{name: DIV2K_train, path: {standin}}}",
                 f"val_data={{name: Set5, path: {b / 'Set5'}}}",
                 "benchmarks={" + ", ".join(f"{s}: {b / s}" for s in
                                            ("Set5", "Set14", "B100", "Urban100", "Manga109")) + "}"]
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "ablations").symlink_to(REPO / "ablations")
    jobs = planned_jobs(run_snakemake(workdir, "-n", "--config", *overrides,
                                      configfile=REPO / "config" / "paper.yaml"))
    n_variants = len(list((REPO / "ablations").glob("*.yaml")))
    assert jobs["train"] == 3 * n_variants
    assert jobs["evaluate"] == (n_variants + 1) * 3          # + the msnlan+ rows; all 5 benchmarks per job
    assert jobs["evaluate_bicubic"] == 3
    assert jobs["complexity"] == n_variants                   # one job per variant, all three scales
    assert jobs["prepare"] == 6                               # DIV2K_train + five benchmarks


@pytest.mark.parametrize("profile", ["gpu-workstation", "slurm"])
def test_profiles_dry_run(dry_workdir, profile):
    proc = run_snakemake(dry_workdir, "-n", "--profile", str(REPO / "workflow" / "profiles" / profile))
    assert planned_jobs(proc)["train"] == 2
    if profile == "slurm":
        assert "gpu=1" in output_of(proc) and "cpus_per_gpu=8" in output_of(proc)


# ---- the download path, on a local archive served through a file:// URL ----

def _tiny_archive(root: Path) -> Path:
    from PIL import Image

    src = root / "pack" / "Tiny" / "HR"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(src / f"img{i}.png")
    archive = root / "pack.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(root / "pack", arcname="pack")
    shutil.rmtree(root / "pack")
    return archive


def _download_config(workdir: Path, archive: Path, sha: str, allow: bool) -> None:
    (workdir / "checksums.tsv").write_text(
        "archive\turl\tsha256\tprovides\tnote\n"
        f"pack.tar\t{archive.as_uri()}\t{sha}\tpack/Tiny\ta test archive\n")
    write_config(workdir, benchmarks={"Tiny": "data/pack/Tiny"}, allow_unverified_downloads=allow,
                 downloads={"dir": "data", "checksums": str(workdir / "checksums.tsv")})


def test_download_refuses_unverified_and_corrupt_archives(dry_workdir, tmp_path_factory):
    archive = _tiny_archive(tmp_path_factory.mktemp("server"))
    target = ["data/.unpacked/pack.tar.done"]
    # no recorded sum: refused before any job starts
    _download_config(dry_workdir, archive, "unknown", allow=False)
    text = output_of(proc := run_snakemake(dry_workdir, "-n"))
    assert proc.returncode != 0 and "records no sha256 for pack.tar" in text, text
    # a recorded sum that does not match: the download job fails and deletes the file
    _download_config(dry_workdir, archive, "0" * 64, allow=False)
    proc = run_snakemake(dry_workdir, "--cores", "1", *target)
    assert proc.returncode != 0
    assert "differs from the recorded" in output_of(proc) + (dry_workdir / "data/logs/download_pack.tar.log").read_text()
    assert not (dry_workdir / "data" / "archives" / "pack.tar").exists()
    # the right sum: downloaded, unpacked, and the benchmark folder is there
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    _download_config(dry_workdir, archive, sha, allow=False)
    proc = run_snakemake(dry_workdir, "--cores", "1", *target)
    assert proc.returncode == 0, output_of(proc)
    assert sorted(p.name for p in (dry_workdir / "data/pack/Tiny/HR").iterdir()) == ["img0.png", "img1.png"]
    assert (dry_workdir / "data/archives/pack.tar.sha256").read_text().split()[0] == sha


def test_download_unverified_allowed_records_the_sum(dry_workdir, tmp_path_factory):
    archive = _tiny_archive(tmp_path_factory.mktemp("server"))
    _download_config(dry_workdir, archive, "unknown", allow=True)
    proc = run_snakemake(dry_workdir, "--cores", "1", "data/.unpacked/pack.tar.done")
    assert proc.returncode == 0, output_of(proc)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (dry_workdir / "data/archives/pack.tar.sha256").read_text().split()[0] == sha
    assert sha in (dry_workdir / "data/logs/download_pack.tar.log").read_text()
