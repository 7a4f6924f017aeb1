"""Several training seeds: the seed<k> layout read back, the summary's mean and spread over seeds,
the main table's ± sd, the ablation table's two-level interval, and the report's seed notes."""
from __future__ import annotations

import csv
import re

import numpy as np
import pandas as pd
import pytest

from msnlan.cli import main
from msnlan.report.collect import collect
from msnlan.report.main_table import build_main_table
from msnlan.report.tables import to_latex, to_markdown
from msnlan.results.collected import per_image_columns, summary_columns
from test_report_fabricate import fabricate_results, write_config

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    res = fabricate_results(root, scales=(2,), variants=("msnlan", "no_msnlab"), n_images=4, seeds=SEEDS)
    return root, res


def test_summary_is_the_mean_over_seeds_with_its_spread(seeded):
    _, res = seeded
    c = collect(res)
    assert c.seeded and c.seeds() == list(SEEDS)
    assert tuple(c.summary.columns) == summary_columns(seeded=True)
    assert tuple(c.per_image.columns) == per_image_columns(seeded=True)
    row = c.summary[(c.summary.method == "msnlan") & (c.summary.benchmark == "DemoA")].iloc[0]
    per_seed = [pd.read_csv(res / "eval" / "msnlan" / "x2" / f"seed{k}" / "DemoA.csv").psnr.mean() for k in SEEDS]
    assert row.psnr == pytest.approx(np.mean(per_seed), abs=1e-9)
    assert row.psnr_sd == pytest.approx(np.std(per_seed, ddof=1), abs=1e-9)
    assert (row.psnr_min, row.psnr_max) == pytest.approx((min(per_seed), max(per_seed)))
    assert row.n_seeds == 3 and row.n_images == 4
    bicubic = c.summary[c.summary.method == "bicubic"].iloc[0]
    assert pd.isna(bicubic.n_seeds) and pd.isna(bicubic.psnr_sd)
    assert set(c.per_image[c.per_image.method == "msnlan"].seed) == set(SEEDS)
    assert c.per_image[c.per_image.method == "bicubic"].seed.isna().all()


def test_main_table_mean_with_sd(seeded):
    _, res = seeded
    summary = collect(res).summary
    table = build_main_table(summary, ["DemoA", "DemoB"], [2])
    cell = [r for r in table.sections[0].rows() if r.key == "msnlan"][0].cells["DemoA/psnr"]
    row = summary[(summary.method == "msnlan") & (summary.benchmark == "DemoA")].iloc[0]
    assert cell.text == f"{row.psnr:.2f}" and cell.spread == f"± {row.psnr_sd:.2f}"
    assert "n=3 seeds × 4 images" in cell.title and "sd over seeds" in cell.title
    mean, sd = f"{row.psnr:.2f}", f"{row.psnr_sd:.2f}"
    assert re.search(rf"{mean}(}})? \$\\pm\$ {sd}", to_latex(table))      # possibly \textbf{mean}
    assert re.search(rf"{mean}(\*\*|</ins>)? ± {sd}", to_markdown(table))
    bicubic = [r for r in table.sections[0].rows() if r.key == "bicubic"][0].cells["DemoA/psnr"]
    assert bicubic.spread == "" and "no seeds" in bicubic.title
    assert any("training seeds" in text for _, text in table.footnotes)


def test_report_with_seeds(seeded):
    root, res = seeded
    cfg = write_config(root / "config.yaml", scales=(2,))
    out = res / "report" / "index.html"
    assert main(["collect", "--results", str(res)]) == 0
    with open(res / "tables" / "summary.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert {"psnr_sd", "ssim_sd", "n_seeds"} <= set(header)
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out)]) == 0
    text = out.read_text()
    assert "two-level bootstrap" in text and "seeds with replacement, then images with replacement" in text
    assert "n=3 seeds × 4 images" in text
    assert "training seed 1 only" in text          # the visual comparison says which seed it shows
    assert "band ± 1 sd" in text
    ablation = pd.read_csv(out.parent / "tables" / "ablation.csv")
    row = ablation[(ablation.variant == "no_msnlab") & (ablation.benchmark == "DemoA")].iloc[0]
    assert row.n_seeds == 3 and row.n_pairs == 4 and row.ci_low < row.delta < row.ci_high
    assert "± " in (out.parent / "tables" / "main.md").read_text()
