"""The multi-scale non-local attention block (MSNLAB) of Wu et al., "Multi-scale non-local attention
network for image super-resolution" (Signal Processing 2023): parallel non-local branches with
patch sizes 3, 5 and 7, fused 1x1, channel attention, plus the input. The branches' patch
attention lives in `attention` (the fast band-sum form, the direct form, and `auto`).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .blocks import ChannelAttention, conv
from .attention import (ATTENTION_FORMS, ATTENTION_MODES, DEFAULT_CHUNK_ELEMENTS, NORM_EPS,  # noqa: F401
                              direct_attention_bytes, direct_patch_attention, key_patch_norms, patch_attention,
                              plan_chunks, resolve_attention_form)

# --------------------------------------------------------------------------- modules


class ConvPReLU(nn.Module):
    """Convolution followed by a PReLU with one shared slope."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int | None = None) -> None:
        super().__init__()
        self.conv = conv(in_channels, out_channels, kernel_size, padding)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class NonLocalBranch(nn.Module):
    """One MSNLAB branch with patch size k: out = x + r * (y + r * x).

    s = PReLU(conv3x3(x)) with zero padding k//2 (so s is k-3 pixels larger than x);
    q from x, e and v from s (1x1 conv + PReLU each; q, e have C/2 channels).
    `attention_mode` picks the implementation ("auto", "fast" or "direct"; auto resolves by the
    input's device); `max_chunk_elements` bounds the fast form's working buffers (None:
    DEFAULT_CHUNK_ELEMENTS), `max_saved_elements` what it keeps for the backward pass (None:
    attention.MAX_SAVED_ELEMENTS).
    """

    def __init__(self, n_feats: int, patch_size: int, softmax_scale: float = 10.0,
                 res_scale: float = 0.1, eps: float = NORM_EPS) -> None:
        super().__init__()
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch size must be odd and >= 1, got {patch_size!r}")
        if n_feats < 2:
            raise ValueError(f"the MSNLAB needs n_feats >= 2 (queries and keys have n_feats // 2 channels), "
                             f"got {n_feats}")
        self.patch_size = patch_size
        self.softmax_scale = float(softmax_scale)
        self.res_scale = float(res_scale)
        self.eps = float(eps)
        self.attention_mode = "auto"
        self.max_chunk_elements: int | None = None
        self.max_saved_elements: int | None = None
        self.enlarge = ConvPReLU(n_feats, n_feats, 3, padding=patch_size // 2)
        self.query = ConvPReLU(n_feats, n_feats // 2, 1)
        self.key = ConvPReLU(n_feats, n_feats // 2, 1)
        self.value = ConvPReLU(n_feats, n_feats, 1)

    def attend(self, q: torch.Tensor, e: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode {self.attention_mode!r} is not one of {ATTENTION_MODES}")
        if resolve_attention_form(self.attention_mode, q.device) == "fast":
            return patch_attention(q, e, v, self.patch_size, self.softmax_scale, self.eps,
                                   self.max_chunk_elements, self.max_saved_elements)
        return direct_patch_attention(q, e, v, self.patch_size, self.softmax_scale, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch_size == 1 and min(x.shape[-2:]) < 3:  # its 3x3 conv has no padding
            raise ValueError(f"a patch-size-1 branch needs inputs of at least 3 x 3, got {tuple(x.shape[-2:])}")
        s = self.enlarge(x)
        y = self.attend(self.query(x), self.key(s), self.value(s))
        r = self.res_scale
        return x + r * (y + r * x)

    def extra_repr(self) -> str:
        return (f"patch_size={self.patch_size}, softmax_scale={self.softmax_scale}, "
                f"res_scale={self.res_scale}, attention_mode={self.attention_mode!r}")


class MSNLAB(nn.Module):
    """Parallel non-local branches (one per patch size), fused 1x1, channel attention, plus x."""

    def __init__(self, n_feats: int, patch_sizes: Iterable[int] = (3, 5, 7), softmax_scale: float = 10.0,
                 res_scale: float = 0.1, reduction: int = 16) -> None:
        super().__init__()
        sizes = [int(k) for k in patch_sizes]
        if not sizes:
            raise ValueError("the MSNLAB needs at least one patch size")
        self.branches = nn.ModuleList(NonLocalBranch(n_feats, k, softmax_scale, res_scale) for k in sizes)
        self.fusion = conv(n_feats * len(sizes), n_feats, 1)
        self.attention = ChannelAttention(n_feats, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(torch.cat([branch(x) for branch in self.branches], dim=1))
        return x + self.attention(fused)


def configure_attention(module: nn.Module, mode: str | None = None,
                        max_chunk_elements: int | None | type(...) = ...,
                        max_saved_elements: int | None | type(...) = ...) -> int:
    """Set the attention form and/or the fast form's budgets (working buffers, what is kept for the
    backward pass; None: the defaults) of every MSNLAB branch inside `module`; `...` leaves one as is.

    Returns the number of branches changed (0 for a network without MSNLAB).
    """
    if mode is not None and mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode {mode!r} is not one of {ATTENTION_MODES}")
    count = 0
    for sub in module.modules():
        if isinstance(sub, NonLocalBranch):
            if mode is not None:
                sub.attention_mode = mode
            if max_chunk_elements is not ...:
                sub.max_chunk_elements = max_chunk_elements
            if max_saved_elements is not ...:
                sub.max_saved_elements = max_saved_elements
            count += 1
    return count


def attention_form(module: nn.Module, device: torch.device | str) -> str:
    """The attention form the MSNLAB branches inside `module` run on `device`: "fast", "direct",
    "none" without an MSNLAB (forms joined by "+" where branches differ); what training and
    evaluation record as the form that ran."""
    forms = sorted({resolve_attention_form(sub.attention_mode, device) for sub in module.modules()
                    if isinstance(sub, NonLocalBranch)})
    return "+".join(forms) or "none"


def select_attention(module: nn.Module, mode: str, device: torch.device | str) -> dict:
    """Set every branch's attention mode; returns {"attention_mode", "attention_form"}, what
    training records in environment.json and evaluation in its protocol."""
    configure_attention(module, mode)
    return {"attention_mode": mode, "attention_form": attention_form(module, device)}
