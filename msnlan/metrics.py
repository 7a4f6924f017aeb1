"""The PSNR/SSIM protocol of published SR tables, with every protocol choice explicit.

Protocol (the one of published SR tables, as BasicSR computes it; BasicSR-style arguments):

* both images uint8, same shape; a border of ``crop_border`` pixels (default: the scale) is removed
  on every side before measuring;
* 3-channel images are measured on Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (ITU-R BT.601,
  studio range, 0..255 input, float64, not rounded); one-channel images on their own values;
* PSNR = 10 log10(255^2 / MSE); identical images give +inf;
* SSIM: 11 x 11 Gaussian window (sigma 1.5, the Gaussian truncated at 3.5 sigma), K1 0.01, K2 0.03,
  L 255, population (co)variances, averaged over the window positions that lie wholly inside the
  image ('valid'). This equals scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)``, which filters with reflect padding and
  then crops (11 - 1) // 2 = 5 pixels from each side of the SSIM map, and Wang et al.'s ssim.m.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from .checks import check_scale
from .errors import DataError

__all__ = [
    "rgb_to_y",
    "psnr",
    "ssim",
    "gaussian_window_1d",
    "evaluate_pair",
    "summarize",
    "protocol_description",
    "COLOR_SPACE_Y",
    "SSIM_DESCRIPTION",
]

COLOR_SPACE_Y = "Y (ITU-R BT.601, 16-235)"
COLOR_SPACE_RGB = "RGB (all channels)"
SSIM_DESCRIPTION = "gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L 255, valid"
PSNR_DESCRIPTION = (
    "10 log10(255^2 / MSE) per image; the dataset mean is over images with finite PSNR "
    "(identical images give inf and are counted in n_infinite_psnr)"
)

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> an 11-tap window, as in scipy/skimage
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0

def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Luma Y (BT.601, 16..235) of an H x W x 3 image in 0..255, as float64 without rounding.

    A 2-D image or an H x W x 1 image is one channel: its own values are returned (float64, 2-D).
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "uif":
        raise DataError(f"rgb_to_y: expected a numeric image, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 2:
        return arr.copy()
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[:, :, 0].copy()
    if arr.ndim == 3 and arr.shape[2] == 3:
        return 16.0 + (65.481 * arr[:, :, 0] + 128.553 * arr[:, :, 1] + 24.966 * arr[:, :, 2]) / 255.0
    raise DataError(f"rgb_to_y: expected H x W, H x W x 1 or H x W x 3, got shape {arr.shape}")


def _as_float_pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"{what}: images differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise DataError(f"{what}: empty images of shape {a.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """PSNR in dB between two same-shape arrays (MSE over all elements); +inf if identical."""
    a, b = _as_float_pair(a, b, "psnr")
    if not data_range > 0:
        raise DataError(f"psnr: data_range must be positive, got {data_range!r}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def gaussian_window_1d(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps, radius int(truncate * sigma + 0.5) (scipy.ndimage's rule)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation keeping only positions where the window lies inside the image."""
    n = taps.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(image, n, axis=0) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, n, axis=1) @ taps


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM of two 2-D arrays (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, 'valid')."""
    a, b = _as_float_pair(a, b, "ssim")
    if a.ndim != 2:
        raise DataError(f"ssim: expected 2-D arrays, got shape {a.shape}")
    taps = gaussian_window_1d()
    if min(a.shape) < taps.shape[0]:
        raise DataError(
            f"ssim: image of shape {a.shape} is smaller than the {taps.shape[0]}x{taps.shape[0]} window"
        )
    if not data_range > 0:
        raise DataError(f"ssim: data_range must be positive, got {data_range!r}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_a = _filter_valid(a, taps)
    mu_b = _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a * mu_a
    var_b = _filter_valid(b * b, taps) - mu_b * mu_b
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den, dtype=np.float64))


def _check_uint8_image(image: Any, role: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise DataError(f"evaluate_pair: {role} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"evaluate_pair: {role} must be uint8, got dtype {image.dtype} (shape {image.shape})")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise DataError(f"evaluate_pair: {role} must be H x W, H x W x 1 or H x W x 3, got shape {image.shape}")
    return image


def _check_scale(scale: Any) -> int:
    return check_scale(scale, supported=None, error=DataError, what="evaluate_pair: scale")


def _resolve_crop(scale: int, crop_border: int | None) -> int:
    if crop_border is None:
        return scale
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise DataError(f"evaluate_pair: crop_border must be a non-negative integer, got {crop_border!r}")
    return int(crop_border)


def min_evaluable_side(scale: int, crop_border: int | None = None) -> int:
    """The smallest HR side (after cropping to a multiple of `scale`) the protocol can measure:
    the border on both sides plus the SSIM window."""
    return 2 * _resolve_crop(_check_scale(scale), crop_border) + gaussian_window_1d().shape[0]


def check_evaluable(shape: tuple, scale: int, what: str, crop_border: int | None = None) -> None:
    """DataError naming `what` and its size if an HR image of `shape` (H, W, ...) is too small."""
    need = min_evaluable_side(scale, crop_border)
    h, w = int(shape[0]), int(shape[1])
    if min(h, w) < need:
        border = _resolve_crop(scale, crop_border)
        raise DataError(f"{what}: {w}x{h} pixels (after cropping to a multiple of {scale}) is too small for "
                        f"the protocol at x{scale}: each side needs at least {need} pixels (a {border}-pixel "
                        f"border on both sides plus the {need - 2 * border}x{need - 2 * border} SSIM window)")


def evaluate_pair(
    sr: np.ndarray,
    hr: np.ndarray,
    scale: int,
    *,
    crop_border: int | None = None,
    y_channel: bool = True,
) -> dict[str, float]:
    """PSNR and SSIM of an SR output against its ground truth under the published protocol.

    Args:
        sr, hr: uint8 images of the same shape, H x W, H x W x 1 or H x W x 3.
        scale: the SR scale; the default border removed on every side.
        crop_border: pixels removed on every side (default: ``scale``; 0 keeps the whole image).
        y_channel: measure 3-channel images on Y (default). If False they are measured on RGB:
            PSNR over all channels' MSE, SSIM the mean of the per-channel SSIMs.
            One-channel images are always measured on their own values.

    Returns:
        ``{'psnr': float, 'ssim': float}``; psnr is inf for identical (cropped) images.
    """
    a, b = protocol_pair(sr, hr, scale, crop_border=crop_border, y_channel=y_channel)
    if a.ndim == 2:
        return {"psnr": psnr(a, b), "ssim": ssim(a, b)}
    ssim_rgb = float(np.mean([ssim(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))
    return {"psnr": psnr(a, b), "ssim": ssim_rgb}


def protocol_pair(sr: np.ndarray, hr: np.ndarray, scale: int, *, crop_border: int | None = None,
                  y_channel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The two float64 images a metric compares: checked, border shaved, on Y (2-D) unless
    `y_channel` is False for 3-channel images (then H x W x 3)."""
    sr = _check_uint8_image(sr, "sr")
    hr = _check_uint8_image(hr, "hr")
    if sr.shape != hr.shape:
        raise DataError(f"evaluate_pair: sr and hr differ in shape: sr {sr.shape} vs hr {hr.shape}")
    scale = _check_scale(scale)
    border = _resolve_crop(scale, crop_border)
    h, w = hr.shape[:2]
    if h - 2 * border <= 0 or w - 2 * border <= 0:
        raise DataError(f"evaluate_pair: a border of {border} px leaves nothing of an image of shape {hr.shape}")
    if border:
        sr = sr[border:-border, border:-border]
        hr = hr[border:-border, border:-border]
    one_channel = sr.ndim == 2 or sr.shape[2] == 1
    if y_channel or one_channel:
        return rgb_to_y(sr), rgb_to_y(hr)
    return sr.astype(np.float64), hr.astype(np.float64)


