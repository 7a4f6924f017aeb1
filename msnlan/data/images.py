"""Reading and writing 8-bit images with the checks a benchmark needs.

Every benchmark number starts from decoded pixels, so anything that would silently change them
(a truncated file, 16 bits quietly cut to 8, a palette, an alpha channel) is an error that names the
file. Grayscale stays one channel: the protocol evaluates a one-channel image on its own values.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import DataError
from ..io_utils import atomic_path

#: file name endings read as images (lower case)
IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

_PALETTE_MODES = ("P", "PA")
_ALPHA_MODES = ("RGBA", "LA")


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a visible file whose name ends with one of IMAGE_EXTENSIONS."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()


def _raw_modes(im: Image.Image) -> list[str]:
    """Raw pixel modes of the decoder tiles (before load), e.g. 'RGB;16B' for a 48-bit PNG."""
    modes = []
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, str):
            modes.append(args)
        elif isinstance(args, tuple) and args and isinstance(args[0], str):
            modes.append(args[0])
    return modes


def _is_high_bit_depth(im: Image.Image) -> bool:
    # Pillow opens a 16-bit-per-channel RGB PNG/TIFF as mode 'RGB' and drops the low byte
    # while decoding; only the raw mode of the decoder tile tells.
    if im.mode.startswith("I;16") or im.mode in ("I", "I;32"):
        return True
    return any(";16" in m or ";32" in m or m.startswith("I;16") for m in _raw_modes(im))


def read_image(path: str | os.PathLike, *, drop_alpha: bool = False) -> np.ndarray:
    """Decode an 8-bit image fully: uint8 H x W (grayscale) or H x W x 3 (RGB).

    Raises DataError naming the file for a corrupt or truncated file, more than 8 bits per
    channel, a palette image, an alpha channel (unless `drop_alpha`, which keeps the colour
    channels and ignores alpha, without compositing), several frames, or any other mode.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file does not exist")
    # a global switch elsewhere must not make us accept truncated files
    truncated_ok, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        try:
            with Image.open(path) as probe:
                probe.verify()  # chunk checksums (PNG) and structure, without decoding
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
        try:
            with Image.open(path) as im:
                mode = im.mode
                if getattr(im, "n_frames", 1) > 1:
                    raise DataError(f"{path}: has {im.n_frames} frames/pages; expected a single image")
                if _is_high_bit_depth(im):
                    raw = ", ".join(_raw_modes(im)) or mode
                    raise DataError(f"{path}: more than 8 bits per channel (mode {mode}, raw {raw}); "
                                    "convert it to 8-bit explicitly first")
                if mode in _PALETTE_MODES:
                    raise DataError(f"{path}: palette image (mode {mode}); convert it to RGB or L explicitly "
                                    "first so that the pixel values are known")
                if mode in _ALPHA_MODES and not drop_alpha:
                    raise DataError(f"{path}: has an alpha channel (mode {mode}); pass drop_alpha "
                                    "(--drop-alpha) to ignore it")
                if mode not in ("L", "RGB") and mode not in _ALPHA_MODES:
                    raise DataError(f"{path}: unsupported image mode {mode!r}; expected 8-bit L or RGB")
                im.load()  # full decode: a truncated or corrupt stream fails here
                arr = np.asarray(im)
        except DataError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok
    if mode in _ALPHA_MODES:
        arr = arr[..., :-1] if arr.shape[-1] == 4 else arr[..., 0]
    if arr.dtype != np.uint8:
        raise DataError(f"{path}: decoded to {arr.dtype}, expected 8-bit values")
    return np.ascontiguousarray(arr)


def check_image_array(array: np.ndarray, what: str = "image") -> None:
    """Raise DataError unless `array` is uint8 H x W or H x W x 3."""
    if not isinstance(array, np.ndarray):
        raise DataError(f"{what}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise DataError(f"{what}: expected dtype uint8, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise DataError(f"{what}: expected shape H x W or H x W x 3, got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{what}: empty image of shape {array.shape}")


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 H x W or H x W x 3 array as a PNG, atomically."""
    check_image_array(array, str(path))
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
