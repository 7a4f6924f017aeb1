"""Paired bootstrap CIs on synthetic cases with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from msnlan.report.stats import paired_bootstrap, paired_difference


def test_identical_variants_ci_is_zero_and_not_significant():
    res = paired_bootstrap(np.zeros(30))
    assert res.mean == 0 and res.low == 0 and res.high == 0 and not res.excludes_zero


def test_constant_shift_gives_point_ci():
    rng = np.random.default_rng(1)
    ref = rng.uniform(25, 35, 40)
    res, used = paired_difference(dict(enumerate(ref + 0.1)), dict(enumerate(ref)))
    assert len(used) == 40
    assert res.low == pytest.approx(0.1, abs=1e-9) and res.high == pytest.approx(0.1, abs=1e-9)
    assert res.mean == pytest.approx(0.1, abs=1e-12) and res.excludes_zero


def test_noise_around_zero_contains_zero_and_noise_around_shift_excludes_it():
    rng = np.random.default_rng(2)
    res = paired_bootstrap(rng.normal(0, 0.2, 100))
    assert res.low < 0 < res.high and not res.excludes_zero
    res = paired_bootstrap(rng.normal(0.3, 0.2, 100))
    assert 0 < res.low < 0.3 < res.high and res.excludes_zero


def test_ci_width_matches_normal_theory():
    # mean of n iid N(0, 1): 95% CI half-width ~ 1.96 / sqrt(n)
    d = np.random.default_rng(3).normal(0, 1, 400)
    res = paired_bootstrap(d, resamples=20_000)
    half = (res.high - res.low) / 2
    assert half == pytest.approx(1.96 * d.std() / math.sqrt(400), rel=0.08)


def test_fixed_seed_reproducible_and_seed_matters():
    d = np.random.default_rng(4).normal(0.1, 0.3, 25)
    a, b = paired_bootstrap(d, seed=7), paired_bootstrap(d, seed=7)
    c = paired_bootstrap(d, seed=8)
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)


def test_pairs_only_common_finite_images():
    res, used = paired_difference({"a": 30.0, "b": 31.0, "c": math.inf, "d": 5.0},
                                  {"a": 29.0, "b": 30.0, "c": 40.0, "e": 1.0}, resamples=200)
    assert used == ["a", "b"] and res.n == 2 and res.mean == pytest.approx(1.0)


def test_fewer_than_two_images_gives_no_ci():
    res = paired_bootstrap([0.5])
    assert res.mean == 0.5 and res.low is None and res.high is None and not res.excludes_zero
    assert paired_bootstrap([]).n == 0


def test_blocks_give_same_answer_as_one_block(monkeypatch):
    d = np.random.default_rng(5).normal(0, 1, 50)
    whole = paired_bootstrap(d, resamples=1000, seed=3)
    import msnlan.report.stats as stats
    monkeypatch.setattr(stats, "_MAX_BLOCK_ELEMENTS", 50 * 7)  # 7 resamples per block
    blocked = stats.paired_bootstrap(d, resamples=1000, seed=3)
    assert (blocked.low, blocked.high) == (whole.low, whole.high)


def test_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1.0, math.inf])


# ---- the two-level bootstrap over training seeds and images ----

from msnlan.report.stats import paired_seed_difference, two_level_bootstrap  # noqa: E402


def test_zero_seed_variance_reduces_to_the_image_bootstrap():
    """Every seed with the same per-image differences: the seed draws change nothing, and the image
    draws are paired_bootstrap's own (same seed, same stream)."""
    d = np.random.default_rng(4).normal(0.05, 0.3, 25)
    one_level = paired_bootstrap(d, resamples=4000, seed=7)
    two_level = two_level_bootstrap(np.tile(d, (3, 1)), resamples=4000, seed=7)
    assert two_level.n_seeds == 3 and two_level.n == 25
    assert two_level.mean == pytest.approx(one_level.mean, abs=1e-12)
    assert two_level.low == pytest.approx(one_level.low, abs=1e-12)
    assert two_level.high == pytest.approx(one_level.high, abs=1e-12)


def test_one_seed_is_exactly_the_image_bootstrap():
    d = np.random.default_rng(5).normal(0, 0.2, 12)
    assert two_level_bootstrap(d[None, :], seed=3) == paired_bootstrap(d, seed=3)


def test_zero_image_variance_two_seeds_known_interval():
    """Seed differences 0 and 1 on every image: a resample's mean is 0, 0.5 or 1 with probability
    1/4, 1/2, 1/4, so the 95% percentile interval is exactly [0, 1]."""
    d = np.array([[0.0] * 8, [1.0] * 8])
    res = two_level_bootstrap(d, resamples=4000)
    assert res.mean == 0.5 and res.low == 0 and res.high == 1 and not res.excludes_zero


def test_seed_noise_widens_the_interval_and_many_seeds_follow_normal_theory():
    rng = np.random.default_rng(6)
    images = rng.normal(0.1, 0.3, 20)
    seeds = rng.normal(0, 0.2, 5)
    narrow = two_level_bootstrap(np.tile(images, (5, 1)))
    wide = two_level_bootstrap(images[None, :] + seeds[:, None])
    assert wide.high - wide.low > narrow.high - narrow.low
    # image differences all equal, 400 seeds ~ N(0, 1): half-width ~ 1.96 sd / sqrt(400)
    e = rng.normal(0, 1, 400)
    res = two_level_bootstrap(np.repeat(e[:, None], 3, axis=1), resamples=20_000)
    assert (res.high - res.low) / 2 == pytest.approx(1.96 * e.std() / math.sqrt(400), rel=0.08)


def test_paired_seed_difference_pairs_by_seed_and_image():
    ref = {1: {"a": 30.0, "b": 31.0, "c": 32.0}, 2: {"a": 30.5, "b": 31.5, "c": math.inf}}
    var = {1: {"a": 30.2, "b": 31.2, "c": 32.2, "d": 20.0}, 2: {"a": 30.6, "b": 31.6, "c": 33.0}, 3: {"a": 1.0}}
    res, seeds, images = paired_seed_difference(var, ref, resamples=500)
    assert seeds == [1, 2] and images == ["a", "b"]      # seed 3 unpaired; c infinite in seed 2; d unpaired
    assert res.n_seeds == 2 and res.n == 2
    assert res.mean == pytest.approx((0.2 + 0.2 + 0.1 + 0.1) / 4)
