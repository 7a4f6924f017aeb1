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
import unicodedata
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
    spread: str = ""                # e.g. "± 0.02" over seeds: LaTeX/Markdown print it after the value, HTML in the title

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
    joined: bool = False         # LaTeX/Markdown: one "a/b" cell with the group's other joined columns
    latex_note: bool = False     # LaTeX: listed in the notes below the table instead of as a column


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

    def display_columns(self, *, latex: bool = False) -> list["DisplayColumn"]:
        """The printed columns of the LaTeX/Markdown forms: consecutive `joined` columns of one group
        become one "PSNR/SSIM" column (the layout of published SR tables); with `latex`, the
        `latex_note` columns are left out (they go to the notes)."""
        out: list[DisplayColumn] = []
        for col in self.columns:
            if latex and col.latex_note:
                continue
            last = out[-1] if out else None
            if (col.joined and last is not None and last.columns[-1].joined and col.group
                    and last.group == col.group):
                last.columns.append(col)
            else:
                out.append(DisplayColumn([col]))
        return out


@dataclass
class DisplayColumn:
    """One printed column: a model column, or several joined ones shown as "a/b" in one cell."""

    columns: list[Column]

    @property
    def label(self) -> str:
        return "/".join(c.label for c in self.columns)

    @property
    def group(self) -> str:
        return self.columns[0].group

    @property
    def group_notes(self) -> list[str]:
        return self.columns[0].group_notes

    @property
    def align(self) -> str:
        return "c" if len(self.columns) > 1 else self.columns[0].align

    def cells(self, row: "Row") -> list[Cell]:
        return [row.cells.get(c.key, Cell()) for c in self.columns]


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
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
    "×": r"$\times$", "–": "--", "—": "---", "✓": r"\checkmark{}", "†": r"\dag{}", "‡": r"\ddag{}",
    "§": r"\S{}", "¶": r"\P{}", "‖": r"$\|$", "♯": r"$\sharp$", "♭": r"$\flat$", "Δ": r"$\Delta$",
    "±": r"$\pm$", "∞": r"$\infty$", "−": "-", "≥": r"$\geq$", "≤": r"$\leq$", "·": r"$\cdot$",
    "≈": r"$\approx$", "≠": r"$\neq$", "µ": r"$\mu$", "μ": r"$\mu$", "°": r"$^\circ$", "…": r"\ldots{}",
    "‘": "`", "’": "'", "“": "``", "”": "''", "\u00a0": "~", "ß": r"\ss{}", "æ": r"\ae{}", "Æ": r"\AE{}",
    "ø": r"\o{}", "Ø": r"\O{}", "å": r"\aa{}", "Å": r"\AA{}", "œ": r"\oe{}", "Œ": r"\OE{}", "ł": r"\l{}",
    "Ł": r"\L{}", "ı": r"\i{}",
}
# combining accents (after Unicode NFD decomposition) -> the LaTeX accent macro
_LATEX_ACCENTS = {"\u0301": "'", "\u0300": "`", "\u0302": "^", "\u0308": '"', "\u0303": "~", "\u0304": "=",
                  "\u0306": "u", "\u0307": ".", "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c",
                  "\u0328": "k"}


def _latex_char(ch: str) -> str:
    if ch in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[ch]
    if ch.isascii():
        return ch
    # every other character stays ASCII, so that the file compiles under pdflatex without
    # inputenc/fontenc setup: accented Latin letters through LaTeX's accent macros, the rest
    # as a visible code point
    base, *marks = unicodedata.normalize("NFD", ch)
    if base.isascii() and marks and all(m in _LATEX_ACCENTS for m in marks):
        out = _latex_char(base)
        for m in marks:
            out = "\\" + _LATEX_ACCENTS[m] + "{" + out + "}"
        return out
    return f"[U+{ord(ch):04X}]"


def latex_escape(text: str) -> str:
    """Text as ASCII LaTeX that compiles with the packages named in the table's header."""
    return "".join(_latex_char(ch) for ch in str(text))


