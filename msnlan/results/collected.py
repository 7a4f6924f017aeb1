"""tables/summary.csv and tables/per_image.csv, written by `msnlan collect`.

summary.csv: one row per method x scale x benchmark (summary_columns()); per_image.csv: one row per
image (per_image_columns()). Both are computed from the per-image evaluation CSVs; both have one
column per registered metric (msnlan.metric_registry).

With several training seeds (`seeded`), summary.csv's metric columns are means over seeds, each with
<metric>_sd, <metric>_min, <metric>_max over seeds and n_seeds (empty for bicubic, which has no
training); n_images stays the images per seed. per_image.csv gets a `seed` column (empty for bicubic).
With one seed both tables have exactly the columns they had before seeds existed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io_utils import atomic_path
from ..metric_registry import metric_names
from . import layout
from .summary import seed_spread_columns

KEY_COLUMNS = ("method", "variant", "self_ensemble", "scale", "benchmark")
PROVENANCE_COLUMNS = ("lr_source", "tiling", "shave", "color_space", "checkpoint", "training_preset",
                      "training_iterations")
#: rows of weights not trained by the workflow: their display name and source ("" for the others);
#: their `variant` is the network the weights are for
PRETRAINED_COLUMNS = ("label", "weights_source")


def summary_columns(seeded: bool = False) -> tuple[str, ...]:
    spread = seed_spread_columns(metric_names()) + ("n_seeds",) if seeded else ()
    return (KEY_COLUMNS + metric_names() + spread + ("n_images", "n_infinite_psnr") + PROVENANCE_COLUMNS
            + PRETRAINED_COLUMNS)


def per_image_columns(seeded: bool = False) -> tuple[str, ...]:
    return KEY_COLUMNS + (("seed",) if seeded else ()) + ("image",) + metric_names() + ("seconds", "peak_memory_mb")


def is_seeded(frame: pd.DataFrame) -> bool:
    """Whether a summary or per-image table comes from several training seeds."""
    return "n_seeds" in frame.columns or "seed" in frame.columns


def write_collected_tables(results: str | os.PathLike, summary: pd.DataFrame,
                           per_image: pd.DataFrame) -> tuple[Path, Path]:
    """Write both tables atomically; returns their paths."""
    paths = (layout.tables_dir(results) / "summary.csv", layout.tables_dir(results) / "per_image.csv")
    seeded = is_seeded(summary)
    for frame, columns, path in zip((summary, per_image), (summary_columns(seeded), per_image_columns(seeded)),
                                    paths):
        with atomic_path(path) as tmp:
            frame[list(columns)].to_csv(tmp, index=False)
    return paths
