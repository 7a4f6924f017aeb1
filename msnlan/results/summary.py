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


def same_value(a: float, b: float, tolerance: float) -> bool:
    """Whether two summary values agree; infinities and NaN only agree with themselves."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tolerance
