"""Building blocks of the MSNLAN family: mean shift, channel attentions, RMAB, RCAB, residual group.

Written from the paper's description (Wu et al., Signal Processing 2023); all convolutions have a bias.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_scale


def conv(in_channels: int, out_channels: int, kernel_size: int, padding: int | None = None) -> nn.Conv2d:
    """A biased stride-1 convolution, zero-padded to keep the size unless `padding` says otherwise."""
    return nn.Conv2d(in_channels, out_channels, kernel_size,
                     padding=kernel_size // 2 if padding is None else padding, bias=True)


def squeezed_channels(channels: int, reduction: int) -> int:
    """Width of the attention bottleneck (at least one channel, so tiny test widths still work)."""
    return max(1, channels // reduction)


class MeanShift(nn.Module):
    """Fixed 1x1 convolution adding `sign * rgb_range * mean` per channel (std 1).

    Weight (3x3x1x1, the identity) and bias (3) are parameters with requires_grad False, as in
    the authors' code, so the "with the 24 fixed values" parameter count and their checkpoint
    keys hold; the optimiser never updates them.
    """

    def __init__(self, rgb_mean: Sequence[float], rgb_range: float, sign: int) -> None:
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"MeanShift sign must be -1 or +1, got {sign!r}")
        self.weight = nn.Parameter(torch.eye(3).view(3, 3, 1, 1), requires_grad=False)
        self.bias = nn.Parameter(sign * float(rgb_range) * torch.tensor([float(m) for m in rgb_mean]),
                                 requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class _Gate(nn.Module):
    """Squeeze-excite gate on a per-channel statistic: 1x1 C->C/r, ReLU, 1x1 C/r->C, sigmoid."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = squeezed_channels(channels, reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def gate(self, stat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(F.relu(self.reduce(stat))))


class ChannelAttention(_Gate):
    """RCAN's channel attention (CA): gate on the global average of each channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=(2, 3), keepdim=True))


class ContrastChannelAttention(_Gate):
    """Contrast-aware channel attention (CCA): gate on std + mean of each channel.

    The std is the population std (divides by H*W), as in the authors' code.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.gate(std + mean)


class RMAB(nn.Module):
    """Residual multi-scale attention block: a cascade of three 3x3 conv + GELU (receptive
    fields 3, 5, 7), their outputs fused 1x1 (3C -> C), CCA, plus the input."""

    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = conv(n_feats, n_feats, 3)
        self.conv2 = conv(n_feats, n_feats, 3)
        self.conv3 = conv(n_feats, n_feats, 3)
        self.fusion = conv(n_feats * 3, n_feats, 1)
        self.attention = ContrastChannelAttention(n_feats, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.gelu(self.conv1(x))  # exact (erf) GELU, as nn.GELU() defaults to
        x2 = F.gelu(self.conv2(x1))
        x3 = F.gelu(self.conv3(x2))
        return x + self.attention(self.fusion(torch.cat([x1, x2, x3], dim=1)))


class RCAB(nn.Module):
    """RCAN's residual channel attention block: conv3x3, ReLU, conv3x3, CA, plus the input."""

    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = conv(n_feats, n_feats, 3)
        self.conv2 = conv(n_feats, n_feats, 3)
        self.attention = ChannelAttention(n_feats, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.conv2(F.relu(self.conv1(x))))


class ResidualGroup(nn.Module):
    """`n_blocks` blocks, then a 3x3 conv, plus the group's input."""

    def __init__(self, n_feats: int, n_blocks: int, block: str, reduction: int) -> None:
        super().__init__()
        from .registry import TRUNK_BLOCKS

        if block not in TRUNK_BLOCKS:
            raise ValueError(f"block {block!r} is not one of {sorted(TRUNK_BLOCKS)}")
        self.blocks = nn.Sequential(*(TRUNK_BLOCKS[block].build(n_feats, reduction) for _ in range(n_blocks)))
        self.end = conv(n_feats, n_feats, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.end(self.blocks(x))


def upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """Sub-pixel upsampler without activation: x2 and x3 one conv + PixelShuffle, x4 the x2 stage twice."""
    if scale in (2, 3):
        return nn.Sequential(conv(n_feats, scale * scale * n_feats, 3), nn.PixelShuffle(scale))
    if scale == 4:
        return nn.Sequential(conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2),
                             conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2))
    check_scale(scale, error=ValueError)  # raises: an upsampler exists for 2, 3 and 4 only
    raise AssertionError(scale)
