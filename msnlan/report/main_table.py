"""The main results table: methods x benchmarks x scales, PSNR/SSIM, measured and published rows."""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import pandas as pd

from ..errors import ConfigError
from .published import STANDARD_COUNTS
from .tables import Cell, Column, Footnotes, Row, RowGroup, Section, Table, rank_table

PSNR_DECIMALS, SSIM_DECIMALS = 2, 4
COMPETE_KEYWORDS = ("all", "measured", "published")
SELF_ENSEMBLE_NOTE = ("+ : x8 self-ensemble (the 8 flips/transposes, outputs averaged); it costs 8x the "
                      "inference MACs and time of the single model")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")


def scale_label(scale: int) -> str:
    return f"×{scale}"


def method_order(methods: Iterable[str], variants: Sequence[str] = ()) -> list[str]:
    """bicubic first, then the variants in the given order (others sorted), each followed by its '+' row."""
    methods = set(methods)
    bases = [v for v in variants if v in methods or f"{v}+" in methods]
    rest = sorted({m[:-1] if m.endswith("+") else m for m in methods} - set(bases) - {"bicubic"})
    out = ["bicubic"] if "bicubic" in methods else []
    for base in list(bases) + rest:
        out += [m for m in (base, f"{base}+") if m in methods]
    return out


def resolve_compete(tokens: Sequence[str] | None, known: Iterable[str]) -> list[str]:
    """Check the user's selection of competing rows: keywords or method names (case-insensitive)."""
    if not tokens:
        return ["all"]
    known_lower = {k.lower() for k in known}
    out = []
    for tok in tokens:
        t = str(tok).strip()
        if t.lower() not in COMPETE_KEYWORDS and t.lower() not in known_lower:
            raise ConfigError(f"report compete selection: {t!r} is neither a row name ({', '.join(sorted(known))}) "
                              f"nor one of {', '.join(COMPETE_KEYWORDS)}")
        out.append(t.lower())
    return out


def _competes(key: str, kind: str, compete: list[str]) -> bool:
    return "all" in compete or kind in compete or key.lower() in compete


def _reference_n(values: list[int]) -> int | None:
    """The image count most measured rows of a column share (ties: the larger count)."""
    if not values:
        return None
    counts = Counter(values)
    return max(counts, key=lambda n: (counts[n], n))


