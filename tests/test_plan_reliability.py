"""The plan refuses unusable data folders, unsafe names and wrong hints before any job."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msnlan.errors import ConfigError
from msnlan.plan import PlanError, make_plan

from test_plan import tiny_config


@pytest.mark.parametrize("name", ["..", ".", "a/b", ".hidden", "../escape"])
def test_name_must_be_a_safe_folder_name(tmp_path, name):
    with pytest.raises(ConfigError, match="key 'name'"):
        tiny_config(tmp_path, name=name)


def test_every_planned_path_stays_inside_results_dir(tmp_path):
    cfg = tiny_config(tmp_path, results_dir=str(tmp_path / "results"))
    plan = make_plan(cfg)
    assert plan.results == f"{tmp_path}/results/tiny"
    (tmp_path / "ablations" / "bad name.yaml").write_text("_base_: msnlan\n")
    with pytest.raises(PlanError, match="'bad name' is not a usable variant name"):
        make_plan(cfg)


@pytest.mark.parametrize("content", ["empty", "no_images", "empty_hr"])
def test_existing_data_folder_without_images_fails_the_plan(tmp_path, content):
    folder = tmp_path / "Set5"
    folder.mkdir()
    if content == "no_images":
        (folder / "notes.txt").write_text("images are elsewhere\n")
    elif content == "empty_hr":
        (folder / "HR").mkdir()
    cfg = tiny_config(tmp_path)
    with pytest.raises(PlanError) as exc:
        make_plan({**cfg, "benchmarks": {"Set5": str(folder)}}, "tiny.yaml")
    assert "config key 'benchmarks.Set5'" in str(exc.value) and str(folder) in str(exc.value)
    assert "no images" in str(exc.value)
    with pytest.raises(PlanError, match="config key 'train_data.path'"):
        make_plan({**cfg, "train_data": {"name": "T", "path": str(folder)}}, "tiny.yaml")
    (folder / "HR").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "HR" / "a.png")
    make_plan({**cfg, "benchmarks": {"Set5": str(folder)}}, "tiny.yaml")  # a known layout passes


def test_missing_train_data_hint_names_its_own_key(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(PlanError) as exc:
        make_plan({**cfg, "train_data": {"name": "T91", "path": str(tmp_path / "nowhere")}}, "tiny.yaml")
    text = str(exc.value)
    assert "config key 'train_data.path'" in text
    assert "--config 'train_data={name: T91, path: /path/to/T91}'" in text and "benchmarks=" not in text


def test_empty_data_folder_fails_the_dry_run(tmp_path):
    """The Snakefile runs the plan's data checks: `snakemake -n` fails naming the key and folder."""
    from test_workflow import make_workdir, output_of, run_snakemake, write_config

    workdir = make_workdir(tmp_path)
    empty = tmp_path / "Set5"
    (empty / "HR").mkdir(parents=True)
    write_config(workdir, benchmarks={"Set5": str(empty)})
    text = output_of(proc := run_snakemake(workdir, "-n"))
    assert proc.returncode != 0
    assert "config key 'benchmarks.Set5'" in text and str(empty) in text and "no images" in text, text
