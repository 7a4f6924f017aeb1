"""`msnlan report` end to end on a fabricated results folder: every section, escaping, the table
files, config/published validation, and the crop machinery."""
from __future__ import annotations

import html
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from msnlan.cli import main
from msnlan.errors import ConfigError
from msnlan.report.crops import CropBox, choose_crop, crop_metrics, zoom_nearest
from msnlan.report.published import default_published_path, load_published
from msnlan.report.render import build_report
from msnlan.report.settings import parse_settings
from test_report_fabricate import fabricate_results, write_config


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    res = fabricate_results(root, self_ensemble=("msnlan",))
    cfg = write_config(root / "config.yaml")
    out = res / "report" / "index.html"
    assert main(["collect", "--results", str(res)]) == 0
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out)]) == 0
    return res, out, out.read_text()


def test_every_section_present(rendered):
    _, _, text = rendered
    for anchor in ("results", "ablation", "complexity", "training", "visual", "provenance"):
        assert f'id="{anchor}"' in text
    for table in ("main-table", "ablation-table", "complexity-table", "runs-table", "protocol-overview"):
        assert f'id="{table}"' in text
    assert 'id="psnr-vs-macs" src="data:image/png;base64,' in text
    assert 'id="training-curves" src="data:image/png;base64,' in text
    # visual comparison at the largest scale (x4), first image of each demo benchmark
    assert "DemoA / demoa_00 ×4" in text and "DemoB / demob_00 ×4" in text
    assert len(re.findall(r'<img class="crop" src="data:image/png;base64,', text)) == 2 * 5  # HR, bicubic, 3 methods


def test_demo_banner_and_no_published_note(rendered):
    _, _, text = rendered
    assert "DEMO — not the paper&#39;s setting" in text
    assert "No published numbers" in text
    assert text.index('id="demo-banner"') < text.index('id="results"')


def test_offline_single_file(rendered):
    _, _, text = rendered
    srcs = re.findall(r'(?:src|href)="([^"#]+)"', text)
    assert srcs and all(s.startswith("data:") for s in srcs), [s for s in srcs if not s.startswith("data:")][:3]
    assert "<link" not in text and "<script" not in text


def test_table_files_written(rendered):
    res, _, _ = rendered
    tables = res / "report" / "tables"
    for key in ("main", "ablation", "complexity"):
        assert (tables / f"{key}.tex").read_text().count(r"\toprule") == 1
        assert (tables / f"{key}.md").read_text().startswith("### ")
        assert (tables / f"{key}_cells.csv").is_file()
    abl = pd.read_csv(tables / "ablation.csv")
    assert set(abl.variant) == {"no_msnlab"} and (abl.ci_low <= abl.delta).all() and (abl.delta <= abl.ci_high).all()
    assert (res / "report" / "figures" / "psnr_vs_macs.png").read_bytes()[:4] == b"\x89PNG"


def test_printed_numbers_are_the_data(rendered):
    res, _, text = rendered
    summary = pd.read_csv(res / "tables" / "summary.csv", keep_default_na=False)
    cells = pd.read_csv(res / "report" / "tables" / "main_cells.csv", keep_default_na=False)
    for r in summary.itertuples():
        shown = cells[(cells.section == f"×{r.scale}") & (cells.row == ("Bicubic" if r.method == "bicubic" else r.method))
                      & (cells.column_group.str.startswith(r.benchmark))]
        assert shown[shown.column == "PSNR"].text.iloc[0] == f"{r.psnr:.2f}"
        assert shown[shown.column == "SSIM"].text.iloc[0] == f"{r.ssim:.4f}"
        assert f"{r.psnr:.2f}" in text


def test_ablation_components_from_run_config(rendered):
    res, _, _ = rendered
    cells = pd.read_csv(res / "report" / "tables" / "ablation_cells.csv", keep_default_na=False)
    def mark(row, col):
        return cells[(cells.section == "×2") & (cells.row == row) & (cells.column == col)].text.iloc[0]
    assert mark("msnlan", "MSNLAB") == "✓" and mark("no_msnlab", "MSNLAB") == "–"
    assert mark("msnlan", "Multi-scale") == "✓" and mark("no_msnlab", "Dense skips") == "✓"
    assert mark("no_msnlab", "Block") == "RMAB"


