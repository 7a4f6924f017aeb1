"""The tables/*.tex a user pastes into a paper: they compile under pdflatex (and lualatex/xelatex
where installed) with exactly the packages their first line names, without errors, warnings or
overfull boxes, in one- and two-column documents; and the cell layout of published SR tables
(one PSNR/SSIM cell per benchmark, Δ with its interval) in LaTeX and Markdown.

The compiling tests skip with the reason where pdflatex is absent (`.ci/run` installs Debian's
texlive-latex-base, texlive-latex-recommended and texlive-fonts-recommended)."""
from __future__ import annotations

import base64
import html
import re

import pytest

from latex_build import LAYOUTS, compile_tables, document_class, engine, needed_packages
from msnlan.cli import main
from msnlan.errors import ConfigError
from msnlan.report.settings import parse_settings
from msnlan.report.tables import (Cell, Column, LatexOptions, Row, RowGroup, Section, Table, latex_escape,
                                  rank_table, to_latex, to_markdown)
from test_report_fabricate import fabricate_results, write_config

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")
SCALES = (2, 3, 4)
VARIANTS = ("msnlan", "no_msnlab", "single_scale", "no_dense_skips", "rcab")
NO_PDFLATEX = "pdflatex is not installed (Debian: apt-get install texlive-latex-base texlive-latex-recommended " \
              "texlive-fonts-recommended; .ci/run does this)"


def _need(engine_name: str) -> None:
    if engine(engine_name) is None:
        pytest.skip(NO_PDFLATEX if engine_name == "pdflatex" else f"{engine_name} is not installed")


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    """The report of a fabricated results folder with the paper config's five benchmarks, all three
    scales, the five standard variants and a self-ensemble row."""
    root = tmp_path_factory.mktemp("paper")
    res = fabricate_results(root, benchmarks=BENCHMARKS, scales=SCALES, variants=VARIANTS, n_images=2,
                            size=(40, 48), self_ensemble=("msnlan",))
    cfg = write_config(root / "config.yaml", benchmarks=BENCHMARKS, scales=SCALES, variants=VARIANTS)
    out = res / "report" / "index.html"
    assert main(["collect", "--results", str(res)]) == 0
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out), "--no-visuals"]) == 0
    return out


def _tex_files(out):
    return sorted((out.parent / "tables").glob("*.tex"))


# The expected floats: the main table (7 measured and 11 published rows per scale, with label rows
# more than one page holds) is split into one float per scale; the ablation (5 variants x 3 scales)
# and the complexity table (7 rows x 3 scales) are one float each.
EXPECTED_TABLES = {"main": 3, "ablation": 1, "complexity": 1}