def build_main_table(summary: pd.DataFrame, benchmarks: Sequence[str], scales: Sequence[int],
                     published: pd.DataFrame | None = None, *, variants: Sequence[str] = (),
                     compete: Sequence[str] | None = None) -> Table:
    """Measured rows (bicubic, variants, '+' rows) and published rows per scale, ranked per column."""
    notes, sources = Footnotes(), Footnotes(LETTERS)
    pub = published if published is not None else pd.DataFrame(
        columns=["method", "scale", "benchmark", "psnr", "ssim", "source"])
    pub_benchmarks = [b for b in benchmarks if b in STANDARD_COUNTS]
    pub = pub[pub.benchmark.isin(pub_benchmarks) & pub.scale.isin(list(scales))]
    known = set(summary.method) | set(pub.method)
    compete_sel = resolve_compete(compete, known)

    # the image count behind each measured (scale, benchmark) column
    ref_n: dict[tuple[int, str], int | None] = {}
    for s in scales:
        for b in benchmarks:
            sel = summary[(summary.scale == s) & (summary.benchmark == b)]
            ref_n[(s, b)] = _reference_n([int(n) for n in sel.n_images])

    columns = [Column("source", "Source", align="l")]
    for b in benchmarks:
        group_notes, label = [], b
        ns = {ref_n[(s, b)] for s in scales if ref_n[(s, b)] is not None}
        std = STANDARD_COUNTS.get(b)
        if std is None:
            label = f"{b} (n={ns.pop()})" if len(ns) == 1 else b
        elif ns and ns != {std}:
            label = f"{b} (n={ns.pop()} of {std})" if len(ns) == 1 else f"{b} (n≠{std})"
            group_notes.append(notes.marker(
                f"{b}: our mean is over fewer/other images than the standard {std}; it is NOT comparable "
                "with published numbers, so published rows are not ranked in this column"))
        columns.append(Column(f"{b}/psnr", "PSNR", group=label, group_notes=group_notes, ranked=True))
        columns.append(Column(f"{b}/ssim", "SSIM", group=label, group_notes=list(group_notes), ranked=True))

    sections = []
    for s in scales:
        measured = summary[summary.scale == s]
        rows = []
        for method in method_order(measured.method, variants):
            m = measured[measured.method == method]
            self_ens = bool(m.self_ensemble.iloc[0])
            row = Row(method, "Bicubic" if method == "bicubic" else method, {"source": Cell("measured")},
                      kind="measured", competes=_competes(method, "measured", compete_sel))
            if self_ens:
                row.label_notes.append(notes.marker(SELF_ENSEMBLE_NOTE))
            for b in benchmarks:
                rec = m[m.benchmark == b]
                if rec.empty:
                    row.cells[f"{b}/psnr"], row.cells[f"{b}/ssim"] = Cell(), Cell()
                    continue
                rec = rec.iloc[0]
                n, n_inf = int(rec.n_images), int(rec.n_infinite_psnr)
                psnr = Cell.number(float(rec.psnr), PSNR_DECIMALS, title=f"n={n}")
                ssim = Cell.number(float(rec.ssim), SSIM_DECIMALS, title=f"n={n}")
                if ref_n[(s, b)] is not None and n != ref_n[(s, b)]:
                    mk = notes.marker("mean over a different number of images than the other rows of this "
                                      "column (hover for n); not ranked")
                    for c in (psnr, ssim):
                        c.notes.append(mk)
                        c.rankable = False
                if n_inf:
                    psnr.notes.append(notes.marker("some images have PSNR = ∞ (SR identical to HR); the PSNR "
                                                   "mean is over the finite ones (see n_infinite_psnr in "
                                                   "summary.csv)"))
                    psnr.title += f", {n_inf} with PSNR = ∞"
                row.cells[f"{b}/psnr"], row.cells[f"{b}/ssim"] = psnr, ssim
            rows.append(row)
        groups = [RowGroup("Measured here", rows, "measured")] if rows else []
        pub_rows = []
        for method in dict.fromkeys(pub[pub.scale == s].method):
            p = pub[(pub.scale == s) & (pub.method == method)]
            letters = [sources.marker(src) for src in dict.fromkeys(p.source)]
            row = Row(method, method, {"source": Cell("published", notes=[",".join(letters)])}, kind="published",
                      competes=_competes(method, "published", compete_sel))
            for b in benchmarks:
                rec = p[p.benchmark == b]
                if rec.empty:
                    row.cells[f"{b}/psnr"], row.cells[f"{b}/ssim"] = Cell(), Cell()
                    continue
                rec = rec.iloc[0]
                comparable = ref_n[(s, b)] is None or ref_n[(s, b)] == STANDARD_COUNTS[b]
                row.cells[f"{b}/psnr"] = Cell.number(float(rec.psnr), PSNR_DECIMALS, rankable=comparable)
                row.cells[f"{b}/ssim"] = Cell.number(float(rec.ssim), SSIM_DECIMALS, rankable=comparable)
            pub_rows.append(row)
        if pub_rows:
            groups.append(RowGroup("Published (cited, not measured here)", pub_rows, "published"))
        if groups:
            sections.append(Section(scale_label(s), groups))

    table = Table("main", "PSNR (dB) / SSIM", "Method", columns, sections)
    rank_table(table)
    footer: list[tuple[str, str]] = []
    selection = "all rows" if "all" in compete_sel else ", ".join(compete_sel)
    footer.append(("", f"Bold: best; underlined: second best, per column and scale, among {selection}. "
                       "Ranking compares the values rounded to the printed digits, so equal printed values "
                       "tie and all get the mark; the underline goes to the next distinct printed value. "
                       "– : not available."))
    footer.append(("", _protocol_line(summary)))
    missing_pub = [b for b in benchmarks if b not in STANDARD_COUNTS]
    if missing_pub:
        footer.append(("", f"No published numbers for {', '.join(missing_pub)}: published results exist only "
                           f"for the standard benchmarks ({', '.join(STANDARD_COUNTS)}) under those exact names."))
    table.footnotes = footer + notes.items() + sources.items()
    table.caption = ("PSNR (dB) and SSIM on the Y channel; measured rows computed from this results "
                     "folder, published rows copied from the cited papers.")
    return table


def _protocol_line(summary: pd.DataFrame) -> str:
    """The evaluation protocol behind the measured rows, from their protocol files."""
    def uniq(col: str) -> str:
        vals = [str(v) for v in dict.fromkeys(summary[col]) if str(v) not in ("", "nan")]
        return "; ".join(vals) if vals else "not recorded"

    shaves = sorted({str(v) for v in summary.shave if str(v) not in ("", "nan")})
    shave_text = ("s pixels" if all(
        str(r.shave) == str(r.scale) for r in summary.itertuples()) else ", ".join(shaves) or "not recorded")
    return (f"Measured rows: colour space {uniq('color_space')}; border shaved: {shave_text}; "
            f"LR source: {uniq('lr_source')}; tiling: {uniq('tiling')}. Mean PSNR/SSIM over the images.")


def main_table_frame(summary: pd.DataFrame, published: pd.DataFrame | None) -> pd.DataFrame:
    """Tidy long form of the numbers behind the main table (one row per method/scale/benchmark)."""
    meas = summary[["method", "self_ensemble", "scale", "benchmark", "psnr", "ssim", "n_images",
                    "n_infinite_psnr"]].copy()
    meas.insert(0, "kind", "measured")
    meas["source"] = "measured"
    if published is None or published.empty:
        return meas
    pub = published[["method", "scale", "benchmark", "psnr", "ssim", "source"]].copy()
    pub.insert(0, "kind", "published")
    pub["self_ensemble"] = False
    pub["n_images"] = [STANDARD_COUNTS.get(b, math.nan) for b in pub.benchmark]
    return pd.concat([meas, pub], ignore_index=True)[list(meas.columns)]
