"""tables/summary.csv and tables/per_image.csv, written by `msnlan collect`.

summary.csv: one row per method x scale x benchmark (SUMMARY_COLUMNS); per_image.csv: one row per
image (PER_IMAGE_COLUMNS). Both are computed from the per-image evaluation CSVs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io_utils import atomic_path
from . import layout

KEY_COLUMNS = ("method", "variant", "self_ensemble", "scale", "benchmark")
SUMMARY_COLUMNS = KEY_COLUMNS + ("psnr", "ssim", "n_images", "n_infinite_psnr", "lr_source", "tiling", "shave",
                                 "color_space", "checkpoint", "training_preset", "training_iterations")
PER_IMAGE_COLUMNS = KEY_COLUMNS + ("image", "psnr", "ssim", "seconds", "peak_memory_mb")


def write_collected_tables(results: str | os.PathLike, summary: pd.DataFrame,
                           per_image: pd.DataFrame) -> tuple[Path, Path]:
    """Write both tables atomically; returns their paths."""
    paths = (layout.tables_dir(results) / "summary.csv", layout.tables_dir(results) / "per_image.csv")
    for frame, columns, path in zip((summary, per_image), (SUMMARY_COLUMNS, PER_IMAGE_COLUMNS), paths):
        with atomic_path(path) as tmp:
            frame[list(columns)].to_csv(tmp, index=False)
    return paths