@pytest.mark.parametrize("engine_name", ["pdflatex", "lualatex", "xelatex"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_report_tables_compile_and_fit(paper_report, tmp_path, layout, engine_name):
    _need(engine_name)
    files = _tex_files(paper_report)
    assert [f.stem for f in files] == sorted(EXPECTED_TABLES)
    build = compile_tables(files, tmp_path, layout=layout, engine_name=engine_name)
    where = f"{engine_name}, {document_class(layout)[1]}"
    assert build.returncode == 0 and not build.errors(), f"{where}: {build.errors()}"
    assert build.overfull(1.0) == [], f"{where}: {build.overfull(1.0)}"
    assert build.warnings() == [], f"{where}: {build.warnings()}"
    assert build.tables == sum(EXPECTED_TABLES.values()), where
    assert build.pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_table_alone_with_the_packages_it_names(paper_report, tmp_path, layout):
    _need("pdflatex")
    for tex in _tex_files(paper_report):
        build = compile_tables([tex], tmp_path / tex.stem, layout=layout)
        assert build.returncode == 0 and build.warnings() == [] and build.overfull(1.0) == [], \
            (tex.name, needed_packages(tex), build.errors(), build.warnings(), build.overfull(1.0))
        assert build.tables == EXPECTED_TABLES[tex.stem]


def test_tex_files_are_ascii_and_name_their_packages(paper_report):
    for tex in _tex_files(paper_report):
        text = tex.read_text(encoding="utf-8")
        assert text.isascii(), (tex.name, sorted({ch for ch in text if not ch.isascii()}))
        packages = needed_packages(tex)
        assert packages[0] == "booktabs"
        assert ("amssymb" in packages) == (r"\checkmark" in text)
        assert ("graphicx" in packages) == (r"\resizebox" in text)
    complexity = (paper_report.parent / "tables" / "complexity.tex").read_text()
    assert r"FLOPs $\approx$ 2 $\times$ MACs" in complexity  # was a raw U+2248 that stopped pdflatex


def test_wide_tables_are_table_star_and_shrink_only_when_wider(paper_report):
    tables = paper_report.parent / "tables"
    main_tex = (tables / "main.tex").read_text()
    assert main_tex.count(r"\begin{table*}") == 3 and r"\label{tab:main-x3}" in main_tex
    assert r"\ifdim\wd\msnlantablebox>\linewidth" in main_tex
    # one PSNR/SSIM cell per benchmark: 1 label column + Source + 5 benchmarks
    assert r"\begin{tabular}{llccccc}" in main_tex
    assert main_tex.count("PSNR/SSIM") == 3 * 5
    ablation = (tables / "ablation.tex").read_text()
    assert re.search(r" & -\d\.\d{3}\*\\textsuperscript\{\\dag\{\}\} \{\\scriptsize \[-\d\.\d{3}, -\d\.\d{3}\]\}",
                     ablation)
    # the descriptions go to the notes, not into a column
    assert "Description: msnlan: MSNLAN as published" in ablation


def test_escaping_compiles(tmp_path):
    """Names with LaTeX's special characters and non-ASCII text compile and stay ASCII."""
    _need("pdflatex")
    evil = r"a_b&c%d#e$f<g>h~i^j\k{l}|m"
    t = Table("evil_key", "T", "Method", [Column("x", "PSNR ≈ 30", group="Set_5 & ≈", joined=True),
                                          Column("y", "SSIM", group="Set_5 & ≈", joined=True),
                                          Column("d", "Description", latex_note=True)],
              [Section("×2", [RowGroup("Grüße – ≥ ∞ µ 東京", [
                  Row(evil, evil, {"x": Cell.number(30.0, 2, notes=["†"]), "y": Cell.number(0.9, 4),
                                   "d": Cell("café ≈ naïve 東")})])])],
              footnotes=[("‡", "a note with ≈, µ, «quotes» and a path runs/<variant>/x<s>/config.yaml")])
    t.caption = "Caption with % and ≈ and Ü"
    tex = to_latex(t)
    assert tex.isascii()
    assert r"a\_b\&c\%d\#e\$f\textless{}g\textgreater{}h\textasciitilde{}i\textasciicircum{}j" in tex
    assert r"\textbackslash{}k\{l\}\textbar{}m" in tex
    assert r"Gr\"{u}\ss{}e" in tex and r"caf\'{e}" in tex and "[U+6771]" in tex
    path = tmp_path / "evil.tex"
    path.write_text(tex)
    for layout in LAYOUTS:
        build = compile_tables([path], tmp_path / layout, layout=layout)
        assert build.returncode == 0 and build.warnings() == [] and build.overfull(1.0) == [], \
            (build.errors(), build.warnings(), build.overfull(1.0))
        assert build.tables == 1


def _psnr_ssim_table() -> Table:
    cols = [Column("Set5/psnr", "PSNR", group="Set5", ranked=True, joined=True),
            Column("Set5/ssim", "SSIM", group="Set5", ranked=True, joined=True),
            Column("Set14/psnr", "PSNR", group="Set14", ranked=True, joined=True),
            Column("Set14/ssim", "SSIM", group="Set14", ranked=True, joined=True)]
    rows = []
    for name, vals in (("a", (38.30, 0.9617, 34.0, None)), ("b", (38.27, 0.9620, 33.9, None)),
                       ("c", (38.10, 0.9600, None, None))):
        rows.append(Row(name, name, {c.key: Cell.number(v, 2 if "psnr" in c.key else 4) for c, v in zip(cols, vals)}))
    t = Table("main", "PSNR / SSIM", "Method", cols, [Section("×2", [RowGroup("", rows)])])
    rank_table(t)
    return t


def test_one_psnr_ssim_cell_per_benchmark_in_latex_and_markdown():
    t = _psnr_ssim_table()
    tex = to_latex(t, LatexOptions(fit="natural"))
    assert r"\begin{tabular}{lcc}" in tex and r" & Set5 & Set14 \\" in tex and r"Method & PSNR/SSIM & PSNR/SSIM \\" in tex
    # each half keeps its own mark; a benchmark with no value at all is one dash
    assert r"a & \textbf{38.30}/\underline{0.9617} & \textbf{34.00}/-- \\" in tex
    assert r"b & \underline{38.27}/\textbf{0.9620} & \underline{33.90}/-- \\" in tex
    assert r"c & 38.10/0.9600 & -- \\" in tex
    md = to_markdown(t)
    assert "| Method | Set5 PSNR/SSIM | Set14 PSNR/SSIM |" in md
    assert "| a | **38.30**/<ins>0.9617</ins> | **34.00**/– |" in md
    assert "| c | 38.10/0.9600 | – |" in md


def test_ablation_cell_layout_in_latex_and_markdown():
    cell = Cell("+0.120*", 0.12, detail="[+0.090, +0.150]")
    t = Table("ablation", "A", "Variant", [Column("d", "Δ [95% CI]", group="Set5")],
              [Section("", [RowGroup("", [Row("v", "v", {"d": cell})])])])
    assert r"v & +0.120* {\scriptsize [+0.090, +0.150]} \\" in to_latex(t)
    assert "| v | +0.120\\* [+0.090, +0.150] |" in to_markdown(t)


def test_fit_float_and_split_options():
    t = _psnr_ssim_table()
    t.sections.append(Section("×4", [RowGroup("", [Row("a", "a", {"Set5/psnr": Cell.number(32.0, 2)})])]))
    natural = to_latex(t, LatexOptions(fit="natural", split_by_scale=False, float="table"))
    assert r"\resizebox" not in natural and natural.count(r"\begin{table}[t]") == 1
    assert natural.splitlines()[0] == r"% generated by msnlan report; needs \usepackage{booktabs} in the preamble"
    resized = to_latex(t, LatexOptions(fit="resize", float="table*"))
    assert r"\resizebox{\linewidth}{!}{%" in resized and r"\begin{table*}[t]" in resized
    assert r"\ifdim" not in resized and r"\usepackage{booktabs,graphicx}" in resized.splitlines()[0]
    split = to_latex(t, LatexOptions(split_by_scale=True))
    assert split.count(r"\caption{") == 2 and r"\label{tab:main-x2}" in split and r"\label{tab:main-x4}" in split
    assert r"\caption{PSNR / SSIM ($\times$4)}" in split
    assert r"\textit{$\times$4}" not in split  # the caption names the scale: no section row
    assert to_latex(t).count(r"\caption{") == 1  # auto: short tables stay one float
    with pytest.raises(ValueError, match="fit"):
        LatexOptions(fit="squeeze")


def test_report_latex_settings_are_schema_checked(tmp_path):
    s = parse_settings({"report": {"latex": {"fit": "resize", "split_by_scale": True, "float": "table*"}}}, "cfg.yaml")
    assert s.latex == LatexOptions(fit="resize", split_by_scale=True, float="table*")
    assert parse_settings({}, "cfg.yaml").latex == LatexOptions()
    with pytest.raises(ConfigError, match="report.latex.fit"):
        parse_settings({"report": {"latex": {"fit": "squeeze"}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="report.latex.width"):
        parse_settings({"report": {"latex": {"width": 3}}}, "cfg.yaml")


def test_report_setting_and_cli_option_reach_the_tex_files(tmp_path):
    res = fabricate_results(tmp_path, scales=(2, 4), n_images=2, size=(40, 48), with_runs=False)
    cfg = write_config(tmp_path / "config.yaml", report={"latex": {"fit": "resize", "split_by_scale": True}})
    out = tmp_path / "o" / "index.html"
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out), "--no-visuals"]) == 0
    main_tex = (out.parent / "tables" / "main.tex").read_text()
    assert main_tex.count(r"\caption{") == 2 and r"\resizebox{\linewidth}{!}{%" in main_tex
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out), "--no-visuals",
                 "--latex-fit", "natural"]) == 0
    assert r"\resizebox" not in (out.parent / "tables" / "main.tex").read_text()


