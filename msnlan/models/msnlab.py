"""The multi-scale non-local attention block (MSNLAB) and its patch attention.

One branch with patch size k (p = k // 2) attends from the k x k patches of q (H x W, N = HW
queries) to the L2-normalised k x k patches of e and pastes back the k x k patches of v
(both Hs x Ws, L = HsWs keys), as in Wu et al., Signal Processing 2023. Two implementations:

* `direct_patch_attention`: the textbook form, unfold / normalise / softmax / fold per image.
  It materialises the L x N matrix (17 GB at 256 x 256) and k^2-times larger products; it is
  kept as the reference (benchmark, complexity counts).
* `patch_attention`: the same numbers without the k^2 factor and in bounded memory.
  A patch score is a sum of pixel scores along a diagonal,
      P(i, j) = sum_{d in [-p, p]^2} S(i + d, j + d),   S(i, j) = <q(i), e(j)>,
  (zero outside the grids = the zero padding), so one C/2-deep product S plus a separable
  "band sum" (k shifted slice-adds over the rows, k over the columns) gives P. The fold is the
  transpose of the same structure: y(a) = sum_b v(b) W(a, b) with W the band sum of the
  softmax A. Queries are processed in tiles (whole batches of small images, single images,
  or rectangles of one large image): the scores of a tile need the pixel scores of the tile
  plus a p-pixel halo, and the tile's band-summed A lands on the tile plus the halo of the
  output, where contributions are accumulated. Working memory is two buffers of at most
  `max_chunk_elements` elements, reused across tiles.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelAttention, conv

#: upper bound on the elements of one of the two working buffers: 2**26 float32 = 256 MiB,
#: so the attention's extra memory stays near 0.5 GiB at any input size
DEFAULT_CHUNK_ELEMENTS = 2 ** 26
#: preferred buffer size: 2**22 float32 = 16 MiB tiles run markedly faster on CPU than
#: whole-image buffers (cache; measured 1.5x at 64 x 64)
PREFERRED_CHUNK_ELEMENTS = 2 ** 22
#: accept this much redundant (halo) work before growing tiles beyond the preferred size
#: (measured: 14 x 14 tiles at 96 x 96, 2.3x the area, still beat whole rows by 1.2-1.6x)
MAX_HALO_OVERHEAD = 3.0

#: the authors' clamp of the key-patch norm ("escape_NaN")
NORM_EPS = 1e-4

ATTENTION_MODES = ("fast", "direct")


# --------------------------------------------------------------------------- checks


def _check_inputs(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int) -> None:
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd and >= 1, got {patch_size!r}")
    if q.dim() != 4 or e.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, e, v must be 4-D (N x C x H x W), got {tuple(q.shape)}, {tuple(e.shape)}, "
                         f"{tuple(v.shape)}")
    if not (q.shape[0] == e.shape[0] == v.shape[0]):
        raise ValueError(f"batch sizes differ: q {q.shape[0]}, e {e.shape[0]}, v {v.shape[0]}")
    if q.shape[1] != e.shape[1]:
        raise ValueError(f"q and e must have the same channels, got {q.shape[1]} and {e.shape[1]}")
    if e.shape[2:] != v.shape[2:]:
        raise ValueError(f"e and v must have the same size, got {tuple(e.shape[2:])} and {tuple(v.shape[2:])}")


# --------------------------------------------------------------------------- direct form


def direct_patch_attention(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int,
                           softmax_scale: float = 10.0, eps: float = NORM_EPS) -> torch.Tensor:
    """Reference form, image by image: y = fold(V softmax_L(scale K^T Q)) with K's columns
    L2-normalised (norm clamped at `eps`). Holds an L x N matrix per image."""
    _check_inputs(q, e, v, patch_size)
    k, p = patch_size, patch_size // 2
    out = []
    for qi, ei, vi in zip(q.split(1), e.split(1), v.split(1)):
        Q = F.unfold(qi, k, padding=p)[0]  # (C/2 k^2, N)
        K = F.unfold(ei, k, padding=p)[0]  # (C/2 k^2, L)
        K = K / K.norm(dim=0, keepdim=True).clamp_min(eps)
        V = F.unfold(vi, k, padding=p)[0]  # (C k^2, L)
        A = torch.softmax(softmax_scale * (K.t() @ Q), dim=0)  # (L, N)
        out.append(F.fold((V @ A)[None], q.shape[2:], k, padding=p))
    return torch.cat(out, dim=0)


def direct_attention_bytes(height: int, width: int, n_feats: int, patch_size: int,
                           element_size: int = 4) -> int:
    """Approximate peak working memory of `direct_patch_attention` for one image (the L x N scores
    and their softmax, plus the unfolded V A); used to decide where the direct form can run."""
    p = patch_size // 2
    n = height * width
    l_keys = (height + 2 * p - 2) * (width + 2 * p - 2)
    k2 = patch_size * patch_size
    return element_size * (2 * n * l_keys + n_feats * k2 * (n + l_keys) + n_feats // 2 * k2 * (n + l_keys))


# --------------------------------------------------------------------------- fast form


def key_patch_norms(e: torch.Tensor, patch_size: int, eps: float = NORM_EPS) -> torch.Tensor:
    """L2 norm of every zero-padded k x k patch of e, clamped below at `eps`: (B, Hs, Ws)."""
    p = patch_size // 2
    energy = e.pow(2).sum(dim=1, keepdim=True)
    ones = energy.new_ones(1, 1, patch_size, patch_size)
    return F.conv2d(energy, ones, padding=p)[:, 0].clamp_min(0).sqrt().clamp_min(eps)


def _band_sum(src: torch.Tensor, src_start: int, dst: torch.Tensor, dst_start: int,
              q_axis: int, k_axis: int, p: int) -> torch.Tensor:
    """dst[.., i, .., j, ..] = sum_{d=-p..p} src[.., i+d, .., j+d, ..] along one query axis and its key axis.

    Query indices are absolute (src covers [src_start, src_start + len), dst likewise); key
    indices cover the whole key axis. Terms outside src or outside the key grid are zero.
    Writes into `dst` (in place) and returns it.
    """
    n_src, n_dst, n_key = src.shape[q_axis], dst.shape[q_axis], src.shape[k_axis]
    covered = src_start <= dst_start and dst_start + n_dst <= src_start + n_src
    if covered:  # the d = 0 term fills dst: no zeroing pass needed
        dst.copy_(src.narrow(q_axis, dst_start - src_start, n_dst))
    else:
        dst.zero_()
    for d in range(-p, p + 1):
        if d == 0 and covered:
            continue
        lo, hi = max(dst_start, src_start - d), min(dst_start + n_dst, src_start + n_src - d)
        jlo, jhi = max(0, -d), min(n_key, n_key - d)
        if hi <= lo or jhi <= jlo:
            continue
        dst.narrow(q_axis, lo - dst_start, hi - lo).narrow(k_axis, jlo, jhi - jlo).add_(
            src.narrow(q_axis, lo + d - src_start, hi - lo).narrow(k_axis, jlo + d, jhi - jlo))
    return dst


def _tiling(batch: int, height: int, width: int, n_keys: int, patch_size: int,
            max_elements: int) -> tuple[int, int, int, float]:
    """(images per group, tile height, tile width, relative cost) within `max_elements`.

    Cost is the halo-inclusive query area per image area (1.0 = no redundant work); tiles that
    do not span the full width count 10% more (shorter contiguous runs, measured slower).
    """
    p = patch_size // 2
    per_image = height * width * n_keys
    if per_image <= max_elements:
        return max(1, min(batch, max_elements // per_image)), height, width, 1.0
    max_queries = max_elements // n_keys
    best: tuple[float, int, int, int] | None = None  # (cost, -tile_w, tile_h, tile_w)
    for tile_w in range(1, width + 1):
        window_w = width if tile_w == width else min(width, tile_w + 2 * p)
        rows = max_queries // window_w
        tile_h = height if rows >= height else rows - 2 * p
        if tile_h < 1:
            continue
        window_h = height if tile_h == height else min(height, tile_h + 2 * p)
        area = math.ceil(height / tile_h) * math.ceil(width / tile_w) * window_h * window_w
        cost = area / (height * width) * (1.0 if tile_w == width else 1.1)
        cand = (cost, -tile_w, tile_h, tile_w)
        if best is None or cand < best:
            best = cand
    if best is None:  # not even a 1 x 1 tile fits: take it anyway
        return 1, 1, 1, float(min(height, 2 * p + 1) * min(width, 2 * p + 1))
    return 1, best[2], best[3], best[0]


def plan_chunks(batch: int, height: int, width: int, n_keys: int, patch_size: int,
                max_elements: int, cache_tiles: bool = True) -> tuple[int, int, int]:
    """(images per group, tile height, tile width) for `patch_attention`.

    With `cache_tiles` (CPU), tiles aim at PREFERRED_CHUNK_ELEMENTS per buffer (cache-sized
    working sets are faster than whole-image ones); where the halo would then cost more than
    MAX_HALO_OVERHEAD times the useful work (large images), they grow up to `max_elements`.
    Without it (GPU: fewer, larger kernels) they use `max_elements` directly. A 1 x 1 tile is
    the floor: its window, (2p+1)^2 queries x L keys, may exceed a tiny budget.
    """
    preferred = min(max_elements, PREFERRED_CHUNK_ELEMENTS) if cache_tiles else max_elements
    plan = _tiling(batch, height, width, n_keys, patch_size, preferred)
    if preferred < max_elements and plan[3] > MAX_HALO_OVERHEAD:
        plan = _tiling(batch, height, width, n_keys, patch_size, max_elements)
    return plan[:3]


def _tile_windows(size: int, tile: int, p: int) -> Iterable[tuple[int, int, int, int]]:
    """(start, stop, halo start, halo stop) of each tile along one axis."""
    for start in range(0, size, tile):
        stop = min(size, start + tile)
        yield start, stop, max(0, start - p), min(size, stop + p)


def patch_attention(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int,
                    softmax_scale: float = 10.0, eps: float = NORM_EPS,
                    max_chunk_elements: int | None = None) -> torch.Tensor:
    """Memory-bounded patch attention, equal to `direct_patch_attention` up to float rounding.

    q: (B, C', H, W) queries; e: (B, C', Hs, Ws) keys; v: (B, C, Hs, Ws) values; returns
    (B, C, H, W). Autograd works through it (then the working buffers are not reused).
    """
    _check_inputs(q, e, v, patch_size)
    k, p = patch_size, patch_size // 2
    batch, c_key, height, width = q.shape
    c_val, key_h, key_w = v.shape[1:]
    n_keys = key_h * key_w
    budget = DEFAULT_CHUNK_ELEMENTS if max_chunk_elements is None else int(max_chunk_elements)
    if budget < 1:
        raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements!r}")

    # scale / ||K_j|| per key column, applied to the summed scores in one pass
    col_scale = (softmax_scale / key_patch_norms(e, k, eps)).view(batch, 1, 1, key_h, key_w)
    e_flat = e.reshape(batch, c_key, n_keys)
    v_flat = v.reshape(batch, c_val, n_keys)
    group, tile_h, tile_w = plan_chunks(batch, height, width, n_keys, k, budget,
                                        cache_tiles=q.device.type == "cpu")
    out = q.new_zeros(batch, c_val, height, width)

    track_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, e, v))
    buffers = None
    if not track_grad:  # two flat buffers, reused by every tile (allocation = page faults on CPU)
        win_h = height if tile_h == height else min(height, tile_h + 2 * p)
        win_w = width if tile_w == width else min(width, tile_w + 2 * p)
        size = group * win_h * win_w * n_keys
        buffers = (q.new_empty(size), q.new_empty(size))

    def take(which: int, shape: tuple[int, ...]) -> torch.Tensor:
        if buffers is None:
            return q.new_empty(shape)
        return buffers[which][: math.prod(shape)].view(shape)

    for b0 in range(0, batch, group):
        b1 = min(batch, b0 + group)
        nb = b1 - b0
        for r0, r1, hr0, hr1 in _tile_windows(height, tile_h, p):
            for c0, c1, hc0, hc1 in _tile_windows(width, tile_w, p):
                hh, hw, th, tw = hr1 - hr0, hc1 - hc0, r1 - r0, c1 - c0
                # pixel scores of the tile and its halo: (nb, hh, hw, Hs, Ws)
                q_win = q[b0:b1, :, hr0:hr1, hc0:hc1].reshape(nb, c_key, hh * hw).transpose(1, 2)
                if buffers is None:
                    scores = torch.bmm(q_win, e_flat[b0:b1])
                else:
                    scores = torch.bmm(q_win, e_flat[b0:b1], out=take(0, (nb, hh * hw, n_keys)))
                scores = scores.view(nb, hh, hw, key_h, key_w)
                # patch scores of the tile: band sums over rows, then columns
                rows_summed = _band_sum(scores, hr0, take(1, (nb, th, hw, key_h, key_w)), r0, 1, 3, p)
                patch = _band_sum(rows_summed, hc0, take(0, (nb, th, tw, key_h, key_w)), c0, 2, 4, p)
                patch.mul_(col_scale[b0:b1])
                flat = patch.view(nb, th * tw, n_keys)
                if buffers is None:
                    attn = torch.softmax(flat, dim=-1)  # subtracts the row max: safe in float32
                else:
                    attn = torch.softmax(flat, dim=-1, out=take(1, (nb, th * tw, n_keys)))
                attn = attn.view(nb, th, tw, key_h, key_w)
                # the fold: band sums of A (the band is its own adjoint) onto tile + halo ...
                cols_spread = _band_sum(attn, c0, take(0, (nb, th, hw, key_h, key_w)), hc0, 2, 4, p)
                weights = _band_sum(cols_spread, r0, take(1, (nb, hh, hw, key_h, key_w)), hr0, 1, 3, p)
                # ... then one product with the values, accumulated into the output window
                contrib = torch.bmm(v_flat[b0:b1], weights.view(nb, hh * hw, n_keys).transpose(1, 2))
                out[b0:b1, :, hr0:hr1, hc0:hc1] += contrib.view(nb, c_val, hh, hw)
    return out


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
    `attention_mode` picks the implementation ("fast" or "direct"); `max_chunk_elements`
    bounds the fast form's working buffers (None: DEFAULT_CHUNK_ELEMENTS).
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
        self.attention_mode = "fast"
        self.max_chunk_elements: int | None = None
        self.enlarge = ConvPReLU(n_feats, n_feats, 3, padding=patch_size // 2)
        self.query = ConvPReLU(n_feats, n_feats // 2, 1)
        self.key = ConvPReLU(n_feats, n_feats // 2, 1)
        self.value = ConvPReLU(n_feats, n_feats, 1)

    def attend(self, q: torch.Tensor, e: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.attention_mode == "fast":
            return patch_attention(q, e, v, self.patch_size, self.softmax_scale, self.eps,
                                   self.max_chunk_elements)
        if self.attention_mode == "direct":
            return direct_patch_attention(q, e, v, self.patch_size, self.softmax_scale, self.eps)
        raise ValueError(f"attention_mode {self.attention_mode!r} is not one of {ATTENTION_MODES}")

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
                        max_chunk_elements: int | None | type(...) = ...) -> int:
    """Set the attention form and/or chunk budget of every MSNLAB branch inside `module`.

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
            count += 1
    return count
