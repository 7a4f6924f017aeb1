"""The Y-channel PSNR/SSIM protocol: hand-computed values, skimage equivalence, edge cases."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import msnlan
from msnlan.errors import DataError
from msnlan.metrics import (
    COLOR_SPACE_Y,
    SSIM_DESCRIPTION,
    evaluate_pair,
    gaussian_window_1d,
    protocol_description,
    psnr,
    rgb_to_y,
    ssim,
    summarize,
)

PSNR_ONE_LEVEL = 20 * math.log10(255)  # MSE of exactly 1 grey level


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )


def _random_pair(shape, seed=0, noise=12.0):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, size=shape, dtype=np.uint8)
    sr = np.clip(hr + rng.normal(0, noise, size=shape), 0, 255).round().astype(np.uint8)
    return sr, hr


def test_exported_from_package():
    assert msnlan.evaluate_pair is evaluate_pair


# ---- rgb_to_y -------------------------------------------------------------------------------


def test_rgb_to_y_known_values():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = rgb_to_y(img)
    assert y.dtype == np.float64 and y.shape == (1, 5)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], rtol=0, atol=1e-12)


def test_rgb_to_y_is_not_rounded_and_accepts_float():
    img = np.array([[[10, 20, 30]]], dtype=np.uint8)
    expected = 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255  # 32.6..., not an integer
    assert rgb_to_y(img)[0, 0] == pytest.approx(expected, abs=1e-12)
    assert rgb_to_y(img.astype(np.float32))[0, 0] == pytest.approx(expected, abs=1e-12)


def test_rgb_to_y_one_channel_is_its_own_values():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for img in (gray, gray[:, :, None]):
        y = rgb_to_y(img)
        assert y.dtype == np.float64 and y.shape == (3, 4)
        np.testing.assert_array_equal(y, gray)


@pytest.mark.parametrize("shape", [(4, 4, 2), (4, 4, 4), (4,), (2, 4, 4, 3)])
def test_rgb_to_y_rejects_other_shapes(shape):
    with pytest.raises(DataError, match=re_shape(shape)):
        rgb_to_y(np.zeros(shape, dtype=np.uint8))


def re_shape(shape) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


# ---- psnr / ssim ----------------------------------------------------------------------------


def test_psnr_identical_is_inf_without_warnings():
    a = np.full((16, 16), 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(a, a) == math.inf
        assert ssim(a, a) == pytest.approx(1.0, abs=1e-15)


def test_psnr_one_pixel_difference_by_hand():
    a = np.zeros((10, 10))
    b = a.copy()
    b[3, 4] = 10.0  # MSE = 100 / 100 = 1
    assert psnr(a, b) == pytest.approx(PSNR_ONE_LEVEL, abs=1e-12)
    assert PSNR_ONE_LEVEL == pytest.approx(48.13080360867910, abs=1e-12)
    b[3, 4] = 20.0  # MSE 4 -> 6.0206 dB lower
    assert psnr(a, b) == pytest.approx(PSNR_ONE_LEVEL - 20 * math.log10(2), abs=1e-12)


def test_psnr_shape_mismatch():
    with pytest.raises(DataError, match=r"\(4, 4\) vs \(4, 5\)"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_gaussian_window_is_11_taps_sigma_1_5():
    taps = gaussian_window_1d()
    assert taps.shape == (11,)
    assert taps.sum() == pytest.approx(1.0, abs=1e-15)
    assert taps[5] / taps[6] == pytest.approx(math.exp(0.5 / 1.5**2), rel=1e-14)


@pytest.mark.parametrize("shape", [(11, 11), (12, 30), (57, 41), (96, 128)])
def test_ssim_equals_skimage(shape):
    sr, hr = _random_pair(shape, seed=shape[0])
    a, b = sr.astype(np.float64), hr.astype(np.float64)
    assert ssim(a, b) == pytest.approx(_skimage_ssim(a, b), abs=1e-10)


def test_ssim_uses_only_valid_window_positions():
    # 'valid' = skimage's reflect-padded map cropped by (11 - 1) // 2 = 5 on each side: the mean is
    # over (H - 10) x (W - 10) window positions that lie wholly inside the image.
    a = np.full((20, 15), 50.0)
    b = np.full((20, 15), 60.0)
    # constant images: variances 0, SSIM = (2*50*60 + C1) / (50^2 + 60^2 + C1) everywhere
    c1 = (0.01 * 255) ** 2
    expected = (2 * 50 * 60 + c1) / (50**2 + 60**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-14)
    # now perturb one corner: only window positions covering it change; compare to skimage
    b[0, 0] = 200.0
    assert ssim(a, b) == pytest.approx(_skimage_ssim(a, b), abs=1e-10)
    # the corner pixel is seen only by the window at valid position (0, 0), so exactly one of the
    # 10 x 5 map entries changes
    from scipy.ndimage import gaussian_filter

    def ssim_map(x, y):
        g = lambda z: gaussian_filter(z, 1.5, truncate=3.5, mode="reflect")[5:-5, 5:-5]
        mx, my = g(x), g(y)
        vx, vy, cxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
        c2 = (0.03 * 255) ** 2
        return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))

    smap = ssim_map(a, b)
    assert smap.shape == (10, 5)
    assert np.count_nonzero(np.abs(smap - expected) > 1e-12) == 1
    assert ssim(a, b) == pytest.approx(smap.mean(), abs=1e-12)


def test_ssim_rejects_small_or_non_2d():
    with pytest.raises(DataError, match="smaller than the 11x11 window"):
        ssim(np.zeros((10, 40)), np.zeros((10, 40)))
    with pytest.raises(DataError, match="2-D"):
        ssim(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)))


# ---- evaluate_pair --------------------------------------------------------------------------


def test_evaluate_pair_identical_is_inf_without_warnings():
    img = np.random.default_rng(1).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate_pair(img, img.copy(), 2)
    assert result["psnr"] == math.inf
    assert result["ssim"] == pytest.approx(1.0, abs=1e-15)
    assert set(result) == {"psnr", "ssim"}


def test_border_crop_default_is_scale():
    hr = np.full((20, 20), 100, dtype=np.uint8)
    sr = hr.copy()
    sr[1, 10] = 110  # inside a 2-px border
    assert evaluate_pair(sr, hr, 2)["psnr"] == math.inf
    assert evaluate_pair(sr, hr, 1)["psnr"] < math.inf
    # crop 0: the whole 20 x 20 image, MSE = 100 / 400
    assert evaluate_pair(sr, hr, 2, crop_border=0)["psnr"] == pytest.approx(
        10 * math.log10(255**2 * 400 / 100), abs=1e-12
    )


def test_border_crop_changes_the_mse_denominator_exactly():
    hr = np.full((30, 26), 80, dtype=np.uint8)
    sr = hr.copy()
    sr[15, 13] = 96  # an interior pixel: the squared error 256 is in every crop
    for border in (0, 1, 2, 3, 4):
        n = (30 - 2 * border) * (26 - 2 * border)
        expected = 10 * math.log10(255**2 * n / 256)
        assert evaluate_pair(sr, hr, 4, crop_border=border)["psnr"] == pytest.approx(expected, abs=1e-12)


def test_border_crop_is_what_metric_sees():
    sr, hr = _random_pair((40, 36, 3), seed=4)
    got = evaluate_pair(sr, hr, 3)
    y_sr, y_hr = rgb_to_y(sr[3:-3, 3:-3]), rgb_to_y(hr[3:-3, 3:-3])
    assert got["psnr"] == psnr(y_sr, y_hr)
    assert got["ssim"] == pytest.approx(_skimage_ssim(y_sr, y_hr), abs=1e-10)


def test_gray_versus_rgb_with_equal_channels():
    # R = G = B = v gives Y = 16 + 219 v / 255: Y differences are 219/255 of the grey differences,
    # so the RGB pair's Y-PSNR is the grey pair's PSNR + 20 log10(255 / 219).
    sr, hr = _random_pair((32, 32), seed=2)
    gray = evaluate_pair(sr, hr, 2)
    rgb = evaluate_pair(np.repeat(sr[:, :, None], 3, 2), np.repeat(hr[:, :, None], 3, 2), 2)
    assert rgb["psnr"] == pytest.approx(gray["psnr"] + 20 * math.log10(255 / 219), abs=1e-9)
    assert rgb["ssim"] != pytest.approx(gray["ssim"], abs=1e-6)  # C1, C2 are not scale-free


def test_hw1_equals_2d():
    sr, hr = _random_pair((30, 30), seed=3)
    assert evaluate_pair(sr[:, :, None], hr[:, :, None], 2) == evaluate_pair(sr, hr, 2)
    assert evaluate_pair(sr[:, :, None], hr[:, :, None], 2, y_channel=False) == evaluate_pair(sr, hr, 2)


def test_rgb_mode_without_y():
    sr, hr = _random_pair((30, 30, 3), seed=5)
    got = evaluate_pair(sr, hr, 2, y_channel=False)
    a, b = sr[2:-2, 2:-2].astype(np.float64), hr[2:-2, 2:-2].astype(np.float64)
    assert got["psnr"] == pytest.approx(psnr(a, b), abs=1e-12)
    assert got["ssim"] == pytest.approx(np.mean([_skimage_ssim(a[..., c], b[..., c]) for c in range(3)]), abs=1e-10)
    assert got["psnr"] != evaluate_pair(sr, hr, 2)["psnr"]


def test_shape_and_dtype_errors_name_the_problem():
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(DataError, match=r"sr \(20, 20, 3\) vs hr \(20, 22, 3\)"):
        evaluate_pair(a, np.zeros((20, 22, 3), dtype=np.uint8), 2)
    with pytest.raises(DataError, match=r"sr \(20, 20\) vs hr \(20, 20, 3\)"):
        evaluate_pair(np.zeros((20, 20), dtype=np.uint8), a, 2)
    with pytest.raises(DataError, match="sr must be uint8, got dtype float32"):
        evaluate_pair(a.astype(np.float32), a, 2)
    with pytest.raises(DataError, match="hr must be uint8, got dtype int64"):
        evaluate_pair(a, a.astype(np.int64), 2)
    with pytest.raises(DataError, match=r"\(20, 20, 4\)"):
        evaluate_pair(np.zeros((20, 20, 4), np.uint8), np.zeros((20, 20, 4), np.uint8), 2)
    with pytest.raises(DataError, match="numpy array"):
        evaluate_pair([[0]], a, 2)


@pytest.mark.parametrize("scale", [0, -1, 2.0, True, "2"])
def test_bad_scale(scale):
    a = np.zeros((20, 20), dtype=np.uint8)
    with pytest.raises(DataError, match="scale"):
        evaluate_pair(a, a, scale)


def test_bad_crop_border():
    a = np.zeros((20, 20), dtype=np.uint8)
    with pytest.raises(DataError, match="crop_border"):
        evaluate_pair(a, a, 2, crop_border=-1)
    with pytest.raises(DataError, match="border of 10 px"):
        evaluate_pair(a, a, 2, crop_border=10)
    with pytest.raises(DataError, match="smaller than the 11x11 window"):
        evaluate_pair(a, a, 2, crop_border=5)


# ---- summarize / protocol -------------------------------------------------------------------


def test_summarize_means_and_infinite_count():
    rows = [
        {"image": "a", "psnr": 30.0, "ssim": 0.9},
        {"image": "b", "psnr": math.inf, "ssim": 1.0},
        {"image": "c", "psnr": 34.0, "ssim": 0.8},
    ]
    assert summarize(rows) == {"psnr": 32.0, "ssim": pytest.approx(0.9), "n_images": 3, "n_infinite_psnr": 1}


def test_summarize_all_infinite_and_errors():
    assert summarize([{"psnr": math.inf, "ssim": 1.0}]) == {
        "psnr": math.inf, "ssim": 1.0, "n_images": 1, "n_infinite_psnr": 1
    }
    with pytest.raises(DataError, match="no rows"):
        summarize([])
    with pytest.raises(DataError, match="row 1 has no 'ssim'"):
        summarize([{"psnr": 1.0, "ssim": 0.5}, {"psnr": 2.0}])
    with pytest.raises(DataError, match="row 0 has an invalid"):
        summarize([{"psnr": float("nan"), "ssim": 0.5}])
    with pytest.raises(DataError, match="non-numeric"):
        summarize([{"psnr": "x", "ssim": 0.5}])


def test_summarize_accepts_csv_strings():
    assert summarize([{"psnr": "30.5", "ssim": "0.9"}, {"psnr": "inf", "ssim": "1"}])["n_infinite_psnr"] == 1


def test_protocol_description():
    d = protocol_description(3, None, True)
    assert d["shave"] == 3
    assert d["color_space"] == COLOR_SPACE_Y == "Y (ITU-R BT.601, 16-235)"
    assert d["ssim"] == SSIM_DESCRIPTION == "gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L 255, valid"
    assert protocol_description(4, 0, False)["shave"] == 0
    assert protocol_description(4, 0, False)["color_space"].startswith("RGB")


# ---- real data: the bicubic baseline against published numbers ------------------------------


@pytest.mark.data
def test_bicubic_set5_matches_published_baseline(shared_data: Path):
    """Set5 bicubic (MATLAB down + up, Y, shave s) as in EDSR/RCAN tables: 33.66/30.39/28.42 dB.

    Published tables used GTmod12 crops and differ among themselves by ~0.01 dB, hence the tolerance;
    PSNR on RGB, or on a full-range luma (0.299 R + 0.587 G + 0.114 B), misses by more than 1 dB.
    """
    from PIL import Image

    from msnlan.data.imresize import imresize

    published = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}
    paths = sorted((shared_data / "benchmarks" / "Set5" / "HR").glob("*.png"))
    assert len(paths) == 5
    for scale, (p_psnr, p_ssim) in published.items():
        rows, rgb_rows = [], []
        for path in paths:
            with Image.open(path) as im:
                hr = np.asarray(im)
            h, w = hr.shape[:2]
            hr = hr[: h - h % scale, : w - w % scale]
            sr = imresize(imresize(hr, 1 / scale), scale)
            rows.append(evaluate_pair(sr, hr, scale))
            rgb_rows.append(evaluate_pair(sr, hr, scale, y_channel=False))
        summary = summarize(rows)
        assert summarize(rgb_rows)["psnr"] < p_psnr - 1.0
        assert summary["psnr"] == pytest.approx(p_psnr, abs=0.03), scale
        assert summary["ssim"] == pytest.approx(p_ssim, abs=0.002), scale
