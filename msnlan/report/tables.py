"""A small table model shared by every report table, its best/second ranking, and the LaTeX and
Markdown renderers (HTML is rendered by the jinja2 template from the same objects).

Ranking rule (documented in every ranked table's footnote):
- a column is ranked over the rows that compete (the user's selection), per section (scale);
- values are compared AFTER rounding to the printed precision, so the marks always agree with
  the printed digits: two rows printing 32.41 are tied;
- every row tied at the best printed value is bold; the next distinct printed value is
  underlined (again all ties), also when several rows share the best.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MISSING = "–"  # en dash: a cell with no value
SYMBOLS = ("†", "‡", "§", "¶", "‖", "#", "♯", "♭")


def format_number(value: float | None, decimals: int, *, signed: bool = False) -> str:
    """The printed form of a value; None/NaN -> '–', infinities -> '∞'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    # "-0.00" reads as a negative difference that is not there
    if float(text) == 0:
        text = f"{0:+.{decimals}f}" if signed else f"{0:.{decimals}f}"
    return text


def displayed_value(value: float, decimals: int) -> float:
    """The value as printed (rounded to `decimals`), the quantity that ranking compares."""
    return float(f"{value:.{decimals}f}")


@dataclass
class Cell:
    """One table cell: its printed text and, for numbers, the value behind it."""

    text: str = MISSING
    value: float | None = None
    decimals: int | None = None
    mark: str | None = None         # "best" | "second" (set by rank_table)
    notes: list[str] = field(default_factory=list)  # footnote markers shown after the text
    rankable: bool = True           # False: shown but never marked (e.g. not comparable)
    css: str = ""                   # extra HTML class, e.g. "sig" for a CI excluding 0
    title: str = ""                 # HTML tooltip
    detail: str = ""                # secondary text: HTML puts it on a second line, LaTeX/Markdown after a space

    @classmethod
    def number(cls, value: float | None, decimals: int, **kwargs) -> "Cell":
        if value is not None and isinstance(value, float) and math.isnan(value):
            value = None
        return cls(format_number(value, decimals), value, decimals, **kwargs)

    @property
    def missing(self) -> bool:
        return self.text == MISSING


@dataclass
class Column:
    key: str
    label: str
    group: str = ""              # spanning header over consecutive columns with the same group
    group_notes: list[str] = field(default_factory=list)
    ranked: bool = False
    higher_is_better: bool = True
    align: str = "r"             # "l" | "c" | "r"


@dataclass
class Row:
    key: str                     # method name (what the user names in the compete selection)
    label: str
    cells: dict[str, Cell]
    kind: str = "measured"       # "measured" | "published" (HTML class; compete keyword)
    competes: bool = True
    label_notes: list[str] = field(default_factory=list)


@dataclass
class RowGroup:
    label: str
    rows: list[Row]
    kind: str = "measured"


@dataclass
class Section:
    label: str                   # e.g. "×2"; the ranking scope
    groups: list[RowGroup]

    def rows(self) -> list[Row]:
        return [r for g in self.groups for r in g.rows]


@dataclass
class Table:
    key: str                     # file stem under report/tables/
    title: str
    stub: str                    # header of the row-label column
    columns: list[Column]
    sections: list[Section]
    footnotes: list[tuple[str, str]] = field(default_factory=list)  # (marker, text); marker "" = plain
    caption: str = ""

    def column_groups(self) -> list[tuple[str, int, list[str]]]:
        """Consecutive columns sharing a group, as (group label, span, notes)."""
        out: list[tuple[str, int, list[str]]] = []
        for col in self.columns:
            if out and col.group and out[-1][0] == col.group:
                out[-1] = (col.group, out[-1][1] + 1, out[-1][2])
            else:
                out.append((col.group, 1, list(col.group_notes)))
        return out

    def group_header(self) -> list[dict]:
        """The first header row of a grouped table: spanning group cells, and the ungrouped
        columns' own labels (which span both header rows)."""
        out, i = [], 0
        for label, span, notes in self.column_groups():
            col = self.columns[i]
            if label:
                out.append({"label": label, "span": span, "notes": notes, "single": False, "align": "c"})
            else:
                out.append({"label": col.label, "span": 1, "notes": [], "single": True, "align": col.align})
            i += span
        return out

    @property
    def has_groups(self) -> bool:
        return any(c.group for c in self.columns)


