"""Rows of weights not trained by the workflow in collect and the report (fabricated results folder):
their own main-table group labelled with the source, their label in the visual comparison, no
ablation or complexity row, no training run attached."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from msnlan.errors import DataError
from msnlan.report.collect import collect
from msnlan.report.render import build_report
from test_report_fabricate import fabricate_results, write_config

SOURCE = "Wu et al. 2023, released weights"
LABEL = "MSNLAN (authors)"


def add_pretrained_row(results, name="msnlan_authors", from_method="msnlan"):
    """eval/<name>/ as if `msnlan evaluate --weights-source` had evaluated released weights."""
    for what in ("eval", "images"):
        shutil.copytree(results / what / from_method, results / what / name)
    for path in (results / "eval" / name).rglob("*.protocol.json"):
        protocol = json.loads(path.read_text())
        protocol.update(method=name, checkpoint="/weights/MSNLAN_x2.pt",
                        pretrained={"name": name, "label": LABEL, "source": SOURCE, "variant": from_method})
        path.write_text(json.dumps(protocol))


def test_collect_marks_pretrained_rows(tmp_path):
    results = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), n_images=2)
    add_pretrained_row(results)
    c = collect(results)
    row = c.summary[c.summary.method == "msnlan_authors"].iloc[0]
    assert row.variant == "msnlan" and row.label == LABEL and row.weights_source == SOURCE
    assert row.training_preset == "" and row.training_iterations == ""  # msnlan's run is not theirs
    ours = c.summary[c.summary.method == "msnlan"].iloc[0]
    assert ours.weights_source == "" and ours.label == "" and ours.training_preset == "demo"
    assert set(c.per_image[c.per_image.method == "msnlan_authors"].variant) == {"msnlan"}


def test_report_groups_pretrained_rows_by_source(tmp_path):
    results = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), n_images=2)
    add_pretrained_row(results)
    config = write_config(tmp_path / "cfg.yaml", scales=(2,), benchmarks=("DemoA",))
    out = build_report(results, config, results / "report" / "index.html")
    cells = pd.read_csv(out.html.parent / "tables" / "main_cells.csv")
    groups = dict(zip(cells.row, cells.group))
    assert groups[LABEL] == f"Weights from {SOURCE} (not trained here; evaluated here)"
    assert groups["msnlan"] == "Measured here" and "msnlan_authors" not in groups
    # the same numbers as the copied evaluation: the row is built from its own files
    psnr = cells[(cells.column == "PSNR")].set_index("row").text
    assert psnr[LABEL] == psnr["msnlan"]
    tidy = pd.read_csv(out.html.parent / "tables" / "main.csv")
    assert set(tidy[tidy.method == "msnlan_authors"].source) == {f"measured; weights from {SOURCE}"}
    assert set(tidy[tidy.method == "msnlan"].source) == {"measured"}
    ablation = pd.read_csv(out.html.parent / "tables" / "ablation_cells.csv")
    assert set(ablation.row) == {"msnlan", "no_msnlab"}
    complexity = pd.read_csv(out.html.parent / "tables" / "complexity_cells.csv")
    assert not complexity.row.astype(str).str.contains("authors").any()
    html = out.html.read_text().replace("&#39;", "'")
    visual = html[html.index('<section id="visual">'):]
    assert LABEL in visual


def test_pretrained_record_is_checked(tmp_path):
    results = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), n_images=2)
    add_pretrained_row(results)
    path = results / "eval" / "msnlan_authors" / "x2" / "DemoA.protocol.json"
    protocol = json.loads(path.read_text())
    del protocol["pretrained"]["source"]
    path.write_text(json.dumps(protocol))
    with pytest.raises(DataError, match="'pretrained.source' is missing"):
        collect(results)


def test_pretrained_row_beside_several_seeds_has_no_seed_level(tmp_path):
    # released weights are evaluated once (eval/<name>/x<s>/), the variants per seed (seed<k>/)
    results = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), n_images=2, seeds=(1, 2))
    name = "msnlan_authors"
    shutil.copytree(results / "eval" / "msnlan" / "x2" / "seed1", results / "eval" / name / "x2")
    shutil.copytree(results / "images" / "msnlan" / "x2" / "seed1", results / "images" / name / "x2")
    for path in (results / "eval" / name).rglob("*.protocol.json"):
        protocol = json.loads(path.read_text())
        protocol.update(method=name, pretrained={"name": name, "label": LABEL, "source": SOURCE, "variant": "msnlan"})
        path.write_text(json.dumps(protocol))
    c = collect(results)
    row = c.summary[c.summary.method == name].iloc[0]
    assert c.seeded and pd.isna(row.n_seeds) and row.variant == "msnlan" and row.label == LABEL
    assert row.training_preset == "" and c.per_image[c.per_image.method == name].seed.isna().all()
    assert c.summary[c.summary.method == "msnlan"].iloc[0].n_seeds == 2
    config = write_config(tmp_path / "cfg.yaml", scales=(2,), benchmarks=("DemoA",))
    out = build_report(results, config, results / "report" / "index.html")
    cells = pd.read_csv(out.html.parent / "tables" / "main_cells.csv")
    assert dict(zip(cells.row, cells.group))[LABEL] == f"Weights from {SOURCE} (not trained here; evaluated here)"
    html = out.html.read_text().replace("&#39;", "'")
    visual = html[html.index('<section id="visual">'):]
    assert LABEL in visual and f"{name} not shown" not in html  # its outputs found without a seed level
