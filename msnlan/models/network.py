"""The generic MSNLAN network: one class whose switches cover the paper model and every ablation.

Layout (Wu et al., Signal Processing 2023): mean subtraction, head conv, `n_resgroups` residual groups with
the MSNLAB after the first n_resgroups // 2 of them, trunk-end conv plus the head output,
upsampler, final conv, mean addition. Dense skips, generalised to any number of groups:
the groups before the MSNLAB are fused 1x1 into its input; the first group after it takes
its output; each later group takes conv1x1(concat[previous group output, MSNLAB output]).
Without the MSNLAB, the dense fusion output takes its place (it feeds the next group and
the later fusions). Without dense skips, the groups run one after the other.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from ..checks import SCALES, check_scale
from ..errors import ConfigError
from ..paper import PAPER_MODEL
from ..variants import resolve_variant
from .blocks import MeanShift, ResidualGroup, conv, upsampler
from .registry import ATTENTION_BLOCKS, build_attention


class MSNLAN(nn.Module):
    """Maps N x 3 x h x w images in 0..rgb_range to N x 3 x (scale h) x (scale w)."""

    def __init__(self, *, scale: int, **settings: Any) -> None:
        """`settings`: the model settings of a variant (msnlan.variants.MODEL_KEYS); those not
        given are the paper model's (msnlan.paper.PAPER_MODEL)."""
        super().__init__()
        unknown = sorted(set(settings) - set(PAPER_MODEL) - set(ATTENTION_BLOCKS))
        if unknown:
            raise ConfigError(f"unknown model setting(s) {', '.join(unknown)}")
        s = {**PAPER_MODEL, **settings}
        n_feats, n_resgroups, n_resblocks, block = s["n_feats"], s["n_resgroups"], s["n_resblocks"], s["block"]
        reduction, rgb_mean, rgb_range = s["reduction"], s["rgb_mean"], s["rgb_range"]
        scale = check_scale(scale)
        if n_resgroups < 1:
            raise ConfigError(f"n_resgroups must be >= 1, got {n_resgroups}")
        self.n_before = n_resgroups // 2  # groups before the MSNLAB (RG1..RG4 in the paper)
        self.dense_skips = bool(s["dense_skips"])
        self.sub_mean = MeanShift(rgb_mean, rgb_range, sign=-1)
        self.head = conv(3, n_feats, 3)
        self.groups = nn.ModuleList(ResidualGroup(n_feats, n_resblocks, block, reduction)
                                    for _ in range(n_resgroups))
        # registered under its own name (e.g. "msnlab"), which the checkpoints' keys carry
        self.attention_name, attention = build_attention(s)
        self.add_module(self.attention_name, attention)
        n_after = n_resgroups - self.n_before
        if self.dense_skips:
            # with no group before the MSNLAB there is nothing to fuse: the head output goes in
            self.dense_fusion = conv(self.n_before * n_feats, n_feats, 1) if self.n_before else None
            self.skip_fusions = nn.ModuleList(conv(2 * n_feats, n_feats, 1) for _ in range(max(0, n_after - 1)))
        else:
            self.dense_fusion = None
            self.skip_fusions = nn.ModuleList()
        self.trunk_end = conv(n_feats, n_feats, 3)
        self.upsample = upsampler(n_feats, scale)
        self.to_rgb = conv(n_feats, 3, 3)
        self.add_mean = MeanShift(rgb_mean, rgb_range, sign=1)
        self.scale = scale
        self.variant: dict | None = None  # set by build_model

    def _trunk(self, head: torch.Tensor) -> torch.Tensor:
        before, after = self.groups[: self.n_before], self.groups[self.n_before:]
        attention = getattr(self, self.attention_name)
        x = head
        if not self.dense_skips:
            for group in before:
                x = group(x)
            if attention is not None:
                x = attention(x)
            for group in after:
                x = group(x)
            return x
        outputs = []
        for group in before:
            x = group(x)
            outputs.append(x)
        if self.dense_fusion is not None:
            x = self.dense_fusion(torch.cat(outputs, dim=1))
        middle = attention(x) if attention is not None else x
        x = middle
        for i, group in enumerate(after):
            if i > 0:
                x = self.skip_fusions[i - 1](torch.cat([x, middle], dim=1))
            x = group(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"MSNLAN expects N x 3 x H x W input, got shape {tuple(x.shape)}")
        head = self.head(self.sub_mean(x))
        features = self.trunk_end(self._trunk(head)) + head
        # On the CPU the upsampler's and the last convolution's few output channels run faster
        # channels_last (oneDNN; forward + backward on one thread: 16 -> 3 channels at 64 x 64,
        # 5.0 against 12.9 ms; 16 -> 64 at 32 x 32, 5.9 against 7.5 ms), while the rest of the
        # network, the MSNLAB above all, is faster in the default layout: the demo network's x4
        # training step went from 47.5 to 36.9 ms without the MSNLAB, 143.8 to 138.4 ms with it.
        relayout = features.device.type == "cpu" and not features.is_contiguous(memory_format=torch.channels_last)
        if relayout:
            features = features.contiguous(memory_format=torch.channels_last)
        out = self.add_mean(self.to_rgb(self.upsample(features)))
        return out.contiguous() if relayout else out


def _resolve(variant: str | os.PathLike | Mapping[str, Any], overrides: dict) -> dict:
    """resolve_variant, also accepting an already resolved variant (as stored in checkpoints)."""
    if isinstance(variant, Mapping) and "model" in variant and ("source" in variant or "name" in variant):
        resolved = resolve_variant({"description": variant.get("description", ""),
                                    "model": dict(variant["model"])}, **overrides)
        resolved["name"] = variant.get("name", resolved["name"])
        resolved["source"] = variant.get("source", resolved["source"])
        return resolved
    return resolve_variant(variant, **overrides)


def build_model(variant: str | os.PathLike | Mapping[str, Any], scale: int, **overrides: Any) -> MSNLAN:
    """The network of `variant` (a registered name, a YAML path, a mapping, or a resolved
    variant) at `scale`, with model settings replaced by `overrides`.

    The returned module carries `.variant` (the resolved variant) and `.scale`.
    """
    scale_int = check_scale(scale)
    resolved = _resolve(variant, overrides)
    settings = resolved["model"]
    if settings["msnlab"] and settings["n_feats"] < 2:
        raise ConfigError(f"{resolved['source']}: key 'model.n_feats' must be >= 2 with the MSNLAB on "
                          f"(its queries have n_feats // 2 channels), got {settings['n_feats']}")
    model = MSNLAN(scale=scale_int, **settings)
    model.variant = resolved
    return model


def count_parameters(model: nn.Module) -> dict:
    """{'total', 'trainable', 'fixed'} parameter counts (fixed = the mean shifts)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "fixed": total - trainable}
