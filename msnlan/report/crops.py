"""Visual comparison crops: choosing the crop box, cutting, zooming, and the crop's PSNR/SSIM.

Automatic crop box (documented in the report): among all interior square windows, the one where the
SR outputs of the variants differ most from bicubic (sum over variants of the squared Y difference
inside the window), i.e. where the networks changed the picture most; without any variant image,
the window of highest HR gradient energy. Windows keep `margin` pixels (at least the scale) away from
the border so the crop metrics, computed on the crop WITHOUT shaving, see only interior pixels.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError, DataError

#: images often used in SR papers' figures for their fine structure (used when present)
FINE_STRUCTURE_IMAGES = {"Set14": ("barbara",), "B100": ("253027",), "Urban100": ("img_092", "img_004")}
#: the smallest crop side (HR px); the config schema's report.crop_size minimum is this value
MIN_CROP_SIZE = 12
DISPLAY_SIZE = 140        # target on-screen size of a crop (CSS px) after nearest-neighbour zoom
OVERVIEW_WIDTH = 320


@dataclass(frozen=True)
class CropBox:
    top: int
    left: int
    size: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.size), slice(self.left, self.left + self.size)


def to_y(image: np.ndarray) -> np.ndarray:
    """Y (BT.601, 16-235) of an RGB uint8 image as float64; a one-channel image as its own values."""
    from ..metrics import rgb_to_y

    return rgb_to_y(image)


def default_crop_size(shape: Sequence[int], scale: int) -> int:
    """About a quarter of the short side, between 32 and 96 px, and fitting inside the margins."""
    short = min(shape[0], shape[1])
    size = int(np.clip(short // 4, 32, 96))
    return max(MIN_CROP_SIZE, min(size, short - 2 * crop_margin(scale)))


def crop_margin(scale: int) -> int:
    return max(int(scale), 8)


def _window_sums(energy: np.ndarray, size: int) -> np.ndarray:
    """Sum of `energy` in every size x size window (summed-area table), indexed by top-left corner."""
    sat = np.zeros((energy.shape[0] + 1, energy.shape[1] + 1))
    sat[1:, 1:] = energy.cumsum(0).cumsum(1)
    return sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]


def choose_crop(hr: np.ndarray, bicubic: np.ndarray | None, variants: Sequence[np.ndarray], size: int,
                margin: int) -> tuple[CropBox, str]:
    """The automatic crop box and a one-line reason (see the module docstring)."""
    h, w = hr.shape[:2]
    if size + 2 * margin > min(h, w):
        raise DataError(f"image of {w}x{h} px is too small for a {size}px crop with a {margin}px margin")
    if bicubic is not None and variants:
        ref = to_y(bicubic)
        energy = sum((to_y(v) - ref) ** 2 for v in variants)
        reason = "automatic: the window where the variants differ most from bicubic"
    else:
        y = to_y(hr)
        gy, gx = np.gradient(y)
        energy = gx ** 2 + gy ** 2
        reason = "automatic: the window of highest HR gradient energy"
    inner = energy[margin:h - margin, margin:w - margin]
    sums = _window_sums(inner, size)
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)  # first maximum: deterministic
    return CropBox(int(top) + margin, int(left) + margin, size), reason


def check_box(box: CropBox, shape: Sequence[int], where: str) -> CropBox:
    h, w = shape[:2]
    if box.size < MIN_CROP_SIZE:
        raise ConfigError(f"{where}: crop size {box.size} is below {MIN_CROP_SIZE} px (the SSIM window needs 11)")
    if box.top < 0 or box.left < 0 or box.top + box.size > h or box.left + box.size > w:
        raise ConfigError(f"{where}: crop [top {box.top}, left {box.left}, size {box.size}] is outside the "
                          f"{w}x{h} image")
    return box


def crop(image: np.ndarray, box: CropBox) -> np.ndarray:
    rows, cols = box.slices()
    return np.ascontiguousarray(image[rows, cols])


def zoom_factor(size: int) -> int:
    return max(1, math.ceil(DISPLAY_SIZE / size))


def zoom_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Integer nearest-neighbour enlargement: every pixel becomes a factor x factor block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def crop_metrics(sr_crop: np.ndarray, hr_crop: np.ndarray, scale: int) -> dict:
    """Every registered metric of a crop, without shaving (the crop box is interior by construction)."""
    from ..metric_registry import registered_metrics

    return {m.name: m.compute(sr_crop, hr_crop, scale, crop_border=0) for m in registered_metrics()}


def png_data_uri(image: np.ndarray | Image.Image) -> str:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def overview_with_box(hr: np.ndarray, box: CropBox, width: int = OVERVIEW_WIDTH) -> Image.Image:
    """The HR image scaled to `width` px (display only: Lanczos down, nearest-neighbour up) with the
    crop box drawn in red."""
    pil = Image.fromarray(hr).convert("RGB")
    factor = width / pil.width
    resample = Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.NEAREST
    pil = pil.resize((width, max(1, round(pil.height * factor))), resample)
    draw = ImageDraw.Draw(pil)
    x0, y0 = box.left * factor, box.top * factor
    x1, y1 = (box.left + box.size) * factor - 1, (box.top + box.size) * factor - 1
    draw.rectangle([x0, y0, x1, y1], outline=(255, 0, 0), width=2)
    return pil
