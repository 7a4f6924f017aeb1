"""Paired bootstrap confidence intervals for PSNR differences between two methods.

The images are the resampling unit: each resample draws n images with replacement and takes the
mean of the per-image differences (variant - reference) over them; the CI is the percentile interval.
Pairing on the same images removes the (large) image-to-image spread of PSNR from the comparison.

With several training seeds (`two_level_bootstrap`), each resample first draws S seeds with
replacement, then n images with replacement, and averages the differences over that seed x image
grid. The differences are paired by seed (the variant's seed-k network against the reference's)
and by image. One image draw serves every drawn seed, because every seed's networks are evaluated on
the same test images: the design is crossed, and drawing images anew per seed would treat the
same image as independent observations and narrow the interval. So with no seed-to-seed variation
the interval is the image bootstrap's, and with no image-to-image variation it is the bootstrap
over seeds alone.
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
    n_seeds: int = 1

    @property
    def excludes_zero(self) -> bool:
        """True when the CI lies strictly on one side of 0 (the difference is not resampling noise)."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def _check_bootstrap_arguments(d: np.ndarray, resamples: int, level: float) -> None:
    """The checks both bootstraps make of their differences and settings."""
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences must be finite (drop images with infinite PSNR first)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")


def paired_bootstrap(diffs, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     level: float = 0.95) -> PairedDifference:
    """Percentile bootstrap CI of the mean of paired per-image differences.

    With fewer than 2 images a CI cannot be estimated (every resample is the same image): low and
    high are None. The seed is fixed so that the report is reproducible.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    if d.size == 0:
        return PairedDifference(math.nan, None, None, 0, level)
    _check_bootstrap_arguments(d, resamples, level)
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


def _seed_generator(seed: int) -> np.random.Generator:
    """The seed draws' own stream, so that the image draws are paired_bootstrap's for the same seed."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def two_level_bootstrap(diffs, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                        level: float = DEFAULT_LEVEL) -> PairedDifference:
    """Percentile CI of the mean paired difference over training seeds and images.

    `diffs` is S x n: row k holds the per-image differences (variant - reference) of seed k, the
    columns the same n images in every row. Each resample draws S rows and n columns with
    replacement (see the module docstring) and averages the drawn grid. One seed gives exactly
    paired_bootstrap's result; no CI (low, high None) with fewer than 2 differences in all.
    """
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"diffs must be seeds x images (2-D), got shape {d.shape}")
    n_seeds, n = d.shape
    if n_seeds == 1:
        return paired_bootstrap(d[0], resamples=resamples, seed=seed, level=level)
    if d.size == 0:
        return PairedDifference(math.nan, None, None, n, level, n_seeds)
    _check_bootstrap_arguments(d, resamples, level)
    mean = float(d.mean())
    image_rng, seed_rng = np.random.default_rng(seed), _seed_generator(seed)
    means = np.empty(resamples)
    block = max(1, _MAX_BLOCK_ELEMENTS // n)  # the image draws come in paired_bootstrap's blocks
    chunk = max(1, _MAX_BLOCK_ELEMENTS // (n * n_seeds))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        images = image_rng.integers(0, n, size=(stop - start, n))
        seeds = seed_rng.integers(0, n_seeds, size=(stop - start, n_seeds))
        for lo in range(0, stop - start, chunk):
            hi = min(stop - start, lo + chunk)
            per_seed = d[:, images[lo:hi]].mean(axis=2).T          # resample x seed: mean over drawn images
            drawn = np.take_along_axis(per_seed, seeds[lo:hi], axis=1)
            means[start + lo:start + hi] = drawn.mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    if np.ptp(d) == 0:
        low = high = float(d.flat[0])
    return PairedDifference(mean, float(low), float(high), n, level, n_seeds)


def paired_difference(variant: dict, reference: dict, **kwargs) -> tuple[PairedDifference, list[str]]:
    """Bootstrap the PSNR difference over the images both methods were evaluated on.

    `variant` and `reference` map image name -> PSNR. Images with an infinite PSNR in either are left
    out (their difference is undefined). Returns the result and the names of the images used.
    """
    common = sorted(set(variant) & set(reference))
    used = [k for k in common if math.isfinite(variant[k]) and math.isfinite(reference[k])]
    diffs = np.array([variant[k] - reference[k] for k in used], dtype=float)
    return paired_bootstrap(diffs, **kwargs), used


def paired_seed_difference(variant: dict, reference: dict, **kwargs) -> tuple[PairedDifference, list, list[str]]:
    """The two-level bootstrap of the PSNR difference, paired by training seed and image.

    `variant` and `reference` map seed -> {image name -> PSNR}. Used: the seeds both have, and the
    images every one of those seeds of both methods has with a finite PSNR (the grid must be
    complete). Returns the result, the seeds and the images used.
    """
    seeds = sorted(set(variant) & set(reference), key=lambda k: (k is None, k))
    images = None
    for k in seeds:
        ok = {i for i in set(variant[k]) & set(reference[k])
              if math.isfinite(variant[k][i]) and math.isfinite(reference[k][i])}
        images = ok if images is None else images & ok
    used = sorted(images or ())
    diffs = np.array([[variant[k][i] - reference[k][i] for i in used] for k in seeds], dtype=float)
    return two_level_bootstrap(diffs.reshape(len(seeds), len(used)), **kwargs), seeds, used
