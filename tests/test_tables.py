"""Table rendering: best/second choice, ties, rounding to the printed digits, missing cells, the
main table's measured/published rows, n_images flags, and the LaTeX/Markdown forms."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from msnlan.errors import ConfigError
from msnlan.report.main_table import build_main_table, method_order
from msnlan.report.tables import (MISSING, Cell, Column, Row, RowGroup, Section, Table, format_number,
                                  latex_escape, rank_table, to_latex, to_markdown)


def _table(values: dict[str, list], decimals=2, higher=True, competes=None) -> Table:
    cols = [Column(k, k, ranked=True, higher_is_better=higher) for k in values]
    n = len(next(iter(values.values())))
    rows = []
    for i in range(n):
        cells = {k: Cell.number(v[i], decimals) for k, v in values.items()}
        rows.append(Row(f"m{i}", f"m{i}", cells, competes=True if competes is None else competes[i]))
    return Table("t", "T", "Method", cols, [Section("", [RowGroup("", rows)])])


def _marks(table: Table, col: str) -> list:
    return [r.cells[col].mark for r in table.sections[0].rows()]


def test_best_bold_second_underlined():
    t = _table({"psnr": [32.10, 32.50, 31.90, 32.30]})
    rank_table(t)
    assert _marks(t, "psnr") == [None, "best", None, "second"]


def test_ties_all_get_the_mark_and_second_is_next_distinct_value():
    t = _table({"psnr": [32.5, 32.5, 32.3, 32.3, 31.0]})
    rank_table(t)
    assert _marks(t, "psnr") == ["best", "best", "second", "second", None]


def test_rank_uses_printed_precision():
    # 32.414 and 32.406 both print as 32.41: a tie, although the raw values differ
    t = _table({"psnr": [32.414, 32.406, 32.395]})
    rank_table(t)
    assert [r.cells["psnr"].text for r in t.sections[0].rows()] == ["32.41", "32.41", "32.40"]
    assert _marks(t, "psnr") == ["best", "best", "second"]
    # SSIM at 4 decimals: 0.91235 vs 0.91244 print 0.9123/0.9124 (no tie at this precision)
    t = _table({"ssim": [0.91235, 0.91244]}, decimals=4)
    rank_table(t)
    assert _marks(t, "ssim") == ["second", "best"]


def test_missing_cells_dash_and_never_marked():
    t = _table({"psnr": [None, 30.0, math.nan, 29.0]})
    rank_table(t)
    texts = [r.cells["psnr"].text for r in t.sections[0].rows()]
    assert texts == [MISSING, "30.00", MISSING, "29.00"]
    assert _marks(t, "psnr") == [None, "best", None, "second"]


def test_single_value_gets_best_only():
    t = _table({"psnr": [None, 30.0]})
    rank_table(t)
    assert _marks(t, "psnr") == [None, "best"]


def test_lower_is_better_and_non_competing_rows():
    t = _table({"ms": [10.0, 5.0, 1.0]}, higher=False, competes=[True, True, False])
    rank_table(t)
    assert _marks(t, "ms") == ["second", "best", None]  # the fastest row does not compete


def test_format_number():
    assert format_number(None, 2) == MISSING
    assert format_number(float("nan"), 2) == MISSING
    assert format_number(float("inf"), 2) == "∞"
    assert format_number(-0.0004, 3, signed=True) == "+0.000"
    assert format_number(0.1234, 3, signed=True) == "+0.123"
    assert format_number(38.115, 2) == f"{38.115:.2f}"  # Python's correctly rounded repr is the reference


def test_latex_and_markdown_marks_and_escaping():
    t = _table({"psnr": [32.1, 32.5, 32.3]})
    t.sections[0].groups[0].rows[0].label = "no_msnlab & <x>"
    t.sections[0].groups[0].rows[0].cells["psnr"].notes.append("†")
    rank_table(t)
    tex = to_latex(t)
    assert r"\textbf{32.50}" in tex and r"\underline{32.30}" in tex
    assert r"no\_msnlab \& \textless{}x\textgreater{}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"32.10\textsuperscript{\dag{}}" in tex
    md = to_markdown(t)
    assert "**32.50**" in md and "<ins>32.30</ins>" in md
    assert "no\\_msnlab & &lt;x&gt;" in md
    assert latex_escape("×2 – 100%") == r"$\times$2 -- 100\%"


# ------------------------------------------------------------------ the main table

def _summary(rows):
    cols = ["method", "variant", "self_ensemble", "scale", "benchmark", "psnr", "ssim", "n_images",
            "n_infinite_psnr", "lr_source", "tiling", "shave", "color_space"]
    out = []
    for method, scale, bench, psnr, ssim, n in rows:
        out.append([method, "" if method == "bicubic" else method.rstrip("+"), method.endswith("+"), scale, bench,
                    psnr, ssim, n, 0, "generated", "none", scale, "Y"])
    return pd.DataFrame(out, columns=cols)


def _published(rows):
    return pd.DataFrame([dict(zip(["method", "scale", "benchmark", "psnr", "ssim", "source"], r)) for r in rows])


def _find(table, method, key, section=0):
    for r in table.sections[section].rows():
        if r.key == method:
            return r.cells[key]
    raise KeyError(method)


def test_main_table_published_rows_separate_and_ranked_with_measured():
    summary = _summary([("bicubic", 2, "Set5", 33.66, 0.9299, 5), ("msnlan", 2, "Set5", 38.30, 0.9617, 5)])
    pub = _published([("RCAN", 2, "Set5", 38.27, 0.9614, "RCAN paper"), ("EDSR", 2, "Set5", 38.30, 0.9602, "EDSR p")])
    t = build_main_table(summary, ["Set5"], [2], pub, variants=["msnlan"])
    groups = t.sections[0].groups
    assert [g.kind for g in groups] == ["measured", "published"]
    assert [r.key for r in groups[1].rows] == ["RCAN", "EDSR"]
    # msnlan and EDSR tie at 38.30: both bold; RCAN second
    assert _find(t, "msnlan", "Set5/psnr").mark == "best"
    assert _find(t, "EDSR", "Set5/psnr").mark == "best"
    assert _find(t, "RCAN", "Set5/psnr").mark == "second"
    assert _find(t, "msnlan", "Set5/ssim").mark == "best"
    assert _find(t, "RCAN", "Set5/ssim").mark == "second"
    texts = [text for _, text in t.footnotes]
    assert "RCAN paper" in texts and "EDSR p" in texts
    assert _find(t, "RCAN", "source").text == "published"
    assert _find(t, "RCAN", "source").notes == [dict((txt, m) for m, txt in t.footnotes)["RCAN paper"]]


def test_main_table_compete_selection():
    summary = _summary([("bicubic", 2, "Set5", 33.66, 0.9299, 5), ("msnlan", 2, "Set5", 38.00, 0.9600, 5)])
    pub = _published([("RCAN", 2, "Set5", 38.27, 0.9614, "RCAN paper")])
    t = build_main_table(summary, ["Set5"], [2], pub, compete=["measured"])
    assert _find(t, "msnlan", "Set5/psnr").mark == "best"
    assert _find(t, "bicubic", "Set5/psnr").mark == "second"
    assert _find(t, "RCAN", "Set5/psnr").mark is None
    t = build_main_table(summary, ["Set5"], [2], pub, compete=["msnlan", "RCAN"])
    assert _find(t, "RCAN", "Set5/psnr").mark == "best" and _find(t, "msnlan", "Set5/psnr").mark == "second"
    with pytest.raises(ConfigError, match="'SwinIR'"):
        build_main_table(summary, ["Set5"], [2], pub, compete=["SwinIR"])


def test_partial_manga109_is_flagged_and_not_ranked_against_published():
    summary = _summary([("bicubic", 2, "Manga109", 30.0, 0.93, 52), ("msnlan", 2, "Manga109", 39.9, 0.98, 52)])
    pub = _published([("RCAN", 2, "Manga109", 39.44, 0.9786, "RCAN paper")])
    t = build_main_table(summary, ["Manga109"], [2], pub)
    col = next(c for c in t.columns if c.key == "Manga109/psnr")
    assert col.group == "Manga109 (n=52 of 109)" and col.group_notes
    note = dict((m, txt) for m, txt in t.footnotes)[col.group_notes[0]]
    assert "NOT comparable" in note
    rcab = _find(t, "RCAN", "Manga109/psnr")
    assert rcab.text == "39.44" and rcab.mark is None and not rcab.rankable
    assert _find(t, "msnlan", "Manga109/psnr").mark == "best"


def test_standard_count_not_flagged_and_different_n_within_a_column_flagged():
    summary = _summary([("bicubic", 4, "Set14", 26.0, 0.70, 14), ("msnlan", 4, "Set14", 28.9, 0.79, 14),
                        ("rcab", 4, "Set14", 29.5, 0.80, 13)])
    t = build_main_table(summary, ["Set14"], [4], None, variants=["msnlan", "rcab"])
    col = next(c for c in t.columns if c.key == "Set14/psnr")
    assert col.group == "Set14" and not col.group_notes
    odd = _find(t, "rcab", "Set14/psnr")
    assert odd.notes and not odd.rankable and odd.mark is None
    assert _find(t, "msnlan", "Set14/psnr").mark == "best"


def test_demo_benchmarks_have_no_published_rows_and_say_so():
    summary = _summary([("bicubic", 2, "DemoA", 30.0, 0.9, 3), ("msnlan", 2, "DemoA", 31.0, 0.91, 3)])
    pub = _published([("RCAN", 2, "Set5", 38.27, 0.9614, "RCAN paper")])
    t = build_main_table(summary, ["DemoA"], [2], pub)
    assert [g.kind for g in t.sections[0].groups] == ["measured"]
    assert any("No published numbers for DemoA" in txt for _, txt in t.footnotes)
    assert t.columns[1].group == "DemoA (n=3)"


def test_self_ensemble_rows_marked_with_cost_and_missing_cells():
    summary = _summary([("bicubic", 2, "Set5", 33.0, 0.93, 5), ("msnlan", 2, "Set5", 38.0, 0.96, 5),
                        ("msnlan+", 2, "Set5", 38.1, 0.961, 5), ("msnlan", 2, "Set14", 33.9, 0.92, 14)])
    t = build_main_table(summary, ["Set5", "Set14"], [2], None, variants=["msnlan"])
    rows = {r.key: r for r in t.sections[0].rows()}
    assert list(rows) == ["bicubic", "msnlan", "msnlan+"]
    assert rows["msnlan+"].label_notes
    assert "8x" in dict((m, txt) for m, txt in t.footnotes)[rows["msnlan+"].label_notes[0]]
    assert rows["bicubic"].cells["Set14/psnr"].text == MISSING
    assert rows["msnlan+"].cells["Set14/ssim"].text == MISSING


def test_method_order():
    assert method_order(["rcab", "msnlan+", "bicubic", "msnlan", "a"], ["msnlan", "rcab"]) == \
        ["bicubic", "msnlan", "msnlan+", "rcab", "a"]
