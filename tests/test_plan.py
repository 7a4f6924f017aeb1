"""The workflow plan and the config schema, in-process (no Snakemake): msnlan.plan, msnlan.config."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from msnlan.config import config_schema, validate_config
from msnlan.data.demo import DEMO_SETS
from msnlan.errors import ConfigError
from msnlan.plan import PlanError, make_plan, read_checksums
from msnlan.report.crops import MIN_CROP_SIZE

REPO = Path(__file__).resolve().parent.parent


def tiny_config(root: Path, **changes) -> dict:
    """The tiny workflow config of tests/test_workflow.py, validated with defaults filled in."""
    (root / "ablations").mkdir(exist_ok=True)
    for name in ("msnlan", "no_msnlab"):
        shutil.copy(REPO / "ablations" / f"{name}.yaml", root / "ablations" / f"{name}.yaml")
    cfg = {"name": "tiny", "ablations_dir": str(root / "ablations"), "scales": [2], "device": "cpu",
           "train_data": {"name": "DemoTrain", "path": "demo:DemoTrain"},
           "val_data": {"name": "DemoVal", "path": "demo:DemoVal"},
           "benchmarks": {"DemoA": "demo:DemoA"},
           "train": {"preset": "demo", "overrides": {"iterations": 4}}}
    cfg.update(changes)
    return validate_config(cfg, "tiny.yaml")


def test_defaults_are_filled_in_depth():
    cfg = validate_config({"name": "n", "scales": [2], "train_data": {"name": "a", "path": "demo:DemoTrain"},
                           "val_data": {"name": "b", "path": "demo:DemoVal"}, "benchmarks": {"A": "demo:DemoA"}},
                          "c.yaml")
    assert cfg["results_dir"] == "results" and cfg["device"] == "auto"
    assert cfg["evaluate"]["tile"] in ("none", "chop") and cfg["complexity"]["threads"] == 2
    assert cfg["downloads"] == {"dir": "data", "checksums": "config/checksums.tsv"}


@pytest.mark.parametrize("change, message", [
    ({"unknown_key": 1}, "unknown key 'unknown_key'"),
    ({"scales": "two"}, "key 'scales': 'two' is not of type 'array'"),
    ({"scales": [5]}, "key 'scales.0'"),
    ({"train": {"preset": "demo", "treads": 2}}, "unknown key 'train.treads'"),
    ({"evaluate": {"tile": "quadrants"}}, "key 'evaluate.tile'"),
    ({"device": "mps"}, "key 'device'"),  # passed the schema once, then every job refused it
    ({"report": {"crop_size": 8}}, "key 'report.crop_size': 8 is less than the minimum of 12"),
    ({"report": {"crop_boxes": {"bird": [0, 0, 20]}}}, "key 'report.crop_boxes'"),
    ({"report": {"crop_boxes": {"Set5/bird": [0, 0, 8]}}}, "key 'report.crop_boxes.Set5/bird.2'"),
])
def test_bad_config_is_named_by_file_and_key(tmp_path, change, message):
    with pytest.raises(ConfigError) as exc:
        tiny_config(tmp_path, **change)
    assert str(exc.value).startswith("tiny.yaml: ") and message in str(exc.value), str(exc.value)


def test_one_seed_plan_keeps_the_layout(tmp_path):
    plan = make_plan(tiny_config(tmp_path))
    assert plan.seeds == [1] and not plan.seeded and plan.seed_wildcard is None
    assert plan.all_weights() == ["results/tiny/runs/msnlan/x2/final.pt", "results/tiny/runs/no_msnlab/x2/final.pt"]
    assert plan.seed_override() == []                 # the preset's own seed: the command is unchanged
    assert make_plan(tiny_config(tmp_path, seeds=[7])).seed_override() == ["seed=7"]


def test_seeded_plan(tmp_path):
    plan = make_plan(tiny_config(tmp_path, seeds=[2, 1], evaluate={"self_ensemble": True}))
    assert plan.seeded and plan.run_seeds() == [2, 1] and plan.seed_wildcard == "{seed}"
    assert plan.final_weights("msnlan", "{scale}", "{seed}") == "results/tiny/runs/msnlan/x{scale}/seed{seed}/final.pt"
    weights = plan.all_weights()
    assert len(weights) == 4 and "results/tiny/runs/no_msnlab/x2/seed2/final.pt" in weights
    evals = [p for p in plan.all_evaluations() if p.endswith(".csv")]
    assert [p for p in evals if "/bicubic/" in p] == ["results/tiny/eval/bicubic/x2/DemoA.csv"]  # once
    assert len(evals) == 1 + 2 * 2 * 2                # bicubic; 2 variants and their "+" rows x 2 seeds
    assert "results/tiny/eval/msnlan+/x2/seed1/DemoA.csv" in evals
    assert plan.seed_override("2") == ["seed=2"] and plan.seed_override("1") == []
    assert plan.all_complexity() == ["results/tiny/complexity/msnlan/x2.json",
                                     "results/tiny/complexity/no_msnlab/x2.json"]


@pytest.mark.parametrize("change, message", [
    ({"seeds": []}, "key 'seeds'"),
    ({"seeds": [1, 1]}, "key 'seeds'"),
    ({"seeds": [-1]}, "key 'seeds.0'"),
])
def test_bad_seeds_are_named(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, **change)


def test_seed_in_train_overrides_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, train={"preset": "demo", "overrides": {"seed": 4}})
    with pytest.raises(PlanError, match=r"'train.overrides.seed'.*'seeds'.*seeds: \[4\]"):
        make_plan(cfg)


def test_schema_and_code_agree():
    report = config_schema()["properties"]["report"]["properties"]
    assert report["crop_size"]["minimum"] == MIN_CROP_SIZE
    assert config_schema()["properties"]["device"]["pattern"] == "^(auto|cpu|cuda|cuda:[0-9]+)$"


def test_plan_of_the_tiny_config(tmp_path):
    plan = make_plan(tiny_config(tmp_path, scales=[4], init_from_x2=True,
                                 evaluate={"self_ensemble": ["msnlan"]}))
    assert list(plan.variants) == ["msnlan", "no_msnlab"]
    assert plan.scales == [4] and plan.train_scales == [2, 4] and plan.data_scales == [2, 4]
    assert plan.methods() == ["bicubic", "msnlan", "no_msnlab", "msnlan+"]
    assert plan.eval_table("msnlan+", 4, "DemoA") == "results/tiny/eval/msnlan+/x4/DemoA.csv"
    assert "results/tiny/eval/msnlan+/x4/DemoA.protocol.json" in plan.all_evaluations()
    assert plan.dataset_source("DemoA") == "results/tiny/demo/DemoA"
    v = plan.variant("msnlan")
    # the demo preset changes model settings: the trained network differs from the file's
    assert v["file"].endswith("msnlan.yaml") and v["hash"] != v["trained_hash"]
    with pytest.raises(PlanError, match="unknown variant 'nope'"):
        plan.variant("nope")


def test_plan_leaves_the_environment_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("MSNLAN_ABLATIONS", raising=False)
    make_plan(tiny_config(tmp_path))
    assert "MSNLAN_ABLATIONS" not in os.environ


def test_bad_variant_file_and_selection_are_named(tmp_path):
    cfg = tiny_config(tmp_path)
    bad = tmp_path / "ablations" / "typo.yaml"
    bad.write_text("_base_: msnlan\nmodel:\n  dense_skip: false\n")
    with pytest.raises(PlanError) as exc:
        make_plan(cfg)
    assert str(bad) in str(exc.value) and "model.dense_skip" in str(exc.value)
    bad.unlink()
    with pytest.raises(PlanError, match=r"config key 'variants': 'nope' not found"):
        make_plan({**cfg, "variants": ["msnlan", "nope"]})
    (tmp_path / "ablations" / "bicubic.yaml").write_text("_base_: msnlan\n")
    with pytest.raises(PlanError, match="reserved for the baseline"):
        make_plan(cfg)


def test_data_checks(tmp_path):
    cfg = tiny_config(tmp_path)
    missing = tmp_path / "no" / "Set5"
    with pytest.raises(PlanError) as exc:
        make_plan({**cfg, "benchmarks": {"Set5": str(missing)}}, "tiny.yaml")
    assert "config key 'benchmarks.Set5'" in str(exc.value) and str(missing) in str(exc.value)
    with pytest.raises(PlanError, match="is not a demo set") as exc:
        make_plan({**cfg, "benchmarks": {"X": "demo:DemoZ"}})
    assert all(f"demo:{name}" in str(exc.value) for name in DEMO_SETS)  # the list of data.demo
    with pytest.raises(PlanError, match="used for two folders"):
        make_plan({**cfg, "benchmarks": {"DemoTrain": "demo:DemoA"}})


def test_paper_config_without_data_explains_how_to_get_it(tmp_path, monkeypatch):
    # the paper config's data folders are relative to the working directory: none exist here
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "ablations").symlink_to(REPO / "ablations")
    monkeypatch.chdir(tmp_path)
    cfg = validate_config(yaml.safe_load((tmp_path / "config" / "paper.yaml").read_text()), "paper.yaml")
    with pytest.raises(PlanError) as exc:
        make_plan(cfg, "config/paper.yaml")
    text = str(exc.value)
    # DIV2K's sums are recorded (downloadable); the EDSR benchmark pack's are not
    assert "data/benchmark/Set5" in text and "does not exist" in text
    assert "allow_unverified_downloads=True" in text and "records no sha256 for benchmark.tar" in text
    (tmp_path / "data" / "benchmark" / "Manga109" / "HR").mkdir(parents=True)  # given on request only
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "data/benchmark/Manga109/HR/a.png")
    plan = make_plan({**cfg, "allow_unverified_downloads": True}, "config/paper.yaml")
    assert plan.needs_archive["DIV2K_train"] == "DIV2K_train_HR.zip"
    assert plan.archives["DIV2K_train_HR.zip"]["bytes"] == 3_530_603_713


def test_checksums_table_is_checked(tmp_path):
    table = tmp_path / "sums.tsv"
    table.write_text("archive\turl\tsha256\tprovides\tnote\na.tar\thttps://x/a.tar\tunknown\ta/A, a/B\tn\n")
    assert read_checksums(table) == {"a.tar": {"url": "https://x/a.tar", "sha256": None, "bytes": None,
                                               "provides": ["a/A", "a/B"], "note": "n"}}
    table.write_text("archive\turl\tsha256\tprovides\tnote\na.tar\thttps://x/a.tar\tabc\ta\t\n")
    with pytest.raises(PlanError, match=r"sums.tsv: data row 1 \(a.tar\): sha256 'abc'"):
        read_checksums(table)


def test_fill_defaults_follows_refs_and_leaves_given_values():
    from msnlan.config import fill_defaults

    schema = {"$defs": {"n": {"type": "integer", "default": 2}},
              "properties": {"a": {"type": "object", "default": {}, "properties": {"b": {"$ref": "#/$defs/n"}}},
                             "c": {}}}  # an empty subschema has no defaults (not the root's)
    assert fill_defaults({}, schema, schema) == {"a": {"b": 2}}
    assert fill_defaults({"a": {"b": 5}, "c": {}}, schema, schema) == {"a": {"b": 5}, "c": {}}


def test_recorded_config_reads_back_for_the_report(tmp_path):
    from msnlan.config import write_config
    from msnlan.report.settings import load_settings

    cfg = tiny_config(tmp_path, report={"reference": "no_msnlab", "crop_size": 20})
    path = tmp_path / "results" / "workflow_config.yaml"
    write_config(path, cfg, "tiny.yaml")
    assert path.read_text().startswith("# workflow config in force (defaults filled in); from: tiny.yaml\n")
    settings = load_settings(path)
    assert (settings.reference, settings.crop_size, settings.benchmarks) == ("no_msnlab", 20, ["DemoA"])
    assert yaml.safe_load(path.read_text()) == cfg


def test_demo_seeds_config_is_the_demo_with_three_seeds_and_two_variants():
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    seeds = yaml.safe_load((REPO / "config" / "demo-seeds.yaml").read_text())
    assert seeds["seeds"] == [1, 2, 3] and seeds["variants"] == ["msnlan", "no_msnlab"]
    assert "seeds" not in demo                     # the demo itself stays at one seed
    same = {k: v for k, v in seeds.items() if k not in ("name", "variants", "seeds")}
    assert same == {k: v for k, v in demo.items() if k not in ("name", "variants")}
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        plan = make_plan(validate_config(seeds, "demo-seeds.yaml"))
    finally:
        os.chdir(cwd)
    assert plan.seeded and len(plan.all_weights()) == 2 * 2 * 3


def test_trainings_start_costliest_first(tmp_path):
    """Job priorities: data, then trainings (the most MSNLAB branches first), then evaluations."""
    from msnlan.plan import PRIORITY, attention_cost

    plan = make_plan(tiny_config(tmp_path))
    assert attention_cost({"msnlab": True, "patch_sizes": [3, 5, 7]}) == 15
    assert attention_cost({"msnlab": False, "patch_sizes": [3, 5, 7]}) == 0
    assert plan.train_priority("msnlan") == PRIORITY["train"] + 15
    assert plan.train_priority("no_msnlab") == PRIORITY["train"]
    assert PRIORITY["data"] > plan.train_priority("msnlan")
    assert min(plan.train_priority(v) for v in plan.variants) > PRIORITY["complexity"] > PRIORITY["evaluate"] \
        > PRIORITY["other"]
