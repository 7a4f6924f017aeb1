"""A metric registered in one place reaches the eval CSV, the summaries, the main table, the crops
and the report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from msnlan.cli import main
from msnlan.errors import ConfigError
from msnlan.metric_registry import Metric, register_metric, registered_metrics, unregister_metric
from msnlan.metrics import protocol_pair
from msnlan.report.main_table import build_main_table
from msnlan.report.render import build_report


def mean_absolute_error(sr, hr, scale, crop_border=None) -> float:
    a, b = protocol_pair(sr, hr, scale, crop_border=crop_border)
    return float(np.abs(a - b).mean())


@pytest.fixture
def mae():
    metric = register_metric(Metric("mae", "MAE", higher_is_better=False, decimals=3, compute=mean_absolute_error,
                                    low=0.0))
    yield metric
    unregister_metric("mae")


def test_builtin_metrics_and_names():
    assert [m.name for m in registered_metrics()][:2] == ["psnr", "ssim"]
    with pytest.raises(ConfigError, match="'psnr'"):
        register_metric(Metric("psnr", "PSNR", True, 2, compute=mean_absolute_error))
    with pytest.raises(ConfigError, match="'seconds'"):
        register_metric(Metric("seconds", "s", False, 2, compute=mean_absolute_error))


def test_toy_metric_reaches_csv_tables_and_report(tmp_path, mae):
    rng = np.random.default_rng(0)
    (tmp_path / "Tiny" / "HR").mkdir(parents=True)
    for i in range(2):
        y, x = np.mgrid[0:40, 0:48]
        img = 128 + 80 * np.sin(x / 2.0 + i) * np.cos(y / 3.0) + rng.normal(0, 5, (40, 48))
        Image.fromarray(np.clip(np.stack([img] * 3, -1), 0, 255).astype(np.uint8)).save(tmp_path / "Tiny" / "HR" / f"t{i}.png")
    res = tmp_path / "results"
    csv_path = res / "eval" / "bicubic" / "x2" / "Tiny.csv"
    assert main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(tmp_path / "Tiny"),
                 "--out", str(csv_path), "--device", "cpu", "--save-images", str(res / "images" / "bicubic" / "x2" / "Tiny")]) == 0
    rows = pd.read_csv(csv_path)
    assert list(rows.columns) == ["image", "psnr", "ssim", "mae", "seconds", "peak_memory_mb"]
    assert (rows.mae > 0).all()
    assert main(["collect", "--results", str(res)]) == 0
    summary = pd.read_csv(res / "tables" / "summary.csv")
    assert summary.mae.iloc[0] == pytest.approx(rows.mae.mean())
    out = res / "report" / "index.html"
    build_report(res, None, out)
    assert "MAE" in (res / "report" / "tables" / "main.md").read_text()
    html = out.read_text()
    assert f"{summary.mae.iloc[0]:.3f}" in html and ">MAE<" in html
    assert "PSNR / SSIM / MAE" in html  # the crops' header, then each crop's three values


def test_ranking_follows_the_metric_direction(mae):
    summary = pd.DataFrame({"method": ["a", "b"], "self_ensemble": [False, False], "scale": [2, 2],
                            "benchmark": ["X", "X"], "psnr": [30.0, 31.0], "ssim": [0.9, 0.8],
                            "mae": [1.5, 2.5], "n_images": [3, 3], "n_infinite_psnr": [0, 0],
                            "shave": [2, 2], "color_space": ["Y", "Y"], "lr_source": ["", ""], "tiling": ["", ""]})
    table = build_main_table(summary, ["X"], [2], variants=["a", "b"])
    rows = {r.key: r.cells for r in table.sections[0].rows()}
    assert rows["b"]["X/psnr"].mark == "best" and rows["a"]["X/mae"].mark == "best"  # lower MAE is better
    assert rows["a"]["X/mae"].text == "1.500"
