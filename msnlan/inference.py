"""Super-resolving one uint8 image: whole-image, tiled ("chop") and x8 self-ensemble inference.

Conventions (recorded in every protocol.json through `inference_protocol`):

* the network sees a batch of one NCHW float32 image in 0..255;
* a grayscale LR image is replicated to 3 channels; the 3-channel output is averaged back to one
  channel in float, before clamping and rounding, so a one-channel HR is measured against a
  one-channel SR on its own values;
* "chop" is the authors' test-time split (their forward_chop; Wu et al., Signal Processing 2023): an
  image of h x w LR pixels is cut into four overlapping quadrants of tile_side(h) x tile_side(w),
  where tile_side(n) = n//2 + overlap, plus scale - (n//2 + overlap) % scale (always rounded up, by a
  full `scale` when already a multiple); it is split at least once; a quadrant is split again while
  that rounded tile's area is >= min_pixels, else the model runs on it; each quadrant contributes
  only its own half in each direction (no blending). Where the rounded tile is larger than the
  image, the authors' code crashes; we run the image whole and the protocol lists it (quadrants
  always fit: t(n) <= n needs n > 2 * overlap, and then t(t(n)) <= t(n) too);
* self-ensemble runs the 8 flips/transposes, undoes each on the output and averages in float;
* the result is clamped to 0..255 and rounded half to even (torch.round), as EDSR's quantize().
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .checks import resolve_device
from .data.images import check_image_array
from .errors import ConfigError

ROUNDING = "clamp to [0, 255], then round half to even (torch.round, as EDSR/BasicSR quantize)"
GRAYSCALE_POLICY = ("one-channel LR replicated to 3 channels for the network; the 3 output channels are "
                    "averaged (float, before clamping/rounding) into one channel, which is compared with "
                    "the one-channel HR on its own values")
SELF_ENSEMBLE_DESCRIPTION = "x8: identity, flips and transposes; outputs inverted and averaged in float before rounding"
CHOP_DESCRIPTION = ("the authors' forward_chop: the h x w LR image is cut into 4 overlapping quadrants of "
                    "t(h) x t(w) LR px, t(n) = n//2 + overlap + scale - (n//2 + overlap) % scale (rounded up to "
                    "a multiple of the scale, by a full scale when already one); always split at least once; "
                    "a quadrant is split again while t(h) * t(w) >= min_pixels, else the network runs on it; "
                    "each quadrant keeps its own half of the output in each direction (no blending); where "
                    "t(h) > h or t(w) > w (the authors' code crashes there) the image is run whole, and the "
                    "images where this happened are listed under chop_whole_passes")
DEFAULT_OVERLAP = 10


def default_min_pixels(scale: int) -> int:
    """The authors' chop threshold: 4000 LR pixels per tile, 3600 at x4."""
    return 3600 if int(scale) == 4 else 4000


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def chop_tile_side(n: int, scale: int, overlap: int) -> int:
    """The authors' quadrant side along an axis of n LR px: n//2 + overlap, rounded up to the next
    multiple of `scale` strictly above it (a full `scale` is added when it already is one)."""
    side = n // 2 + overlap
    return side + scale - side % scale


def _largest_fixed_side(scale: int, overlap: int) -> int:
    """The largest side whose quadrant is the side itself (0 if none): splitting it never shrinks it.
    Only sides up to 2 * (overlap + scale) can be fixed, as tile_side(n) <= n//2 + overlap + scale."""
    fixed = [n for n in range(1, 2 * (overlap + scale) + 1) if chop_tile_side(n, scale, overlap) == n]
    return max(fixed, default=0)


