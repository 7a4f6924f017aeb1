"""The main results table: methods x benchmarks x scales, one column per registered metric
(msnlan.metric_registry: label, precision, ranking direction), measured and published rows."""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import pandas as pd

from ..errors import ConfigError
from ..metric_registry import get_metric, registered_metrics
from .published import STANDARD_COUNTS
from .tables import Cell, Column, Footnotes, Row, RowGroup, Section, Table, format_number, rank_table

PSNR_DECIMALS = get_metric("psnr").decimals
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


def _records(frame: pd.DataFrame, benchmarks: Sequence[str], metrics, row: Row):
    """(benchmark, record) of one method's rows; a benchmark without a record gets empty cells."""
    for b in benchmarks:
        rec = frame[frame.benchmark == b]
        if rec.empty:
            row.cells.update({f"{b}/{metric.name}": Cell() for metric in metrics})
        else:
            yield b, rec.iloc[0]


def _measured_cell(rec: pd.Series, metric) -> Cell:
    """A measured value with its n on hover; over several seeds the mean, with the sd and range over
    seeds on hover and the sd as the LaTeX/Markdown spread ("± sd")."""
    n, value = int(rec.n_images), float(rec[metric.name])
    if "n_seeds" not in rec.index:
        return Cell.number(value, metric.decimals, title=f"n={n}")
    if pd.isna(rec.n_seeds):
        return Cell.number(value, metric.decimals, title=f"n={n} images (not trained here, so no seeds)")
    k = int(rec.n_seeds)
    sd, low, high = (float(rec[f"{metric.name}_{x}"]) for x in ("sd", "min", "max"))
    fmt = lambda x: format_number(x, metric.decimals)  # noqa: E731
    title = f"n={k} seed{'s' if k != 1 else ''} × {n} images; mean over seeds"
    if k > 1:
        title += f"; sd over seeds {fmt(sd)}, range {fmt(low)}–{fmt(high)}"
    spread = f"± {fmt(sd)}" if k > 1 and math.isfinite(sd) else ""
    return Cell.number(value, metric.decimals, title=title, spread=spread)


