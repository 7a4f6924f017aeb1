"""The complexity table from complexity/<variant>/x<s>.json (written by `msnlan complexity`).

The JSON layout is in docs/architecture.md; fields beyond it (e.g. the MACs of the direct attention
form) are picked up where present and shown as "–" where absent, so older/newer files both render.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .main_table import scale_label
from .tables import Cell, Column, Footnotes, Row, RowGroup, Section, Table

_DIRECT_KEYS = ("direct", "direct_form", "macs_direct", "direct_total")
_EXECUTED_KEYS = ("as_executed", "executed", "total")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        for key in ("total", "macs", "value"):
            if key in value:
                return _num(value[key])
    return None


def _first(mapping: Any, keys: Iterable[str]) -> Any:
    if not isinstance(mapping, Mapping):
        return None
    for k in keys:
        if k in mapping and mapping[k] is not None:
            return mapping[k]
    return None


def _direct(entry: Any) -> float | None:
    """MACs of the direct (unfold + two big matmuls) attention form, wherever the JSON keeps it."""
    found = _num(_first(entry, _DIRECT_KEYS))
    if found is not None:
        return found
    if isinstance(entry, Mapping):  # any key naming the direct form, e.g. "total_direct_form"
        for k, v in entry.items():
            if "direct" in str(k).lower() and _num(v) is not None:
                return _num(v)
    return None


def _size_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return "" if value is None else str(value)


def complexity_record(variant: str, scale: int, data: Mapping, path: Path | None = None) -> dict:
    """One flat row (units: parameters in M, MACs in G) from a complexity JSON."""
    params = data.get("params", {}) if isinstance(data.get("params"), Mapping) else {}
    macs = data.get("macs", {}) if isinstance(data.get("macs"), Mapping) else {}
    m720 = macs.get("720p", {})
    m48 = macs.get("48x48", {})
    runtime = data.get("runtime") if isinstance(data.get("runtime"), Mapping) else {}
    tool = data.get("tool") if isinstance(data.get("tool"), Mapping) else {}

    def giga(v):
        return None if v is None else v / 1e9

    def mega(v):
        return None if v is None else v / 1e6

    executed = _num(_first(m720, _EXECUTED_KEYS))
    uncounted = m720.get("uncounted") if isinstance(m720, Mapping) else None
    return {
        "variant": variant, "scale": scale,
        "params_m": mega(_num(params.get("total"))),
        "params_trainable_m": mega(_num(params.get("trainable"))),
        "macs_720p_g": giga(executed),
        "macs_720p_direct_g": giga(_direct(m720)),
        "lr_size_720p": _size_text(m720.get("lr_size") if isinstance(m720, Mapping) else None),
        "macs_48_g": giga(_num(_first(m48, _EXECUTED_KEYS))),
        "macs_48_direct_g": giga(_direct(m48)),
        "runtime_ms": _num(runtime.get("median_ms")),
        "runtime_runs": runtime.get("runs"),
        "runtime_device": runtime.get("device") or "",
        "runtime_input": _size_text(_first(runtime, ("lr_size", "input_size", "size", "runtime_size"))),
        "peak_memory_mb": _num(runtime.get("peak_memory_mb")),
        "peak_memory_method": runtime.get("peak_memory_method") or runtime.get("memory_method") or "",
        "self_ensemble_factor": data.get("self_ensemble_factor"),
        "uncounted_ops": ", ".join(f"{k}×{v}" for k, v in uncounted.items()) if isinstance(uncounted, Mapping) else "",
        "tools": ", ".join(f"{k} {v}" for k, v in tool.items() if v) if tool else "",
        "path": str(path) if path else "",
    }


def complexity_frame(items: Sequence[tuple[str, int, Path, dict]]) -> pd.DataFrame:
    rows = [complexity_record(v, s, d, p) for v, s, p, d in items]
    return pd.DataFrame(rows, columns=list(complexity_record("", 0, {}).keys()))


def build_complexity_table(frame: pd.DataFrame, scales: Sequence[int], variant_order: Sequence[str] = (),
                           self_ensembled: Iterable[tuple[str, int]] = ()) -> Table:
    """One row per variant and scale; a '+' row (x8 self-ensemble cost) after each variant that
    was evaluated with self-ensemble at that scale (`self_ensembled`: (variant, scale) pairs)."""
    notes = Footnotes()
    plus = set(self_ensembled)
    has_direct = frame.macs_720p_direct_g.notna().any() if len(frame) else False
    columns = [Column("params", "Params (M)"), Column("macs", "MACs 720p (G)" + (", as executed" if has_direct else ""))]
    if has_direct:
        columns.append(Column("macs_direct", "MACs 720p (G), direct form"))
    columns += [Column("macs48", "MACs 48×48 (G)"), Column("runtime", "Runtime (ms)"),
                Column("memory", "Peak memory (MB)"), Column("where", "Runtime input, device", align="l")]
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
                                                   str(r.runtime_device)) if x) or "–"),
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