class Footnotes:
    """Assigns one marker per distinct footnote text, in order of first use."""

    def __init__(self, markers=SYMBOLS):
        self._markers = list(markers)
        self._items: dict[str, str] = {}

    def marker(self, text: str) -> str:
        if text not in self._items:
            i = len(self._items)
            base = self._markers[i % len(self._markers)]
            self._items[text] = base * (i // len(self._markers) + 1)
        return self._items[text]

    def items(self) -> list[tuple[str, str]]:
        return [(m, t) for t, m in self._items.items()]


def rank_table(table: Table) -> None:
    """Mark best (all ties) and second best (next distinct printed value) per ranked column/section."""
    for section in table.sections:
        rows = [r for r in section.rows() if r.competes]
        for col in table.columns:
            if not col.ranked:
                continue
            cells = [r.cells[col.key] for r in rows if col.key in r.cells]
            for c in cells:
                c.mark = None
            valued = [c for c in cells if c.rankable and c.value is not None and c.decimals is not None
                      and math.isfinite(c.value)]
            shown = sorted({displayed_value(c.value, c.decimals) for c in valued},
                           reverse=col.higher_is_better)
            for c in valued:
                v = displayed_value(c.value, c.decimals)
                if v == shown[0]:
                    c.mark = "best"
                elif len(shown) > 1 and v == shown[1]:
                    c.mark = "second"


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "×": r"$\times$", "–": "--", "—": "---", "✓": r"\checkmark{}", "†": r"\dag{}", "‡": r"\ddag{}",
    "§": r"\S{}", "¶": r"\P{}", "‖": r"$\|$", "♯": r"$\sharp$", "♭": r"$\flat$", "Δ": r"$\Delta$",
    "±": r"$\pm$", "∞": r"$\infty$", "−": "-", "≥": r"$\geq$", "≤": r"$\leq$", "·": r"$\cdot$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_notes(notes: list[str]) -> str:
    return "".join(r"\textsuperscript{" + latex_escape(n) + "}" for n in notes)


def _latex_cell(cell: Cell) -> str:
    body = latex_escape(cell.text)
    if cell.mark == "best":
        body = r"\textbf{" + body + "}"
    elif cell.mark == "second":
        body = r"\underline{" + body + "}"
    detail = (" " + latex_escape(cell.detail)) if cell.detail else ""
    return body + _latex_notes(cell.notes) + detail


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}, and amssymb for \\checkmark)."""
    ncols = len(table.columns) + 1
    lines = [
        "% generated by msnlan report; needs \\usepackage{booktabs} (and amssymb for \\checkmark)",
        r"\begin{table}[t]", r"\centering",
        r"\caption{" + latex_escape(table.caption or table.title) + "}",
        r"\label{tab:" + table.key.replace("_", "-") + "}",
        r"\begin{tabular}{l" + "".join(c.align for c in table.columns) + "}",
        r"\toprule",
    ]
    if table.has_groups:
        heads, rules, pos = [""], [], 2
        for label, span, notes in table.column_groups():
            text = latex_escape(label) + _latex_notes(notes)
            heads.append(text if span == 1 else r"\multicolumn{%d}{c}{%s}" % (span, text))
            if label:
                rules.append(r"\cmidrule(lr){%d-%d}" % (pos, pos + span - 1))
            pos += span
        lines.append(" & ".join(heads) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join([latex_escape(table.stub)] + [latex_escape(c.label) for c in table.columns]) + r" \\")
    for section in table.sections:
        lines.append(r"\midrule")
        if section.label:
            lines.append(r"\multicolumn{%d}{l}{\textit{%s}} \\" % (ncols, latex_escape(section.label)))
        for gi, group in enumerate(section.groups):
            if gi > 0:
                lines.append(r"\cmidrule(lr){1-%d}" % ncols)
            if group.label:
                lines.append(r"\multicolumn{%d}{l}{\textit{%s}} \\" % (ncols, latex_escape(group.label)))
            for row in group.rows:
                cells = [latex_escape(row.label) + _latex_notes(row.label_notes)]
                cells += [_latex_cell(row.cells.get(c.key, Cell())) for c in table.columns]
                lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footnotes:
        lines.append(r"\par\smallskip\footnotesize\raggedright")
        for marker, text in table.footnotes:
            prefix = (r"\textsuperscript{" + latex_escape(marker) + "}~") if marker else ""
            lines.append(prefix + latex_escape(text) + r"\\")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Markdown

def _md_escape(text: str) -> str:
    out = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")
    return out.replace("<", "&lt;").replace(">", "&gt;")


def _md_notes(notes: list[str]) -> str:
    return "".join(f"<sup>{_md_escape(n)}</sup>" for n in notes)


def _md_cell(cell: Cell) -> str:
    body = _md_escape(cell.text)
    if cell.mark == "best":
        body = f"**{body}**"
    elif cell.mark == "second":
        body = f"<ins>{body}</ins>"  # Markdown has no underline; GitHub renders <ins> underlined
    detail = (" " + _md_escape(cell.detail)) if cell.detail else ""
    return body + _md_notes(cell.notes) + detail


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table; column groups are folded into the header labels."""
    heads = [_md_escape(table.stub)]
    for col in table.columns:
        label = f"{col.group} {col.label}" if col.group else col.label
        notes = col.group_notes if col.group else []
        heads.append(_md_escape(label) + _md_notes(notes))
    align = {"l": ":--", "c": ":-:", "r": "--:"}
    lines = [f"### {_md_escape(table.title)}", "",
             "| " + " | ".join(heads) + " |",
             "| :-- | " + " | ".join(align[c.align] for c in table.columns) + " |"]
    blank = [""] * len(table.columns)
    for section in table.sections:
        if section.label:
            lines.append("| " + " | ".join([f"**{_md_escape(section.label)}**"] + blank) + " |")
        for group in section.groups:
            if group.label:
                lines.append("| " + " | ".join([f"*{_md_escape(group.label)}*"] + blank) + " |")
            for row in group.rows:
                cells = [_md_escape(row.label) + _md_notes(row.label_notes)]
                cells += [_md_cell(row.cells.get(c.key, Cell())) for c in table.columns]
                lines.append("| " + " | ".join(cells) + " |")
    if table.footnotes:
        lines.append("")
        for marker, text in table.footnotes:
            lines.append((f"<sup>{_md_escape(marker)}</sup> " if marker else "") + _md_escape(text) + "  ")
    return "\n".join(lines) + "\n"