def test_variant_names_are_escaped(tmp_path):
    res = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), variants=("msnlan",), n_images=2,
                            with_runs=False, with_complexity=False)
    evil = "<script>alert(1)"
    for sub in ("eval", "images"):
        shutil.copytree(res / sub / "msnlan", res / sub / evil)
    out = tmp_path / "r" / "index.html"
    build_report(res, None, out)
    text = out.read_text()
    assert "<script>alert(1)" not in text
    assert html.escape(evil) in text or "&lt;script&gt;alert(1)" in text
    assert "Training budget unknown" in text
    tex = (out.parent / "tables" / "main.tex").read_text()
    assert r"\textless{}script\textgreater{}alert(1)" in tex


def test_config_order_and_report_options(tmp_path):
    res = fabricate_results(tmp_path, scales=(2, 4), variants=("msnlan", "no_msnlab"), n_images=2)
    cfg = write_config(tmp_path / "c.yaml", benchmarks=("DemoB", "DemoA"), scales=(4, 2),
                       report={"compete": ["measured"], "visual_images": ["DemoB/demob_01"], "visual_scales": [2],
                               "crop_boxes": {"DemoB/demob_01": [10, 12, 24]},
                               "bootstrap": {"resamples": 500, "seed": 3}})
    out = tmp_path / "o" / "index.html"
    build_report(res, cfg, out)
    text = out.read_text()
    assert text.index(">DemoB (n=2)<") < text.index(">DemoA (n=2)<")
    assert text.index(">×4<") < text.index(">×2<")
    assert "DemoB / demob_01 ×2" in text and "crop top 10, left 12, 24×24 px (configured)" in text
    assert "500 resamples" in text
    with pytest.raises(ConfigError, match="demob_99"):
        build_report(res, cfg, out, visual_images=["DemoB/demob_99"])


def test_published_rows_for_standard_benchmarks(tmp_path):
    res = fabricate_results(tmp_path, scales=(2,), benchmarks=("Set5",), variants=("msnlan",), n_images=2,
                            with_runs=False, with_complexity=False)
    out = tmp_path / "o" / "index.html"
    build_report(res, None, out, no_visuals=True)
    text = out.read_text()
    assert "Published (cited, not measured here)" in text and "RCAN paper (ECCV 2018) Table 3" in text
    assert "Set5 (n=2 of 5)" in text  # 2 fabricated images: flagged
    md = (out.parent / "tables" / "main.md").read_text()
    assert "| RCAN | published<sup>a</sup> | 38.27/0.9614 |" in md  # not ranked: our n differs from the standard


