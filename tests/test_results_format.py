"""msnlan.results: the layout, the one summary rule, and each file's writer and reader agreeing."""
import json
import math

import pytest
import yaml

from msnlan.errors import DataError
from msnlan.report.collect import collect
from msnlan.results import layout
from msnlan.results.complexity import complexity_row
from msnlan.results.evaluations import read_eval_result, write_eval_csv, write_protocol
from msnlan.results.runs import (find_runs, read_environment, read_log, read_run_config, write_environment,
                                 write_run_config)
from msnlan.results.summary import mean_psnr, same_value, summarize


def test_summary_rule_for_infinite_psnr():
    assert summarize([30.0, math.inf, 34.0], [0.8, 1.0, 0.9]) == {
        "psnr": 32.0, "ssim": pytest.approx(0.9), "n_images": 3, "n_infinite_psnr": 1}
    all_inf = summarize([math.inf, math.inf], [1.0, 1.0])
    assert all_inf["psnr"] == math.inf and all_inf["n_infinite_psnr"] == 2
    assert math.isnan(mean_psnr([]))
    assert same_value(math.inf, math.inf, 1e-3) and not same_value(math.inf, 40.0, 1e-3)
    assert not same_value(math.nan, 40.0, 1e-3) and same_value(40.0, 40.0004, 1e-3)


def test_layout_paths_keep_wildcards():
    assert str(layout.eval_csv("res", "msnlan+", "{scale}", "{benchmark}")) == "res/eval/msnlan+/x{scale}/{benchmark}.csv"
    assert layout.protocol_json("res/eval/m/x2/Set5.csv").name == "Set5.protocol.json"
    assert str(layout.final_weights("res", "v", 3)) == "res/runs/v/x3/final.pt"


def _evaluation(results, method, psnrs, recorded_psnr):
    csv_path = layout.eval_csv(results, method, 2, "Set5")
    rows = [{"image": f"i{k}", "psnr": p, "ssim": 1.0, "seconds": 0.1, "peak_memory_mb": 1.0}
            for k, p in enumerate(psnrs)]
    write_eval_csv(csv_path, rows)
    write_protocol(csv_path, {"scale": 2, "benchmark": "Set5", "attention_form": "fast",
                              "summary": {"psnr": recorded_psnr, "ssim": 1.0, "n_images": len(rows),
                                          "n_infinite_psnr": sum(map(math.isinf, psnrs))}})
    return csv_path


def test_all_infinite_evaluation_is_inf_everywhere_and_staleness_is_caught(tmp_path):
    csv_path = _evaluation(tmp_path, "exact", [math.inf, math.inf], math.inf)
    ev = read_eval_result(csv_path, "exact", 2)
    assert ev.attention_form == "fast" and list(ev.rows.psnr) == [math.inf, math.inf]
    collected = collect(tmp_path)
    assert collected.summary.psnr.iloc[0] == math.inf and not collected.warnings
    _evaluation(tmp_path, "exact", [math.inf, math.inf], 41.0)  # a protocol from an earlier, finite run
    assert any("summary psnr = 41.0" in w for w in collect(tmp_path).warnings)


def test_optional_attention_form_is_checked(tmp_path):
    with pytest.raises(TypeError, match="attention_form"):
        write_protocol(tmp_path / "a.csv", {"attention_form": 3})
    with pytest.raises(TypeError, match="attention_form"):
        write_environment(tmp_path, {"attention_form": ["fast"]})
    write_environment(tmp_path, {"device": "cpu", "attention_form": "direct"})
    assert read_environment(tmp_path / "environment.json")["attention_form"] == "direct"
    (tmp_path / "environment.json").write_text(json.dumps({"attention_form": 1}))
    with pytest.raises(DataError, match=r"environment.json: key 'attention_form'"):
        read_environment(tmp_path / "environment.json")


