"""Published (cited) PSNR/SSIM numbers and the standard benchmark image counts.

Published rows are never re-measured: each carries the paper/table it was copied from, and is
only shown for benchmarks whose names match the standard ones exactly.
"""
from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path

import pandas as pd

from ..errors import ConfigError

#: images per standard benchmark; a mean over another count is not comparable with published numbers
STANDARD_COUNTS = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100, "Manga109": 109}

PUBLISHED_COLUMNS = ("method", "scale", "dataset", "psnr", "ssim", "source")


def default_published_path() -> Path:
    """The cited numbers shipped with the package (msnlan/resources/published_results.csv)."""
    return Path(str(resources.files("msnlan").joinpath("resources/published_results.csv")))


def load_published(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read and check a published-results CSV (method,scale,dataset,psnr,ssim,source).

    Every row needs a source; PSNR must be in (0, 100) dB, SSIM in (0, 1]; no duplicate
    (method, scale, dataset). Errors name the file, line and column.
    """
    path = Path(path) if path is not None else default_published_path()
    if not path.is_file():
        raise ConfigError(f"published results file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable CSV: {exc}") from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)} (need {','.join(PUBLISHED_COLUMNS)})")
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        line = i + 2  # 1-based, after the header
        where = f"{path}, line {line}"
        for key in ("method", "dataset", "source"):
            if not rec[key].strip():
                raise ConfigError(f"{where}: column {key!r} is empty (every published number needs its {key})")
        try:
            scale = int(rec["scale"])
        except ValueError:
            raise ConfigError(f"{where}: column 'scale': {rec['scale']!r} is not an integer") from None
        values = {}
        for key, lo, hi in (("psnr", 0.0, 100.0), ("ssim", 0.0, 1.0)):
            text = rec[key].strip()
            if text == "":
                values[key] = math.nan  # a paper may not report SSIM; shown as "–"
                continue
            try:
                v = float(text)
            except ValueError:
                raise ConfigError(f"{where}: column {key!r}: {text!r} is not a number") from None
            if not (lo < v <= hi):
                raise ConfigError(f"{where}: column {key!r}: {v} is outside ({lo}, {hi}]")
            values[key] = v
        rows.append({"method": rec["method"].strip(), "scale": scale, "benchmark": rec["dataset"].strip(),
                     "psnr": values["psnr"], "ssim": values["ssim"], "source": rec["source"].strip(),
                     "line": line})
    out = pd.DataFrame(rows, columns=["method", "scale", "benchmark", "psnr", "ssim", "source", "line"])
    dup = out[out.duplicated(["method", "scale", "benchmark"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        lines = ", ".join(str(x) for x in dup[(dup.method == first.method) & (dup.scale == first.scale)
                                              & (dup.benchmark == first.benchmark)].line)
        raise ConfigError(f"{path}: duplicate rows for {first.method} x{first.scale} {first.benchmark} "
                          f"(lines {lines})")
    out.attrs["path"] = str(path)
    return out