def _latex_breakable(text: str) -> str:
    """Escaped note text where long paths may break after a slash."""
    return latex_escape(text).replace("/", r"/\allowbreak{}")


def _latex_notes(notes: list[str]) -> str:
    return "".join(r"\textsuperscript{" + latex_escape(n) + "}" for n in notes)


def _latex_cell(cell: Cell) -> str:
    body = latex_escape(cell.text)
    if cell.mark == "best":
        body = r"\textbf{" + body + "}"
    elif cell.mark == "second":
        body = r"\underline{" + body + "}"
    body += (" " + latex_escape(cell.spread)) if cell.spread else ""
    detail = (r" {\scriptsize " + latex_escape(cell.detail) + "}") if cell.detail else ""
    return body + _latex_notes(cell.notes) + detail


def _latex_display_cell(col: "DisplayColumn", row: Row) -> str:
    cells = col.cells(row)
    if len(cells) > 1 and all(c.missing for c in cells):
        return latex_escape(MISSING)
    return "/".join(_latex_cell(c) for c in cells)


FITS = ("shrink", "resize", "natural")
FLOATS = ("auto", "table", "table*")
#: a two-column page's column (IEEEtran: 3.5 in); wider tables go into table* when float is auto
COLUMN_WIDTH_PT = 252.0
#: table rows (with section/group label rows) that still fit one page with the notes below them:
#: article's 10 pt text height is 550 pt, a booktabs row about 12 pt
MAX_ROWS_PER_FLOAT = 32