def test_html_offers_each_table_as_tex_and_md(paper_report):
    text = paper_report.read_text()
    tables = paper_report.parent / "tables"
    for key in EXPECTED_TABLES:
        for suffix in (".tex", ".md"):
            name = f"{key}{suffix}"
            m = re.search(r'<a class="download" href="data:[^;]+;charset=utf-8;base64,([A-Za-z0-9+/=]+)" '
                          rf'download="{re.escape(name)}">', text)
            assert m, name
            assert base64.b64decode(m.group(1)).decode("utf-8") == (tables / name).read_text()
            # and the same text to select and copy, beside the table
            area = re.search(rf'aria-label="[^"]+ source of {re.escape(name)}">(.*?)</textarea>', text, re.S)
            assert area and html.unescape(area.group(1)) == (tables / name).read_text()
    assert text.index('download="main.tex"') < text.index('id="ablation"')


def test_latex_escape_covers_every_character_the_tables_use():
    for ch in "×–—✓†‡§¶‖♯♭Δ±∞−≥≤·≈≠":
        assert latex_escape(ch).isascii() and "U+" not in latex_escape(ch), ch


def test_small_report_tables_compile_and_stay_single_column(tmp_path):
    """The issue's first case: two benchmarks at x2/x4 (it stopped pdflatex, and ran 240/449 pt wide)."""
    _need("pdflatex")
    res = fabricate_results(tmp_path, n_images=2, size=(40, 48), self_ensemble=("msnlan",))
    cfg = write_config(tmp_path / "config.yaml")
    out = tmp_path / "o" / "index.html"
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out), "--no-visuals"]) == 0
    files = _tex_files(out)
    for layout in LAYOUTS:
        build = compile_tables(files, tmp_path / layout, layout=layout)
        assert build.returncode == 0 and build.warnings() == [] and build.overfull(1.0) == [], \
            (layout, build.errors(), build.warnings(), build.overfull(1.0))
        assert build.tables == 3
