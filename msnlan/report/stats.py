"""Paired bootstrap confidence intervals for PSNR differences between two methods.

The images are the resampling unit: each resample draws n images with replacement and takes the
mean of the per-image differences (variant - reference) over them; the CI is the percentile interval.
Pairing on the same images removes the (large) image-to-image spread of PSNR from the comparison.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
# cap on the resample-index matrix so memory stays bounded for large image sets
_MAX_BLOCK_ELEMENTS = 20_000_000


@dataclass(frozen=True)
class PairedDifference:
    """Mean difference over paired images and its bootstrap CI (None where undefined)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        """True when the CI lies strictly on one side of 0 (the difference is not resampling noise)."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def paired_bootstrap(diffs, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     level: float = 0.95) -> PairedDifference:
    """Percentile bootstrap CI of the mean of paired per-image differences.

    With fewer than 2 images a CI cannot be estimated (every resample is the same image): low and
    high are None. The seed is fixed so that the report is reproducible.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size == 0:
        return PairedDifference(math.nan, None, None, 0, level)
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences must be finite (drop images with infinite PSNR first)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    n = d.size
    mean = float(d.mean())
    if n < 2:
        return PairedDifference(mean, None, None, n, level)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, _MAX_BLOCK_ELEMENTS // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    # all-equal differences give resample means that differ from d[0] only by summation rounding
    if np.ptp(d) == 0:
        low = high = float(d[0])
    return PairedDifference(mean, float(low), float(high), n, level)


def paired_difference(variant: dict, reference: dict, **kwargs) -> tuple[PairedDifference, list[str]]:
    """Bootstrap the PSNR difference over the images both methods were evaluated on.

    `variant` and `reference` map image name -> PSNR. Images with an infinite PSNR in either are left
    out (their difference is undefined). Returns the result and the names of the images used.
    """
    common = sorted(set(variant) & set(reference))
    used = [k for k in common if math.isfinite(variant[k]) and math.isfinite(reference[k])]
    diffs = np.array([variant[k] - reference[k] for k in used], dtype=float)
    return paired_bootstrap(diffs, **kwargs), used
