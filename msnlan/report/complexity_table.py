"""The complexity table, from the rows of msnlan.results.complexity (absent values show as "–")."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .main_table import scale_label
from .tables import MISSING, Cell, Column, Footnotes, Row, RowGroup, Section, Table


def build_complexity_table(frame: pd.DataFrame, scales: Sequence[int], variant_order: Sequence[str] = (),
                           self_ensembled: Iterable[tuple[str, int]] = ()) -> Table:
    """One row per variant and scale; a '+' row (x8 self-ensemble cost) after each variant that
    was evaluated with self-ensemble at that scale (`self_ensembled`: (variant, scale) pairs)."""
    notes = Footnotes()
    plus = set(self_ensembled)
    has_direct = frame.macs_720p_direct_g.notna().any() if len(frame) else False
    # short labels under one "MACs (G)" header, so that the table fits a page; the notes say which input
    columns = [Column("params", "Params (M)"),
               Column("macs", "720p" + (", as executed" if has_direct else ""), group="MACs (G)")]
    if has_direct:
        columns.append(Column("macs_direct", "720p, direct form", group="MACs (G)"))
    columns += [Column("macs48", "48×48", group="MACs (G)"), Column("runtime", "Runtime (ms)"),
                Column("memory", "Peak memory (MB)"),
                Column("where", "Runtime input, device", align="l", latex_note=True)]
    sections = []
    for s in scales:
        sub = frame[frame.scale == s]
        order = [v for v in variant_order if v in set(sub.variant)] + sorted(set(sub.variant) - set(variant_order))
        rows = []
        for v in order:
            r = sub[sub.variant == v].iloc[0]
            cells = {
                "params": Cell.number(r.params_m, 3),
                "macs": Cell.number(r.macs_720p_g, 1),
                "macs_direct": Cell.number(r.macs_720p_direct_g, 1),
                "macs48": Cell.number(r.macs_48_g, 2),
                "runtime": Cell.number(r.runtime_ms, 1),
                "memory": Cell.number(r.peak_memory_mb, 0),
                "where": Cell(", ".join(x for x in (f"LR {r.runtime_input}" if r.runtime_input else "",
                                                   str(r.runtime_device)) if x) or MISSING),
            }
            if r.lr_size_720p:
                cells["macs"].title = f"LR input {r.lr_size_720p}"
            if r.uncounted_ops:
                cells["macs"].notes.append(notes.marker("some operators were left uncounted by the MAC "
                                                        "counter: listed on hover and in complexity.csv"))
                cells["macs"].title += f"; uncounted: {r.uncounted_ops}"
            rows.append(Row(v, v, cells))
            if (v, s) in plus:
                rows.append(_plus_row(v, r, notes))
        if rows:
            sections.append(Section(scale_label(s), [RowGroup("", rows)]))
    table = Table("complexity", "Complexity", "Variant", columns, sections)
    tools = sorted({t for t in frame.tools if t}) if len(frame) else []
    sizes = sorted({t for t in frame.lr_size_720p if t}) if len(frame) else []
    table.caption = "Parameters, multiply-accumulates and runtime per variant and scale."
    table.footnotes = [
        ("", "MACs: one multiply-add = 1 (fvcore's convention; FLOPs ≈ 2 × MACs), at the LR input whose "
             f"SR output is about 1280×720 (LR {'; '.join(sizes) or 'size not recorded'}, H×W) and at a 48×48 LR input. "
             + ("'As executed' counts our memory-bounded attention; 'direct form' counts the textbook "
                "unfold + matmul attention papers usually report. " if has_direct else "")
             + f"Counted with {'; '.join(tools) or 'tool not recorded'}."),
        ("", "Runtime: median of one forward pass at the stated LR input (H×W) on the stated device; peak "
             "memory as recorded by msnlan complexity. A '+' (x8 self-ensemble) row costs 8× these MACs and runtimes."),
        ("", "Published methods are not listed: no cited parameter/MAC data file is available, and MACs from "
             "different papers use different input sizes and counting rules."),
    ] + notes.items()
    return table



def _plus_row(variant: str, r, notes: Footnotes) -> Row:
    """The x8 self-ensemble cost of a variant: 8 forward passes of the same network."""
    factor = r.self_ensemble_factor if isinstance(r.self_ensemble_factor, (int, float)) and \
        not isinstance(r.self_ensemble_factor, bool) else 8

    def times(v):
        return None if v is None or v != v else v * factor

    cells = {
        "params": Cell.number(r.params_m, 3),
        "macs": Cell.number(times(r.macs_720p_g), 1),
        "macs_direct": Cell.number(times(r.macs_720p_direct_g), 1),
        "macs48": Cell.number(times(r.macs_48_g), 2),
        "runtime": Cell(title="not measured: about the factor times the single model"),
        "memory": Cell(),
        "where": Cell(f"{factor:g} forward passes"),
    }
    mark = notes.marker(f"+ : x{factor:g} self-ensemble: the same parameters, {factor:g}x the MACs of one forward "
                        "pass (flips/transposes of the input, outputs averaged)")
    return Row(f"{variant}+", f"{variant}+", cells, label_notes=[mark])
