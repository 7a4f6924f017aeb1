"""The one summary of a dataset's per-image PSNR/SSIM.

Rule for infinite PSNR (an SR image identical to its HR image): such images are counted in
`n_infinite_psnr` and left out of the PSNR mean, which is taken over the finite values. If every
image is infinite the mean is +inf (shown as ∞): the method reproduced the whole set, which NaN
("not measured") would hide. SSIM and other registered metrics: the mean over all images.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def mean_psnr(values: Iterable[float]) -> float:
    """Mean of the finite PSNRs; +inf if there are values and all are +inf; NaN if there are none."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return math.nan
    finite = arr[np.isfinite(arr)]
    return float(finite.mean()) if finite.size else math.inf


def summarize(psnr: Iterable[float], ssim: Iterable[float], **more: Iterable[float]) -> dict:
    """{'psnr', 'ssim', <more metrics>, 'n_images', 'n_infinite_psnr'} of one method on one dataset.

    Each metric is summarized by its registered `mean` (msnlan.metric_registry); PSNR by mean_psnr.
    """
    from ..metric_registry import get_metric

    psnr = np.asarray(list(psnr), dtype=float)
    out = {"psnr": mean_psnr(psnr)}
    for name, values in {"ssim": ssim, **more}.items():
        out[name] = get_metric(name).mean(values)
    return {**out, "n_images": int(psnr.size), "n_infinite_psnr": int(np.isinf(psnr).sum())}


def seed_spread_columns(metrics) -> tuple[str, ...]:
    """The spread columns of a summary over several seeds: <metric>_sd, _min, _max per metric."""
    return tuple(f"{m}_{stat}" for m in metrics for stat in ("sd", "min", "max"))


def summarize_over_seeds(per_seed: dict) -> dict:
    """One method's summary over training seeds, from {seed: summarize(...) of that seed}.

    Each metric is the mean over seeds of the per-seed means (every seed weighs the same);
    <metric>_sd is their standard deviation (n - 1 in the denominator; NaN for one seed),
    <metric>_min/_max their range. n_seeds counts the seeds, n_images the images per seed (DataError
    if the seeds were evaluated on different numbers of images), n_infinite_psnr counts
    seed x image pairs.
    """
    from ..errors import DataError

    if not per_seed:
        raise ValueError("no seeds to summarize")
    counts = {k: v["n_images"] for k, v in per_seed.items()}
    if len(set(counts.values())) > 1:
        raise DataError("the seeds were evaluated on different numbers of images: "
                        + ", ".join(f"seed {k}: {n}" for k, n in sorted(counts.items())))
    first = next(iter(per_seed.values()))
    metrics = [k for k in first if k not in ("n_images", "n_infinite_psnr")]
    out: dict = {}
    for m in metrics:
        values = np.array([float(v[m]) for v in per_seed.values()])
        out[m] = float(values.mean())
        finite = np.isfinite(values).all()
        out[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 and finite else math.nan
        out[f"{m}_min"], out[f"{m}_max"] = float(values.min()), float(values.max())
    return {**out, "n_seeds": len(per_seed), "n_images": first["n_images"],
            "n_infinite_psnr": int(sum(v["n_infinite_psnr"] for v in per_seed.values()))}


def same_value(a: float, b: float, tolerance: float) -> bool:
    """Whether two summary values agree; infinities and NaN only agree with themselves."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tolerance