def test_run_config_reader_names_missing_keys(tmp_path):
    run = layout.run_dir(tmp_path, "v", 2)
    config = {"variant": {"name": "v", "model": {}}, "scale": 2, "preset": {"name": "demo"},
              "training": {"iterations": 7, "batch_size": 2, "patch_size": 12}, "data": {}, "init_from": None}
    write_run_config(run, config)
    assert read_run_config(run / "config.yaml")["training"]["iterations"] == 7
    (run / "log.csv").write_text("iteration,loss,lr,val_psnr,seconds,images_per_s\n1,0.5,0.1,,1.0,2.0\n")
    [info] = find_runs(tmp_path)
    assert (info.preset, info.iterations, info.batch_size, info.iterations_done) == ("demo", 7, 2, 1)
    assert math.isnan(read_log(run / "log.csv").val_psnr.iloc[0])
    (run / "config.yaml").write_text(yaml.safe_dump({"variant": {}, "iterations": 7}))
    with pytest.raises(DataError, match=r"config.yaml: not a run config: missing key\(s\) scale, preset"):
        read_run_config(run / "config.yaml")


def test_complexity_row_reads_the_written_keys_only():
    data = {"params": {"total": 2e6}, "macs": {"720p": {"total": 4e9, "direct_form": {"total": 8e9},
                                                        "lr_size": [360, 640]}}}
    row = complexity_row("v", 2, data)
    assert (row["params_m"], row["macs_720p_g"], row["macs_720p_direct_g"], row["lr_size_720p"]) == (2.0, 4.0, 8.0, "360×640")
    # a key the writer never writes is not picked up by its likeness to one
    assert complexity_row("v", 2, {"macs": {"720p": {"total": 4e9, "direct": 8e9}}})["macs_720p_direct_g"] is None


# ---- several training seeds ----

def test_seed_level_of_the_layout(tmp_path):
    from msnlan.results.evaluations import find_eval_results

    assert str(layout.final_weights("res", "v", 2, 3)) == "res/runs/v/x2/seed3/final.pt"
    assert str(layout.eval_csv("res", "m", "{scale}", "{benchmark}", "{seed}")) == \
        "res/eval/m/x{scale}/seed{seed}/{benchmark}.csv"
    assert str(layout.sr_image("res", "m", 4, "B", "img", 2)) == "res/images/m/x4/seed2/B/img.png"
    for seed in (2, 10):
        write_run_config(layout.run_dir(tmp_path, "v", 2, seed), {"variant": {}, "scale": 2, "preset": {},
                                                                  "training": {}, "data": {}, "init_from": None})
        _evaluation_at(layout.eval_csv(tmp_path, "v", 2, "Set5", seed), [30.0 + seed])
    _evaluation_at(layout.eval_csv(tmp_path, "bicubic", 2, "Set5"), [28.0])
    assert [(r.variant, r.seed) for r in find_runs(tmp_path)] == [("v", 2), ("v", 10)]
    found = sorted((e.method, e.seed) for e in find_eval_results(tmp_path))
    assert found == [("bicubic", None), ("v", 2), ("v", 10)]
    (tmp_path / "eval" / "v" / "x2" / "seedX").mkdir()   # not a seed folder: ignored
    assert len(find_eval_results(tmp_path)) == 3


def _evaluation_at(csv_path, psnrs):
    rows = [{"image": f"i{k}", "psnr": p, "ssim": 0.9, "seconds": 0.1, "peak_memory_mb": 1.0}
            for k, p in enumerate(psnrs)]
    write_eval_csv(csv_path, rows)
    write_protocol(csv_path, {"scale": 2, "benchmark": "Set5"})


def test_summary_over_seeds():
    from msnlan.results.summary import summarize_over_seeds

    per_seed = {1: summarize([30.0, 32.0], [0.8, 0.9]), 2: summarize([31.0, math.inf], [0.85, 1.0])}
    out = summarize_over_seeds(per_seed)
    assert out["psnr"] == pytest.approx(31.0) and out["psnr_sd"] == pytest.approx(0.0)
    assert (out["psnr_min"], out["psnr_max"]) == (31.0, 31.0)
    assert out["ssim"] == pytest.approx((0.85 + 0.925) / 2)
    assert out["ssim_sd"] == pytest.approx(abs(0.925 - 0.85) / math.sqrt(2))
    assert (out["n_seeds"], out["n_images"], out["n_infinite_psnr"]) == (2, 2, 1)
    assert math.isnan(summarize_over_seeds({1: per_seed[1]})["psnr_sd"])
    with pytest.raises(DataError, match="different numbers of images: seed 1: 2, seed 2: 1"):
        summarize_over_seeds({1: per_seed[1], 2: summarize([30.0], [0.8])})