def test_bad_report_config_and_published_files(tmp_path):
    with pytest.raises(ConfigError, match="report.colours"):
        parse_settings({"report": {"colours": 1}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="report.crop_boxes.Set5/bird"):
        parse_settings({"report": {"crop_boxes": {"Set5/bird": [1, 2]}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="report.bootstrap.level"):
        parse_settings({"report": {"bootstrap": {"level": 95}}}, "cfg.yaml")
    bad = tmp_path / "pub.csv"
    bad.write_text("method,scale,dataset,psnr,ssim,source\nX,2,Set5,38.1,0.96,\n")
    with pytest.raises(ConfigError, match=r"pub.csv, line 2: column 'source' is empty"):
        load_published(bad)
    bad.write_text("method,scale,dataset,psnr,ssim,source\nX,2,Set5,38.1,0.96,a\nX,2,Set5,38.2,0.96,b\n")
    with pytest.raises(ConfigError, match="duplicate rows for X x2 Set5"):
        load_published(bad)
    bad.write_text("method,scale,dataset,psnr\n")
    with pytest.raises(ConfigError, match="missing column"):
        load_published(bad)


def test_shipped_published_copy_is_the_cited_file():
    pub = load_published()
    assert len(pub) == 130 and pub.source.str.len().min() > 0
    assert set(pub.benchmark) == {"Set5", "Set14", "B100", "Urban100", "Manga109"}
    row = pub[(pub.method == "RCAN") & (pub.scale == 4) & (pub.benchmark == "Urban100")].iloc[0]
    assert (row.psnr, row.ssim) == (26.82, 0.8087)
    assert default_published_path().is_file()


def test_crop_choice_finds_the_differing_window():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)
    bic = hr.copy()
    var = hr.copy()
    var[40:56, 60:76] = 255 - var[40:56, 60:76]  # the only place the variant differs from bicubic
    box, reason = choose_crop(hr, bic, [var], 16, 8)
    assert box == CropBox(40, 60, 16) and "differ most from bicubic" in reason
    # no variant: the HR gradient energy decides (a single textured patch in a flat image)
    flat = np.full((80, 100), 100, np.uint8)
    flat[20:36, 30:46] = rng.integers(0, 255, (16, 16))
    box, reason = choose_crop(flat, None, [], 16, 8)
    assert abs(box.top - 20) <= 1 and abs(box.left - 30) <= 1 and "gradient" in reason


def test_crop_metrics_unshaved_and_zoom():
    hr = np.full((20, 20), 100, np.uint8)
    sr = hr.copy()
    sr[0, 0] = 110  # a corner pixel: it counts because crops are not shaved
    m = crop_metrics(sr, hr, 4)
    assert m["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / (100 / 400)))
    z = zoom_nearest(np.arange(4, dtype=np.uint8).reshape(2, 2), 3)
    assert z.shape == (6, 6) and (z[:3, :3] == 0).all() and (z[3:, 3:] == 3).all()


def test_report_cli_errors_are_user_errors(tmp_path, capsys):
    res = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), variants=("msnlan",), n_images=2)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"report": {"compete": ["nobody"]}}))
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(tmp_path / "x.html")]) == 2
    assert "'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_complexity_rows_tolerate_missing_fields_and_show_self_ensemble_cost():
    from msnlan.report.complexity_table import build_complexity_table
    from msnlan.results.complexity import complexity_frame

    full = {"params": {"total": 2_000_000, "trainable": 1_999_976, "fixed": 24},
            "macs": {"720p": {"lr_size": [360, 640], "total": 5e11, "as_executed": {"total": 5e11},
                              "direct_form": {"total": 9e11}, "uncounted": {"aten::softmax": 2}},
                     "48x48": {"total": 2e9}},
            "runtime": {"device": "CPU: x", "median_ms": 12.34, "peak_memory_mb": 100.0, "lr_size": [64, 64]},
            "self_ensemble_factor": 8, "tool": {"fvcore": "0.1.5", "torch": "2.13.0"}}
    sparse = {"params": {"total": 1_000_000}, "runtime": {"skipped": True, "median_ms": None}}
    frame = complexity_frame([("a", 2, None, full), ("b", 2, None, sparse)])
    t = build_complexity_table(frame, [2], ["a", "b"], {("a", 2)})
    rows = {r.key: r for r in t.sections[0].rows()}
    assert list(rows) == ["a", "a+", "b"]
    a, plus, b = rows["a"].cells, rows["a+"].cells, rows["b"].cells
    assert (a["params"].text, a["macs"].text, a["macs_direct"].text, a["macs48"].text) == ("2.000", "500.0", "900.0", "2.00")
    assert (a["runtime"].text, a["memory"].text, a["where"].text) == ("12.3", "100", "LR 64×64, CPU: x")
    assert "aten::softmax×2" in a["macs"].title and a["macs"].notes
    assert (plus["macs"].text, plus["macs_direct"].text, plus["runtime"].text) == ("4000.0", "7200.0", "–")
    assert (b["params"].text, b["macs"].text, b["runtime"].text, b["where"].text) == ("1.000", "–", "–", "–")


