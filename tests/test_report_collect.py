"""`msnlan collect` on a fabricated results folder, and its errors on damaged input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from msnlan.cli import main
from msnlan.errors import DataError
from msnlan.report.collect import collect
from msnlan.results.collected import per_image_columns, summary_columns
from test_report_fabricate import fabricate_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("collect")
    return fabricate_results(root, scales=(2, 4), variants=("msnlan", "no_msnlab"), self_ensemble=("msnlan",))


def test_collect_cli_writes_both_tables(results, capsys):
    assert main(["collect", "--results", str(results)]) == 0
    summary = pd.read_csv(results / "tables" / "summary.csv", keep_default_na=False)
    per_image = pd.read_csv(results / "tables" / "per_image.csv")
    assert tuple(summary.columns) == summary_columns()
    assert tuple(per_image.columns) == per_image_columns()
    # 2 benchmarks x 2 scales x (bicubic, msnlan, msnlan+, no_msnlab)
    assert len(summary) == 16 and len(per_image) == 16 * 3
    assert "wrote" in capsys.readouterr().out


def test_summary_numbers_are_the_means_of_the_eval_csvs(results):
    col = collect(results)
    for r in col.summary.itertuples():
        raw = pd.read_csv(results / "eval" / r.method / f"x{r.scale}" / f"{r.benchmark}.csv")
        assert r.psnr == pytest.approx(raw.psnr.mean(), abs=1e-12)
        assert r.ssim == pytest.approx(raw.ssim.mean(), abs=1e-12)
        assert r.n_images == len(raw)
    s = col.summary.set_index(["method", "scale", "benchmark"])
    assert s.loc[("msnlan+", 2, "DemoA")].self_ensemble and s.loc[("msnlan+", 2, "DemoA")].variant == "msnlan"
    assert s.loc[("bicubic", 2, "DemoA")].variant == "" and s.loc[("bicubic", 2, "DemoA")].training_preset == ""
    assert s.loc[("msnlan", 4, "DemoB")].training_preset == "demo"
    assert s.loc[("msnlan", 4, "DemoB")].training_iterations == 300
    assert s.loc[("msnlan", 4, "DemoB")].tiling == "none" and s.loc[("msnlan", 4, "DemoB")].shave == 4
    assert not col.warnings


def test_infinite_psnr_left_out_of_the_mean_and_counted(tmp_path):
    res = fabricate_results(tmp_path, scales=(2,), variants=("msnlan",), benchmarks=("DemoA",))
    csv = res / "eval" / "msnlan" / "x2" / "DemoA.csv"
    frame = pd.read_csv(csv)
    frame.loc[0, "psnr"] = np.inf
    frame.to_csv(csv, index=False)
    row = collect(res).summary.set_index("method").loc["msnlan"]
    assert row.n_infinite_psnr == 1 and row.psnr == pytest.approx(frame.psnr[1:].mean())


def test_stale_protocol_summary_is_a_warning(tmp_path):
    res = fabricate_results(tmp_path, scales=(2,), variants=("msnlan",), benchmarks=("DemoA",))
    p = res / "eval" / "msnlan" / "x2" / "DemoA.protocol.json"
    data = json.loads(p.read_text())
    data["summary"]["psnr"] += 0.5
    p.write_text(json.dumps(data))
    warnings = collect(res).warnings
    assert any("stale" in w and "DemoA.protocol.json" in w for w in warnings)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "DemoA.protocol.json").unlink(), "protocol file DemoA.protocol.json is missing"),
    (lambda d: (d / "DemoA.csv").write_text("image,psnr,ssim\na,30,0.9\n"), "missing column(s) seconds"),
    (lambda d: (d / "DemoA.csv").write_text("image,psnr,ssim,seconds,peak_memory_mb\na,abc,0.9,1,1\n"),
     "line 2, column 'psnr': 'abc' is not a number"),
    (lambda d: (d / "DemoA.csv").write_text("image,psnr,ssim,seconds,peak_memory_mb\na,30,0.9,1,1\na,31,0.9,1,1\n"),
     "image 'a' appears more than once"),
    (lambda d: (d / "DemoA.csv").write_text("image,psnr,ssim,seconds,peak_memory_mb\n"), "no image rows"),
    (lambda d: (d / "DemoA.protocol.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "DemoA.protocol.json").write_text(json.dumps({"scale": 3})), "key 'scale' is 3"),
])
def test_damaged_eval_files_name_file_and_problem(tmp_path, damage, message):
    res = fabricate_results(tmp_path, scales=(2,), variants=("msnlan",), benchmarks=("DemoA",), n_images=2)
    damage(res / "eval" / "msnlan" / "x2")
    with pytest.raises(DataError) as err:
        collect(res)
    assert message in str(err.value) and "DemoA" in str(err.value)


def test_empty_or_missing_results_folder(tmp_path, capsys):
    with pytest.raises(DataError, match="no evaluation results"):
        collect(tmp_path)
    assert main(["collect", "--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_temporary_files_of_atomic_writes_are_ignored(tmp_path):
    res = fabricate_results(tmp_path, scales=(2,), variants=("msnlan",), benchmarks=("DemoA",), n_images=2)
    (res / "eval" / "msnlan" / "x2" / ".DemoB.csv.123.tmp").write_text("garbage")
    assert set(collect(res).summary.benchmark) == {"DemoA"}


def test_training_budget_read_from_the_training_engines_run_config(tmp_path):
    """Contract check with msnlan.training: the run folder's config.yaml as the engine writes it."""
    from msnlan.results.runs import find_runs, recorded_variant
    from msnlan.training.presets import load_preset
    from msnlan.training.run_dir import build_config, prepare_run_dir
    from msnlan.variants import resolve_variant

    res = fabricate_results(tmp_path, scales=(2,), variants=("msnlan",), benchmarks=("DemoA",), n_images=2,
                            with_runs=False)
    preset = load_preset("demo", ["iterations=120", "batch_size=4", "stages=null"])
    run_dir = res / "runs" / "msnlan" / "x2"
    prepare_run_dir(run_dir, build_config(resolve_variant("no_msnlab"), 2, preset, tmp_path, tmp_path, None),
                    say=lambda *_: None)
    run = find_runs(res)[0]
    assert (run.preset, run.iterations, run.batch_size, run.patch_size) == ("demo", 120, 4, preset["settings"]["patch_size"])
    resolved, source = recorded_variant("msnlan", run)
    assert resolved["model"]["msnlab"] is False and source.endswith("config.yaml")  # the run's record wins
    row = collect(res).summary.set_index("method").loc["msnlan"]
    assert (row.training_preset, row.training_iterations) == ("demo", 120)
