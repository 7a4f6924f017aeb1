"""A `pretrained:` row in the workflow: a tiny config with one trained variant and the authors'-layout
checkpoint of a randomly initialised paper network (made here); the row reaches tables/summary.csv,
the main table (its own group, labelled with its source) and the visual comparison of the report."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from test_released_weights import authors_checkpoint
from test_workflow import make_workdir, output_of, planned_jobs, run_snakemake, write_config

LABEL = "MSNLAN (released weights)"
SOURCE = "Wu et al. 2023 (test checkpoint)"


def small_benchmark(root: Path) -> Path:
    """Two 48 x 48 HR images: the full-width paper network runs on them in a second."""
    (root / "HR").mkdir(parents=True)
    y, x = np.mgrid[0:48, 0:48]
    for i, name in enumerate(("s1", "s2")):
        img = 128 + 90 * np.sin(x / (2.0 + i)) * np.cos(y / 3.0)
        Image.fromarray(np.clip(np.stack([img, img * 0.8, 255 - img], -1), 0, 255).astype(np.uint8)).save(
            root / "HR" / f"{name}.png")
    return root


def pretrained_workdir(root: Path) -> Path:
    workdir = make_workdir(root, variants=("no_msnlab",))
    weights = workdir / "MSNLAN_x2.pt"
    torch.save({"state_dict": authors_checkpoint(2, seed=3)}, weights)
    write_config(workdir, benchmarks={"Small": str(small_benchmark(workdir / "Small"))},
                 complexity={"enabled": False},
                 pretrained=[{"name": "msnlan_released", "label": LABEL, "variant": "msnlan", "source": SOURCE,
                              "checkpoints": {"x2": {"path": str(weights)}}}],
                 report={"visual_images": ["Small/s1"], "crop_size": 16})
    return workdir


def test_dry_run_plans_the_pretrained_evaluation(tmp_path):
    jobs = planned_jobs(run_snakemake(pretrained_workdir(tmp_path), "-n"))
    assert jobs["evaluate_pretrained"] == 1 and jobs["evaluate"] == 1 and jobs["train"] == 1


def test_with_two_seeds_the_pretrained_row_is_evaluated_once(tmp_path):
    workdir = pretrained_workdir(tmp_path)
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    write_config(workdir, **{k: v for k, v in cfg.items() if k not in ("seeds",)}, seeds=[1, 2])
    proc = run_snakemake(workdir, "-n")
    jobs = planned_jobs(proc)
    assert jobs["evaluate_pretrained"] == 1 and jobs["evaluate"] == 2 and jobs["train"] == 2
    assert "results/tiny/eval/msnlan_released/x2/Small.csv" in output_of(proc)
    assert "msnlan_released/x2/seed" not in output_of(proc)


@pytest.mark.slow
def test_pretrained_row_reaches_the_summary_and_the_report(tmp_path):
    workdir = pretrained_workdir(tmp_path)
    proc = run_snakemake(workdir, "--cores", "2", timeout=900)
    results = workdir / "results" / "tiny"
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in results.rglob("*.log"))
        pytest.fail(f"workflow failed:\n{output_of(proc)[-6000:]}\n{logs}")
    with open(results / "tables" / "summary.csv", newline="") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"bicubic", "no_msnlab", "msnlan_released"}
    released = rows["msnlan_released"]
    assert released["variant"] == "msnlan" and released["label"] == LABEL
    assert released["weights_source"] == SOURCE and released["training_preset"] == ""
    assert float(released["psnr"]) > 0 and released["n_images"] == "2"
    assert rows["no_msnlab"]["weights_source"] == "" and rows["no_msnlab"]["training_preset"] == "demo"

    protocol = json.loads((results / "eval" / "msnlan_released" / "x2" / "Small.protocol.json").read_text())
    assert protocol["method"] == "msnlan_released" and protocol["pretrained"]["source"] == SOURCE
    assert protocol["checkpoint_conversion"]["file"] == str(workdir / "MSNLAN_x2.pt")
    assert protocol["checkpoint_conversion"]["wrapper"] == "state_dict"

    html = (results / "report" / "index.html").read_text()
    assert f"Weights from {SOURCE} (not trained here; evaluated here)" in html.replace("&#39;", "'")
    cells = (results / "report" / "tables" / "main_cells.csv").read_text()
    assert LABEL in cells and "no_msnlab" in cells
    assert (results / "images" / "msnlan_released" / "x2" / "Small" / "s1.png").is_file()
    visual = html[html.index('<section id="visual">'):]
    assert LABEL in visual.replace("&#39;", "'")
    # the ablation table holds the variants trained here only
    ablation = (results / "report" / "tables" / "ablation_cells.csv").read_text()
    assert "msnlan_released" not in ablation and LABEL not in ablation


def test_checkpoint_by_url_is_downloaded_and_checked_by_the_download_rule(tmp_path):
    import hashlib

    workdir = make_workdir(tmp_path / "wd", variants=("no_msnlab",))
    source = tmp_path / "served" / "MSNLAN_x2.pt"
    source.parent.mkdir()
    torch.save(authors_checkpoint(2), source)
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    target = workdir / "data" / "archives" / "pretrained_msnlan_released_x2.pt"
    for sha, ok in (("0" * 64, False), (good, True)):
        write_config(workdir, downloads={"dir": str(workdir / "data")},
                     pretrained=[{"name": "msnlan_released", "label": LABEL, "variant": "msnlan", "source": SOURCE,
                                  "checkpoints": {"x2": {"url": source.as_uri(), "sha256": sha}}}])
        dry = planned_jobs(run_snakemake(workdir, "-n"))
        assert dry["download_archive"] == 1 and dry["evaluate_pretrained"] == 1
        proc = run_snakemake(workdir, "--cores", "1", str(target))
        if ok:
            assert proc.returncode == 0, output_of(proc)
            assert target.read_bytes() == source.read_bytes()
        else:
            assert proc.returncode != 0 and not target.exists()
            assert "differs from the recorded" in output_of(proc), output_of(proc)
