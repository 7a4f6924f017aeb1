"""Validation during training: the suite's metric (mean Y-PSNR, border = scale) on whole images."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import DataError


def load_validation_pairs(path, scale: int, max_images: int | None = None) -> list:
    """The validation set's (HR, LR) pairs at `scale` (the first `max_images` if given)."""
    from ..data.datasets import load_dataset

    items = list(load_dataset(path, scale).items)
    if not items:
        raise DataError(f"validation data {path}: no images")
    return items[:max_images] if max_images else items


def validate(model: nn.Module, pairs: Sequence, scale: int) -> float:
    """Mean Y-PSNR (dB) over `pairs`, whole-image inference on the model's device.

    The suite's one PSNR mean (msnlan.results.summary.mean_psnr): exact images (PSNR = inf) are
    left out; if every image is exact the result is inf.
    """
    from ..inference import upscale
    from ..metrics import evaluate_pair

    from ..results.summary import mean_psnr

    return mean_psnr(evaluate_pair(upscale(model, pair.lr, scale), pair.hr, scale)["psnr"] for pair in pairs)
