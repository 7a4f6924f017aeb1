"""complexity/<variant>/x<s>.json, written by `msnlan complexity` (msnlan.complexity.measure).

Keys read back (a file may lack any of them: e.g. no runtime with --no-runtime, no direct form
without an MSNLAB at that size; absent values read as None):
  params.total, params.trainable
  macs.<size>.total (as executed), macs.<size>.direct_form.total, macs.<size>.lr_size,
  macs.<size>.uncounted (op -> calls) for the sizes "720p" and "48x48"
  runtime.median_ms, .runs, .device, .lr_size, .peak_memory_mb, .peak_memory_method
  self_ensemble_factor, tool (name -> version)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io_utils import write_json_atomic
from . import layout
from .files import read_json

SIZE_720P, SIZE_48 = "720p", "48x48"


def write_complexity(path: str | os.PathLike, record: Mapping) -> None:
    write_json_atomic(path, dict(record))


def _section(data: Any, key: str) -> Mapping:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _size_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return ""


def _scaled(value: float | None, unit: float) -> float | None:
    return None if value is None else value / unit


def complexity_row(variant: str, scale: int, data: Mapping, path: Path | None = None) -> dict:
    """One flat row (parameters in M, MACs in G) from a complexity JSON's content."""
    params, runtime, tool = _section(data, "params"), _section(data, "runtime"), _section(data, "tool")
    macs = _section(data, "macs")
    m720, m48 = _section(macs, SIZE_720P), _section(macs, SIZE_48)
    uncounted = _section(m720, "uncounted")
    factor = data.get("self_ensemble_factor")
    return {
        "variant": variant, "scale": scale,
        "params_m": _scaled(_num(params.get("total")), 1e6),
        "params_trainable_m": _scaled(_num(params.get("trainable")), 1e6),
        "macs_720p_g": _scaled(_num(m720.get("total")), 1e9),
        "macs_720p_direct_g": _scaled(_num(_section(m720, "direct_form").get("total")), 1e9),
        "lr_size_720p": _size_text(m720.get("lr_size")),
        "macs_48_g": _scaled(_num(m48.get("total")), 1e9),
        "macs_48_direct_g": _scaled(_num(_section(m48, "direct_form").get("total")), 1e9),
        "runtime_ms": _num(runtime.get("median_ms")),
        "runtime_runs": runtime.get("runs"),
        "runtime_device": runtime.get("device") or "",
        "runtime_input": _size_text(runtime.get("lr_size")),
        "peak_memory_mb": _num(runtime.get("peak_memory_mb")),
        "peak_memory_method": runtime.get("peak_memory_method") or "",
        "self_ensemble_factor": factor if _num(factor) is not None else None,
        "uncounted_ops": ", ".join(f"{k}×{v}" for k, v in uncounted.items()),
        "tools": ", ".join(f"{k} {v}" for k, v in tool.items() if v),
        "path": str(path) if path else "",
    }


COMPLEXITY_ROW_COLUMNS = tuple(complexity_row("", 0, {}))


def read_complexity(path: Path) -> dict:
    return read_json(path)


def find_complexity(results_dir: Path) -> list[tuple[str, int, Path, dict]]:
    """Every complexity/<variant>/x<s>.json as (variant, scale, path, data), by scale then variant."""
    out = [(v, s, p, read_complexity(p)) for v, s, p in layout.complexity_jsons(results_dir)]
    return sorted(out, key=lambda t: (t[1], t[0]))


def complexity_frame(items) -> pd.DataFrame:
    """complexity_row of each (variant, scale, path, data), as a frame with COMPLEXITY_ROW_COLUMNS."""
    return pd.DataFrame([complexity_row(v, s, d, p) for v, s, p, d in items], columns=list(COMPLEXITY_ROW_COLUMNS))
