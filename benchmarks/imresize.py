"""Time MATLAB-exact bicubic LR generation for the five benchmarks at x2, x3 and x4.

Usage: python benchmarks/imresize.py [--data DIR] [--repeats N]

For every HR image in DIR/benchmarks/*/HR (after modcrop to a multiple of the scale) it runs
msnlan.imresize(hr, 1/s) and prints the seconds per set and scale, the total, the throughput in
input megapixels per second, and the median of a few repeats on the largest image (down x4 and
the bicubic baseline up x4). Target: under one minute in total on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from msnlan.data.imresize import imresize  # noqa: E402

SETS = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
SCALES = [2, 3, 4]


def default_data_dir() -> Path:
    env = os.environ.get("MSNLAN_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def load_set(folder: Path) -> list[np.ndarray]:
    images = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as im:
            images.append(np.asarray(im))
    return images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    sets = {name: args.data / "benchmarks" / name / "HR" for name in SETS}
    missing = [str(p) for p in sets.values() if not p.is_dir()]
    if missing:
        print(f"benchmark data not found: {', '.join(missing)} (use --data or MSNLAN_DATA)", file=sys.stderr)
        return 2

    print(f"imresize benchmark, data {args.data}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    total_seconds = 0.0
    total_mpix = 0.0
    largest: np.ndarray | None = None
    print(f"{'set':<10}{'images':>7}{'x2 s':>9}{'x3 s':>9}{'x4 s':>9}{'set s':>9}{'MP/s':>8}")
    for name, folder in sets.items():
        images = load_set(folder)  # decoding PNGs is not part of the timing
        per_scale = []
        set_mpix = 0.0
        for s in SCALES:
            cropped = [im[: im.shape[0] - im.shape[0] % s, : im.shape[1] - im.shape[1] % s] for im in images]
            start = time.perf_counter()
            for im in cropped:
                imresize(im, 1 / s)
            per_scale.append(time.perf_counter() - start)
            set_mpix += sum(im.shape[0] * im.shape[1] for im in cropped) / 1e6
        for im in images:
            if largest is None or im.size > largest.size:
                largest = im
        set_seconds = sum(per_scale)
        total_seconds += set_seconds
        total_mpix += set_mpix
        print(
            f"{name:<10}{len(images):>7}" + "".join(f"{t:>9.2f}" for t in per_scale)
            + f"{set_seconds:>9.2f}{set_mpix / set_seconds:>8.1f}"
        )
    print(f"total: {total_seconds:.2f} s for {total_mpix:.1f} input megapixels ({total_mpix / total_seconds:.1f} MP/s)")

    assert largest is not None
    hr = largest[: largest.shape[0] // 4 * 4, : largest.shape[1] // 4 * 4]
    lr = imresize(hr, 1 / 4)
    for label, image, scale in (("down x4", hr, 1 / 4), ("up x4 (bicubic baseline)", lr, 4)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            imresize(image, scale)
            times.append(time.perf_counter() - start)
        print(
            f"largest image {hr.shape}, {label}: median {statistics.median(times) * 1e3:.1f} ms"
            f" over {args.repeats} runs (min {min(times) * 1e3:.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
