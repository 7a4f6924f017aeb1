#!/usr/bin/env python3
"""Random training and validation images for the engine checks of benchmarks/gpu_check.sh.

    python benchmarks/synthetic_images.py DIR TRAIN_COUNT SIZE

DIR is emptied, then holds DIR/train/HR (TRAIN_COUNT random SIZE x SIZE RGB images) and
DIR/val/HR (one of SIZE/2): the content does not matter to what those checks compare.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def write_image_sets(root: str | Path, train_count: int, size: int) -> Path:
    root = Path(root)
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for name, count, side in (("train", train_count, size), ("val", 1, size // 2)):
        folder = root / name / "HR"
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return root


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    write_image_sets(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