def build_main_table(summary: pd.DataFrame, benchmarks: Sequence[str], scales: Sequence[int],
                     published: pd.DataFrame | None = None, *, variants: Sequence[str] = (),
                     compete: Sequence[str] | None = None) -> Table:
    """Measured rows (bicubic, variants, '+' rows) and published rows per scale, ranked per column."""
    notes, sources = Footnotes(), Footnotes(LETTERS)
    metrics = [m for m in registered_metrics() if m.name in summary.columns]
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
                "our mean is over fewer/other images than the standard set (n in the header); it is NOT "
                "comparable with published numbers, so published rows are not ranked in this column"))
        for m in metrics:
            columns.append(Column(f"{b}/{m.name}", m.label, group=label, group_notes=list(group_notes), ranked=True,
                                  higher_is_better=m.higher_is_better, joined=True))

    pretrained = pretrained_mask(summary)

    def measured_row(method: str, mine: pd.DataFrame, s: int, label: str) -> Row:
        self_ens = bool(mine.self_ensemble.iloc[0])
        row = Row(method, label, {"source": Cell("measured")},
                  kind="measured", competes=_competes(method, "measured", compete_sel))
        if self_ens:
            row.label_notes.append(notes.marker(SELF_ENSEMBLE_NOTE))
        for b, rec in _records(mine, benchmarks, metrics, row):
            n, n_inf = int(rec.n_images), int(rec.n_infinite_psnr)
            cells = {m.name: _measured_cell(rec, m) for m in metrics}
            if ref_n[(s, b)] is not None and n != ref_n[(s, b)]:
                mk = notes.marker("mean over a different number of images than the other rows of this "
                                  "column (hover for n); not ranked")
                for c in cells.values():
                    c.notes.append(mk)
                    c.rankable = False
            if n_inf:
                cells["psnr"].notes.append(notes.marker(
                    "some images have PSNR = ∞ (SR identical to HR); the PSNR mean is over the finite "
                    "ones (see n_infinite_psnr in summary.csv)"))
                cells["psnr"].title += f", {n_inf} with PSNR = ∞"
            row.cells.update({f"{b}/{name}": c for name, c in cells.items()})
        return row

    sections = []
    for s in scales:
        measured = summary[(summary.scale == s) & ~pretrained]
        rows = [measured_row(method, measured[measured.method == method], s,
                             "Bicubic" if method == "bicubic" else method)
                for method in method_order(measured.method, variants)]
        groups = [RowGroup("Measured here", rows, "measured")] if rows else []
        released = summary[(summary.scale == s) & pretrained]
        for source in dict.fromkeys(released.weights_source) if len(released) else ():
            theirs = released[released.weights_source == source]
            rows = [measured_row(method, theirs[theirs.method == method], s,
                                 str(theirs[theirs.method == method].label.iloc[0]) or method)
                    for method in method_order(theirs.method)]
            groups.append(RowGroup(f"Weights from {source} (not trained here; evaluated here)", rows, "measured"))
        pub_rows = []
        for method in dict.fromkeys(pub[pub.scale == s].method):
            p = pub[(pub.scale == s) & (pub.method == method)]
            letters = [sources.marker(src) for src in dict.fromkeys(p.source)]
            row = Row(method, method, {"source": Cell("published", notes=[",".join(letters)])}, kind="published",
                      competes=_competes(method, "published", compete_sel))
            for b, rec in _records(p, benchmarks, metrics, row):
                comparable = ref_n[(s, b)] is None or ref_n[(s, b)] == STANDARD_COUNTS[b]
                for m in metrics:  # papers publish PSNR and SSIM only
                    value = rec.get(m.name)
                    row.cells[f"{b}/{m.name}"] = (Cell.number(float(value), m.decimals, rankable=comparable)
                                                  if value is not None else Cell())
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
    if "n_seeds" in summary.columns:
        seeds = sorted({int(k) for k in summary.n_seeds.dropna()})
        k = "/".join(map(str, seeds))
        footer.append(("", f"Trained methods: mean over {k} training seeds of the mean over images, so each of "
                           f"their numbers rests on {k} seeds × the column's images (n on hover); ± (LaTeX/"
                           "Markdown) and the HTML hover: standard deviation over seeds (the hover also gives "
                           "the range). Bicubic has no training and is evaluated once."))
    missing_pub = [b for b in benchmarks if b not in STANDARD_COUNTS]
    if missing_pub:
        footer.append(("", f"No published numbers for {', '.join(missing_pub)}: published results exist only "
                           f"for the standard benchmarks ({', '.join(STANDARD_COUNTS)}) under those exact names."))
    footer.insert(0, ("", "Measured rows are computed from this results folder; published rows are copied "
                          "from the cited papers."))
    table.footnotes = footer + notes.items() + sources.items()
    table.caption = "PSNR (dB) / SSIM on the Y channel."
    return table


def pretrained_mask(summary: pd.DataFrame) -> pd.Series:
    """Rows of weights not trained by the workflow (a weights_source is recorded)."""
    if "weights_source" not in summary.columns:
        return pd.Series(False, index=summary.index)
    return summary.weights_source.fillna("").astype(str) != ""


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
    names = [m.name for m in registered_metrics() if m.name in summary.columns]
    spread = [c for c in summary.columns if "n_seeds" in summary.columns
              and (c == "n_seeds" or any(c.startswith(f"{m}_") for m in names))]
    meas = summary[["method", "self_ensemble", "scale", "benchmark", *names, *spread, "n_images",
                    "n_infinite_psnr"]].copy()
    meas.insert(0, "kind", "measured")
    meas["source"] = "measured"
    released = pretrained_mask(summary)
    if released.any():  # weights not trained here: say whose
        meas.loc[released, "source"] = "measured; weights from " + summary.weights_source[released].astype(str)
    if published is None or published.empty:
        return meas
    pub = published[["method", "scale", "benchmark", "psnr", "ssim", "source"]].copy()
    pub.insert(0, "kind", "published")
    pub["self_ensemble"] = False
    pub["n_images"] = [STANDARD_COUNTS.get(b, math.nan) for b in pub.benchmark]
    return pd.concat([meas, pub], ignore_index=True)[list(meas.columns)]