@dataclass(frozen=True)
class LatexOptions:
    """How the .tex tables are laid out (the report's `latex:` settings).

    fit: "shrink" scales a tabular down to \\linewidth only where it is wider (graphicx);
    "resize" always scales it to \\linewidth (\\resizebox{\\linewidth}{!}{...}); "natural" never.
    split_by_scale: one float per scale (label tab:<key>-x<s>) instead of one per table; "auto"
    splits a table of more than MAX_ROWS_PER_FLOAT rows (it would not fit on one page).
    float: "table*" spans both columns of a two-column class; "auto" uses it where the table's
    estimated width exceeds one column (COLUMN_WIDTH_PT).
    """

    fit: str = "shrink"
    split_by_scale: bool | str = "auto"
    float: str = "auto"

    def __post_init__(self):
        if self.split_by_scale not in (True, False, "auto"):
            raise ValueError(f"LaTeX split_by_scale must be true, false or auto, got {self.split_by_scale!r}")
        if self.fit not in FITS:
            raise ValueError(f"LaTeX fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.float not in FLOATS:
            raise ValueError(f"LaTeX float must be one of {', '.join(FLOATS)}, got {self.float!r}")


def _estimated_width_pt(table: Table, columns: list["DisplayColumn"]) -> float:
    """A rough natural width: about 5 pt per character at 10 pt (3.5 pt in \\scriptsize), 12 pt of
    padding per column. Used only to choose table or table*."""
    def chars(cell: Cell) -> float:
        return len(cell.text) + sum(len(n) for n in cell.notes) * 0.7 + len(cell.detail) * 0.7

    rows = [r for s in table.sections for r in s.rows()]
    stub = max([len(table.stub)] + [len(r.label) + len("".join(r.label_notes)) for r in rows])
    width = stub * 5 + 12
    for col in columns:
        body = max([0.0] + [sum(chars(c) for c in col.cells(r)) + len(col.columns) - 1 for r in rows])
        width += max(len(col.label), body) * 5 + 12
    return width


def _latex_header(table: Table, columns: list["DisplayColumn"]) -> list[str]:
    lines = []
    if any(c.group for c in columns):
        heads, rules, pos = [""], [], 2
        i = 0
        while i < len(columns):
            j = i
            while j + 1 < len(columns) and columns[i].group and columns[j + 1].group == columns[i].group:
                j += 1
            span = j - i + 1
            text = latex_escape(columns[i].group) + _latex_notes(columns[i].group_notes)
            heads.append(text if span == 1 else r"\multicolumn{%d}{c}{%s}" % (span, text))
            if columns[i].group and span > 1:
                rules.append(r"\cmidrule(lr){%d-%d}" % (pos, pos + span - 1))
            pos += span
            i = j + 1
        lines.append(" & ".join(heads) + r" \\")
        if rules:
            lines.append(" ".join(rules))
    lines.append(" & ".join([latex_escape(table.stub)] + [latex_escape(c.label) for c in columns]) + r" \\")
    return lines


def _body_rows(sections: list[Section]) -> int:
    return sum(bool(s.label) + sum(bool(g.label) + len(g.rows) for g in s.groups) for s in sections)


def _splits(table: Table, options: LatexOptions) -> bool:
    if len(table.sections) < 2:
        return False
    if options.split_by_scale == "auto":
        return _body_rows(table.sections) > MAX_ROWS_PER_FLOAT
    return bool(options.split_by_scale)


def _latex_tabular(table: Table, columns: list["DisplayColumn"], sections: list[Section], *,
                   section_rows: bool = True) -> list[str]:
    ncols = len(columns) + 1
    lines = [r"\begin{tabular}{l" + "".join(c.align for c in columns) + "}", r"\toprule"]
    lines += _latex_header(table, columns)
    for section in sections:
        lines.append(r"\midrule")
        if section.label and section_rows:
            lines.append(r"\multicolumn{%d}{l}{\textit{%s}} \\" % (ncols, latex_escape(section.label)))
        for gi, group in enumerate(section.groups):
            if gi > 0:
                lines.append(r"\cmidrule(lr){1-%d}" % ncols)
            if group.label:
                lines.append(r"\multicolumn{%d}{l}{\textit{%s}} \\" % (ncols, latex_escape(group.label)))
            for row in group.rows:
                cells = [latex_escape(row.label) + _latex_notes(row.label_notes)]
                cells += [_latex_display_cell(c, row) for c in columns]
                lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _fitted(tabular: list[str], fit: str) -> list[str]:
    if fit == "natural":
        return tabular
    if fit == "resize":
        return [r"\resizebox{\linewidth}{!}{%", *tabular, "}"]
    # shrink: measure the tabular in a save box; scale it down only if it is wider than the line
    return [r"\ifdefined\msnlantablebox\else\newsavebox{\msnlantablebox}\fi",
            r"\sbox{\msnlantablebox}{%", *tabular, "}%",
            r"\ifdim\wd\msnlantablebox>\linewidth",
            r"\resizebox{\linewidth}{!}{\usebox{\msnlantablebox}}%",
            r"\else", r"\usebox{\msnlantablebox}%", r"\fi"]


def _column_notes(table: Table, sections: list[Section]) -> list[str]:
    """The `latex_note` columns as note lines: one value for all rows, else "row: value" per row."""
    out = []
    for col in table.columns:
        if not col.latex_note:
            continue
        values = {}
        for row in (r for s in sections for r in s.rows()):
            cell = row.cells.get(col.key)
            if cell is not None and not cell.missing:
                values.setdefault(row.label, cell.text)
        if not values:
            continue
        by_value: dict[str, list[str]] = {}
        for label, value in values.items():
            by_value.setdefault(value, []).append(label)
        if len(by_value) == 1:
            text = f"{col.label}: {next(iter(by_value))}."
        elif all(len(labels) == 1 for labels in by_value.values()):
            text = f"{col.label}: " + "; ".join(f"{k}: {v}" for k, v in values.items()) + "."
        else:
            text = f"{col.label}: " + "; ".join(f"{v} ({', '.join(k)})" for v, k in by_value.items()) + "."
        out.append(_latex_breakable(text))
    return out


def _latex_float(table: Table, sections: list[Section], options: LatexOptions, *, caption: str,
                 label: str, section_rows: bool = True) -> list[str]:
    columns = table.display_columns(latex=True)
    env = options.float
    if env == "auto":
        env = "table*" if _estimated_width_pt(table, columns) > COLUMN_WIDTH_PT else "table"
    lines = [r"\begin{%s}[t]" % env, r"\centering", r"\caption{" + latex_escape(caption) + "}",
             r"\label{" + label + "}"]
    lines += _fitted(_latex_tabular(table, columns, sections, section_rows=section_rows), options.fit)
    notes = _column_notes(table, sections)
    for marker, text in table.footnotes:
        prefix = (r"\textsuperscript{" + latex_escape(marker) + "}~") if marker else ""
        notes.append(prefix + _latex_breakable(text))
    if notes:
        # the protocol notes: a block of short paragraphs that break lines at \linewidth
        lines += [r"\par\smallskip", r"{\footnotesize\raggedright"]
        lines += [n + r"\par" for n in notes]
        lines.append("}")
    lines.append(r"\end{%s}" % env)
    return lines


def latex_packages(body: str) -> list[str]:
    """The packages a generated table needs, from the commands it uses."""
    needs = ["booktabs"]
    if r"\checkmark" in body:
        needs.append("amssymb")
    if r"\resizebox" in body:
        needs.append("graphicx")
    return needs


def to_latex(table: Table, options: LatexOptions = LatexOptions()) -> str:
    """booktabs floats (one, or one per scale), ASCII only; the first line names the packages."""
    label = "tab:" + latex_label(table.key)
    caption = table.caption or table.title
    body: list[str] = []
    if _splits(table, options):
        for section in table.sections:
            suffix = section.label.replace("×", "x")
            body += _latex_float(table, [section], options, caption=f"{caption} ({section.label})",
                                 label=f"{label}-{latex_label(suffix)}", section_rows=False)
            body.append("")
    else:
        body += _latex_float(table, table.sections, options, caption=caption, label=label)
    text = "\n".join(body).rstrip("\n") + "\n"
    header = ("% generated by msnlan report; needs \\usepackage{" + ",".join(latex_packages(text)) + "}"
              " in the preamble\n")
    return header + text


def latex_label(text: str) -> str:
    """A \\label key from any text: ASCII letters, digits and '-' only."""
    return "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text).strip("-") or "x"


def latex_float_count(table: Table, options: LatexOptions = LatexOptions()) -> int:
    """How many floats (captions) to_latex writes for `table`."""
    return len(table.sections) if _splits(table, options) else 1


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
    body += (" " + _md_escape(cell.spread)) if cell.spread else ""
    detail = (" " + _md_escape(cell.detail)) if cell.detail else ""
    return body + _md_notes(cell.notes) + detail


def _md_display_cell(col: DisplayColumn, row: Row) -> str:
    cells = col.cells(row)
    if len(cells) > 1 and all(c.missing for c in cells):
        return _md_escape(MISSING)
    return "/".join(_md_cell(c) for c in cells)


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table in the LaTeX form's cell layout (one "PSNR/SSIM" cell per
    benchmark); column groups are folded into the header labels."""
    columns = table.display_columns()
    heads = [_md_escape(table.stub)]
    for col in columns:
        label = f"{col.group} {col.label}" if col.group else col.label
        notes = col.group_notes if col.group else []
        heads.append(_md_escape(label) + _md_notes(notes))
    align = {"l": ":--", "c": ":-:", "r": "--:"}
    lines = [f"### {_md_escape(table.title)}", "",
             "| " + " | ".join(heads) + " |",
             "| :-- | " + " | ".join(align[c.align] for c in columns) + " |"]
    blank = [""] * len(columns)
    for section in table.sections:
        if section.label:
            lines.append("| " + " | ".join([f"**{_md_escape(section.label)}**"] + blank) + " |")
        for group in section.groups:
            if group.label:
                lines.append("| " + " | ".join([f"*{_md_escape(group.label)}*"] + blank) + " |")
            for row in group.rows:
                cells = [_md_escape(row.label) + _md_notes(row.label_notes)]
                cells += [_md_display_cell(c, row) for c in columns]
                lines.append("| " + " | ".join(cells) + " |")
    if table.footnotes:
        lines.append("")
        for marker, text in table.footnotes:
            lines.append((f"<sup>{_md_escape(marker)}</sup> " if marker else "") + _md_escape(text) + "  ")
    return "\n".join(lines) + "\n"