def summarize(rows: Iterable[Mapping[str, Any]], metrics: Iterable = ()) -> dict[str, Any]:
    """Dataset summary of per-image rows: ``{'psnr', 'ssim', <metrics>, 'n_images', 'n_infinite_psnr'}``.

    Every row needs numeric 'psnr' and 'ssim' (and a value for each of the registered `metrics`
    beyond them). Checks each row, then applies msnlan.results.summary.summarize (the suite's one
    rule: PSNR averaged over the finite values, infinite ones counted in ``n_infinite_psnr``, inf
    if every image is infinite; the other metrics averaged over all images).
    """
    from .results.summary import summarize as summarize_values

    names = ["psnr", "ssim"] + [m.name for m in metrics if m.name not in ("psnr", "ssim")]
    columns: dict[str, list[float]] = {name: [] for name in names}
    for i, row in enumerate(rows):
        try:
            values = {name: float(row[name]) for name in names}
        except KeyError as exc:
            raise DataError(f"summarize: row {i} has no {exc.args[0]!r} value: {dict(row)!r}") from None
        except (TypeError, ValueError):
            raise DataError(f"summarize: row {i} has a non-numeric {'/'.join(names)}: {dict(row)!r}") from None
        p, s = values["psnr"], values["ssim"]
        if math.isnan(p) or p == -math.inf or not math.isfinite(s):
            raise DataError(f"summarize: row {i} has an invalid psnr/ssim: psnr={p!r}, ssim={s!r}")
        for name, value in values.items():
            columns[name].append(value)
    if not columns["psnr"]:
        raise DataError("summarize: no rows to summarize")
    return summarize_values(**columns)


def protocol_description(scale: int, crop_border: int | None = None, y_channel: bool = True) -> dict[str, Any]:
    """The protocol fields of an evaluation's protocol.json: shave, color space, SSIM and PSNR settings."""
    scale = _check_scale(scale)
    return {
        "shave": _resolve_crop(scale, crop_border),
        "color_space": COLOR_SPACE_Y if y_channel else COLOR_SPACE_RGB,
        "gray_images": "one-channel images are evaluated on their own values",
        "ssim": SSIM_DESCRIPTION,
        "psnr_definition": PSNR_DESCRIPTION,
    }


def _register_builtin_metrics() -> None:
    from .metric_registry import Metric, register_metric
    from .results.summary import mean_psnr

    register_metric(Metric("psnr", "PSNR", higher_is_better=True, decimals=2, csv_digits=6, low=0.0,
                           compute=lambda sr, hr, scale, crop_border=None: psnr(
                               *protocol_pair(sr, hr, scale, crop_border=crop_border)), mean=mean_psnr,
                           description=PSNR_DESCRIPTION))
    register_metric(Metric("ssim", "SSIM", higher_is_better=True, decimals=4, csv_digits=8, low=-1.0, high=1.0,
                           compute=lambda sr, hr, scale, crop_border=None: ssim(
                               *protocol_pair(sr, hr, scale, crop_border=crop_border)),
                           description=SSIM_DESCRIPTION))


_register_builtin_metrics()