def _check_tiling(tile: Any, min_pixels: int | None, overlap: int, scale: int) -> tuple[str, int]:
    """Normalise (tile, min_pixels): tile None/'none' or 'chop'; an int tile is chop's min_pixels."""
    if isinstance(tile, (int, np.integer)) and not isinstance(tile, bool):
        tile, min_pixels = "chop", int(tile)
    if tile is None or tile == "none":
        return "none", 0
    if tile != "chop":
        raise ConfigError(f"tile must be None, 'none' or 'chop', got {tile!r}")
    min_pixels = default_min_pixels(scale) if min_pixels is None else min_pixels
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, (int, np.integer)) or min_pixels < 1:
        raise ConfigError(f"min_pixels must be a positive integer, got {min_pixels!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ConfigError(f"overlap must be a non-negative integer, got {overlap!r}")
    # a side n with tile_side(n) == n splits into quadrants as large as itself: with a threshold at or
    # below n^2 the authors' recursion never ends (with their 4000/3600 it always does)
    fixed = _largest_fixed_side(scale, int(overlap))
    if min_pixels <= fixed ** 2:
        raise ConfigError(f"min_pixels {min_pixels} is too small for overlap {overlap} at x{scale}: a "
                          f"{fixed} x {fixed} LR tile splits into quadrants of the same size, so the chop "
                          f"recursion would never end; use min_pixels > {fixed ** 2} (the authors use 4000, "
                          "3600 at x4)")
    return "chop", int(min_pixels)


@dataclass(frozen=True)
class ChopPlan:
    """What chop does with an h x w LR image (it depends on the sizes only): `levels` of splitting,
    each quadrant of the last level `tile` LR px; `whole_pass` (with levels 0) when the network ran on
    the whole image because the rounded tile did not fit."""

    levels: int
    tile: tuple[int, int]
    whole_pass: bool


def chop_plan(h: int, w: int, scale: int, min_pixels: int, overlap: int = DEFAULT_OVERLAP) -> ChopPlan:
    """The tiling chop_forward applies to an h x w input (all quadrants of a level share one size)."""
    levels = 0
    while True:
        th, tw = chop_tile_side(h, scale, overlap), chop_tile_side(w, scale, overlap)
        if th > h or tw > w:
            return ChopPlan(levels, (h, w), True)
        levels += 1
        if th * tw < min_pixels:
            return ChopPlan(levels, (th, tw), False)
        h, w = th, tw


def chop_forward(model: torch.nn.Module, x: torch.Tensor, scale: int, min_pixels: int,
                 overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """The authors' recursive four-quadrant inference of `model` on NCHW `x` (float output, not
    rounded); see CHOP_DESCRIPTION. Check min_pixels with _check_tiling first (termination)."""
    _, _, h, w = x.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = chop_tile_side(h, scale, overlap), chop_tile_side(w, scale, overlap)
    if h_size > h or w_size > w:  # the quadrants would reach outside the image (only ever at the top): whole
        return model(x)
    origins = [(0, 0), (0, w - w_size), (h - h_size, 0), (h - h_size, w - w_size)]
    tiles = [x[..., y0:y0 + h_size, x0:x0 + w_size] for y0, x0 in origins]
    if h_size * w_size < min_pixels:
        outs = [model(t) for t in tiles]
    else:
        outs = [chop_forward(model, t, scale, min_pixels, overlap) for t in tiles]
    # quadrant i owns the output rows/cols of its own half; its tile's output starts at scale * origin
    rows = [(0, h_half * scale), (h_half * scale, h * scale)]
    cols = [(0, w_half * scale), (w_half * scale, w * scale)]
    out = outs[0].new_empty(outs[0].shape[0], outs[0].shape[1], h * scale, w * scale)
    for i, ((y0, x0), out_tile) in enumerate(zip(origins, outs)):
        (r0, r1), (c0, c1) = rows[i // 2], cols[i % 2]
        oy, ox = y0 * scale, x0 * scale
        out[..., r0:r1, c0:c1] = out_tile[..., r0 - oy:r1 - oy, c0 - ox:c1 - ox]
    return out


def _transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 dihedral variants (bit 0: flip W, bit 1: flip H, bit 2: transpose)."""
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-1, -2)
    return x.contiguous()


def _untransform(y: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of _transform: the same operations in reverse order."""
    if k & 4:
        y = y.transpose(-1, -2)
    if k & 2:
        y = y.flip(-2)
    if k & 1:
        y = y.flip(-1)
    return y


def _to_tensor(lr: np.ndarray, device: torch.device) -> torch.Tensor:
    rgb = np.repeat(lr[:, :, None], 3, axis=2) if lr.ndim == 2 else lr
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None].float()


def quantize(y: torch.Tensor, gray: bool) -> np.ndarray:
    """Float NCHW output of one image -> uint8 H x W x 3 (or H x W when `gray`)."""
    y = y[0]
    if gray:
        y = y.mean(dim=0)  # float average of the 3 channels, before rounding
    else:
        y = y.permute(1, 2, 0)
    return y.clamp(0, 255).round().to(torch.uint8).cpu().numpy()


def upscale_float(model: torch.nn.Module, x: torch.Tensor, scale: int, *, tile: str = "none",
                  min_pixels: int = 0, overlap: int = DEFAULT_OVERLAP,
                  self_ensemble: bool = False) -> torch.Tensor:
    """Float NCHW output of `model` on NCHW float `x` with the given tiling and self-ensemble."""
    def forward(t: torch.Tensor) -> torch.Tensor:
        if tile == "chop":
            return chop_forward(model, t, scale, min_pixels, overlap)
        return model(t)

    if not self_ensemble:
        return forward(x)
    total = None
    for k in range(8):
        y = _untransform(forward(_transform(x, k)), k)
        total = y if total is None else total + y
    return total / 8


def upscale(model: torch.nn.Module | str, lr: np.ndarray, scale: int | None = None, *, tile: Any = None,
            min_pixels: int | None = None, overlap: int = DEFAULT_OVERLAP, self_ensemble: bool = False,
            device: Any = None) -> np.ndarray:
    """Super-resolve a uint8 H x W x 3 or H x W image; returns uint8 of `scale` times its size.

    `model` is an nn.Module (0..255 float NCHW in and out; `scale` defaults to ``model.scale``)
    or ``"bicubic"`` (MATLAB-exact imresize by `scale`). `tile`: None/'none' (whole image) or
    'chop' (min_pixels defaults to 4000, 3600 at x4); `device`: where to run (default: the
    model's device; the model is moved there otherwise).
    """
    check_image_array(lr, "LR image")
    if isinstance(model, str):
        if model != "bicubic":
            raise ConfigError(f"unknown method {model!r}: pass a network or 'bicubic'")
        if scale is None:
            raise ConfigError("bicubic upscaling needs a scale")
        if self_ensemble:
            raise ConfigError("self-ensemble is defined for networks, not for bicubic")
        from .data.imresize import imresize

        return imresize(lr, int(scale))
    if scale is None:
        scale = getattr(model, "scale", None)
        if scale is None:
            raise ConfigError("upscale: give the scale (the model has no .scale attribute)")
    model_scale = getattr(model, "scale", None)
    if model_scale is not None and int(model_scale) != int(scale):
        raise ConfigError(f"upscale: scale {scale} differs from the model's scale {model_scale}")
    scale = int(scale)
    mode, min_pixels = _check_tiling(tile, min_pixels, overlap, scale)
    dev = _model_device(model) if device is None else resolve_device(device)
    if device is not None:
        model.to(dev)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x = _to_tensor(lr, dev)
            y = upscale_float(model, x, scale, tile=mode, min_pixels=min_pixels, overlap=overlap,
                              self_ensemble=self_ensemble)
            expected = (lr.shape[0] * scale, lr.shape[1] * scale)
            if tuple(y.shape[-2:]) != expected or y.shape[1] != 3:
                raise ConfigError(f"upscale: the model returned shape {tuple(y.shape)} for an LR of "
                                  f"{lr.shape[:2]}; expected 3 x {expected[0]} x {expected[1]}")
            return quantize(y, gray=lr.ndim == 2)
    finally:
        model.train(was_training)


def inference_protocol(tile: Any, min_pixels: int | None, overlap: int, self_ensemble: bool,
                       scale: int) -> dict:
    """The protocol.json fields that describe how the outputs were produced."""
    mode, mp = _check_tiling(tile, min_pixels, overlap, scale)
    chop = mode == "chop"
    return {
        "tiling": {"mode": mode, "min_pixels": mp if chop else None, "overlap": int(overlap) if chop else None},
        "tiling_rule": CHOP_DESCRIPTION if chop else "whole image in one forward pass",
        "self_ensemble": bool(self_ensemble),
        "self_ensemble_rule": SELF_ENSEMBLE_DESCRIPTION if self_ensemble else None,
        "rounding": ROUNDING,
        "grayscale": GRAYSCALE_POLICY,
    }