def test_report_on_real_evaluate_output(tmp_path):
    """Contract check with msnlan evaluate: its CSV, protocol.json and saved images feed the report."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        y, x = np.mgrid[0:40, 0:48]
        img = (128 + 80 * np.sin(x / 2.0 + i) * np.cos(y / 3.0) + rng.normal(0, 5, (40, 48)))
        (tmp_path / "Tiny" / "HR").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(np.stack([img] * 3, -1), 0, 255).astype(np.uint8)).save(tmp_path / "Tiny" / "HR" / f"t{i}.png")
    variant = tmp_path / "tiny.yaml"
    variant.write_text("_base_: msnlan\ndescription: a tiny network\n"
                       "model: {n_feats: 8, n_resgroups: 1, n_resblocks: 1, reduction: 4, msnlab: false}\n")
    res = tmp_path / "results"
    for method, extra in (("bicubic", []), ("tiny", ["--random-init"])):
        out = res / "eval" / method / "x2" / "Tiny.csv"
        args = ["evaluate", "--method", "bicubic" if method == "bicubic" else str(variant), "--scale", "2",
                "--dataset", str(tmp_path / "Tiny"), "--out", str(out),
                "--save-images", str(res / "images" / method / "x2" / "Tiny"), "--device", "cpu", *extra]
        assert main(args) == 0
    out = res / "report" / "index.html"
    assert main(["collect", "--results", str(res)]) == 0
    build_report(res, None, out)
    text = out.read_text()
    summary = pd.read_csv(res / "tables" / "summary.csv", keep_default_na=False).set_index("method")
    assert f"{summary.loc['bicubic'].psnr:.2f}" in text and f"{summary.loc['tiny'].ssim:.4f}" in text
    assert "Tiny / t0 ×2" in text and text.count('<img class="crop"') == 3  # HR, bicubic, tiny
    cells = pd.read_csv(out.parent / "tables" / "ablation_cells.csv", keep_default_na=False)
    # components and description from the protocol's recorded variant (no run folder here)
    assert cells[(cells.row == "tiny") & (cells.column == "MSNLAB")].text.iloc[0] == "–"
    assert cells[(cells.row == "tiny") & (cells.column == "Description")].text.iloc[0] == "a tiny network"


def test_templates_folder_from_environment(tmp_path, monkeypatch):
    from msnlan.report.render import reports_dir

    assert (reports_dir() / "report.html.j2").is_file()
    monkeypatch.setenv("MSNLAN_REPORTS", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="MSNLAN_REPORTS"):
        reports_dir()


def test_ablation_table_shows_each_variant_description(tmp_path):
    """Two variants with the same component marks (the README's patch sizes [3, 5] example and
    msnlan) are told apart by their descriptions."""
    res = fabricate_results(tmp_path, scales=(2,), benchmarks=("DemoA",), variants=("msnlan",), n_images=2,
                            with_complexity=False)
    run = res / "runs" / "msnlan" / "x2"
    shutil.copytree(run, res / "runs" / "k35" / "x2")
    cfg_path = res / "runs" / "k35" / "x2" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["variant"].update(name="k35", description="two-scale attention, patch sizes 3 and 5")
    cfg["variant"]["model"]["patch_sizes"] = [3, 5]
    cfg_path.write_text(yaml.safe_dump(cfg))
    shutil.copytree(res / "eval" / "msnlan", res / "eval" / "k35")
    out = tmp_path / "o" / "index.html"
    build_report(res, None, out, no_visuals=True)
    cells = pd.read_csv(out.parent / "tables" / "ablation_cells.csv", keep_default_na=False)
    described = cells[cells.column == "Description"].set_index("row").text
    assert described["msnlan"] == "MSNLAN as published (MSNLAB k=3/5/7, dense skips, RMAB)"
    assert described["k35"] == "two-scale attention, patch sizes 3 and 5"
    marks = cells[cells.column.isin(["MSNLAB", "Multi-scale", "Dense skips", "Block"])].pivot(
        index="row", columns="column", values="text")
    assert marks.loc["msnlan"].equals(marks.loc["k35"])  # the marks alone cannot tell them apart
