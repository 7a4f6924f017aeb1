"""Closed-form MAC counts of the MSNLAB (multi-scale non-local attention block).

Counted the way fvcore counts: one multiply-accumulate per weight per output position for a
convolution (bias additions not counted), one per (row, column, inner index) for a matrix
product. For one image of H x W pixels, C channels and a branch with patch size k:

* s = conv3x3(x) with zero padding k//2 is Hs x Ws = (H + k - 3) x (W + k - 3);
  N = H*W query positions, L = Hs*Ws key positions; Cq = C // 2 match channels.
* branch convs: enlarge (the authors' down_sample) 9*C*C*L, query (conv_match_1) C*Cq*N,
  key (conv_match_2) C*Cq*L, value (conv_assembly) C*C*L.
* direct form (unfold -> normalise -> bmm/softmax -> bmm -> fold): the scores are an
  (N x Cq*k^2) by (Cq*k^2 x L) product, the aggregation a (C*k^2 x L) by (L x N) product:
  N*L*k^2*(Cq + C) MACs.
* fast form (msnlan.models.attention.patch_attention): a patch score is a sum over the k^2 patch
  offsets of pixel scores, so a pixel-score product of the k//2-padded query window (a tile plus
  a k//2 ring, zero beyond the image) with the k//2-padded keys, plus diagonal sums (additions),
  replaces the first product: (window area) * Lp * Cq MACs, Lp = (Hs + k - 1)(Ws + k - 1). A
  (C x L) by (L x output window) product with the diagonal-summed softmax replaces the second:
  (output window area) * L * C, the output window being the tile plus the k//2 ring clipped to
  the image (the whole image for an untiled image). Tiles follow the implementation's plan
  (msnlan.models.attention.plan_tiles): whole images where they fit the buffer budget.
  The key-patch norms are a k x k all-ones convolution of the channel energy: k^2*L MACs.
  Diagonal sums, softmax and the norms' square roots are additions or elementwise work, not
  MACs (reported separately as element counts).
* the block: the branches, then a 1x1 fusion conv (n_branches*C -> C over N) and channel
  attention (two 1x1 convs on a 1x1 map after average pooling).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BranchShape:
    """Sizes of one branch for one image."""

    k: int
    height: int
    width: int
    channels: int
    match_channels: int

    @property
    def n_queries(self) -> int:
        return self.height * self.width

    @property
    def key_size(self) -> tuple[int, int]:
        grow = 2 * (self.k // 2) - 2  # padding k//2 on a 3x3 kernel: k - 3 for odd k
        return self.height + grow, self.width + grow

    @property
    def n_keys(self) -> int:
        hs, ws = self.key_size
        return hs * ws


@dataclass
class MsnlabMacs:
    """MACs of one MSNLAB for a batch, split into parts (all integers)."""

    convs: int
    attention: int
    attention_parts: dict = field(default_factory=dict)
    conv_parts: dict = field(default_factory=dict)
    elements: dict = field(default_factory=dict)
    halo_factors: dict = field(default_factory=dict)
    tiles: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.convs + self.attention

    def as_dict(self) -> dict:
        return {"total": self.total, "convs": self.convs, "attention": self.attention,
                "conv_parts": self.conv_parts, "attention_parts": self.attention_parts,
                "elementwise_elements": self.elements, "halo_factors": self.halo_factors,
                "tiles": self.tiles}


def branch_conv_macs(b: BranchShape) -> dict:
    """MACs of one branch's four convolutions (bias not counted)."""
    c, cq, n, l = b.channels, b.match_channels, b.n_queries, b.n_keys
    # names as in msnlan.models.msnlab (the authors': down_sample, conv_match_1/2, conv_assembly)
    return {"enlarge": 9 * c * c * l, "query": c * cq * n, "key": c * cq * l, "value": c * c * l}


#: chunk budget meaning "whole images, one per group" (the fast form without tiling)
UNTILED = "untiled"


def fast_tiles(b: BranchShape, batch: int = 1, budget=None) -> tuple:
    """The tiles the fast form runs for the batch (msnlan.models.attention.plan_tiles)."""
    from ..models import attention

    if budget == UNTILED:
        budget = 2 ** 62  # whole images, however large
    elif budget is None:  # resolved here, so that the cache below never holds a stale default
        budget = attention.DEFAULT_CHUNK_ELEMENTS
    return _planned_tiles(b, batch, int(budget))


@functools.lru_cache(maxsize=64)
def _planned_tiles(b: BranchShape, batch: int, budget: int) -> tuple:
    """Cached: one count asks for a branch's tiles several times (a 720p branch has up to tens of
    thousands, and listing them took most of a complexity job's formula time)."""
    from ..models.attention import plan_tiles

    hs, ws = b.key_size
    return tuple(plan_tiles(batch, b.match_channels, b.height, b.width, b.channels, hs, ws, b.k, budget)[1])


def _row_product(b: BranchShape) -> bool:
    from ..models.attention import uses_row_product

    return uses_row_product(b.match_channels, b.k)


def _wide_key_count(b: BranchShape) -> int:
    """Keys per row of the fast form's key-column sums and fold products: whole padded key rows
    from WIDE_COLUMN_SUM_MIN_WINDOW (msnlan.models.attention._key_column_sum), else the keys."""
    from ..models.attention import WIDE_COLUMN_SUM_MIN_WINDOW

    hs, ws = b.key_size
    return hs * (ws + 2 * (b.k // 2)) if b.k >= WIDE_COLUMN_SUM_MIN_WINDOW else b.n_keys


def score_windows(b: BranchShape, batch: int = 1, budget=None) -> int:
    """Query positions (padded ring included) the fast form computes scores for, whole batch: the
    tile and its p-pixel ring, or, where the product sums the query rows itself, the ring's
    columns only."""
    row_product = _row_product(b)
    return sum(t.nb * (t.th if row_product else t.hh) * t.hw for t in fast_tiles(b, batch, budget))


def branch_attention_macs(b: BranchShape, form: str, batch: int = 1, budget=None) -> dict:
    """MACs of one branch's attention for a batch: {'scores', 'aggregation'} (the fast form's
    key-patch norms are window sums, elementwise work: `branch_attention_elements`)."""
    n, l, k2 = batch * b.n_queries, b.n_keys, b.k * b.k
    if form == "direct":
        return {"scores": n * l * b.match_channels * k2, "aggregation": n * l * b.channels * k2}
    if form == "fast":
        p = b.k // 2
        hs, ws = b.key_size
        tiles = fast_tiles(b, batch, budget)
        if _row_product(b):  # k row-shifted copies: a k-times deeper product onto Hs key rows
            scores = score_windows(b, batch, budget) * hs * (ws + 2 * p) * b.match_channels * b.k
        else:
            scores = score_windows(b, batch, budget) * (hs + 2 * p) * (ws + 2 * p) * b.match_channels
        wide_keys = _wide_key_count(b)  # the fold weights' extra columns meet zero values
        return {"scores": scores,
                "aggregation": sum(t.nb * t.oh * t.ow for t in tiles) * wide_keys * b.channels}
    raise ValueError(f"form must be 'fast' or 'direct', got {form!r}")


def branch_attention_elements(b: BranchShape, form: str, batch: int = 1, budget=None) -> dict:
    """Element counts of the attention's non-MAC work (softmax over N x L; the fast form's
    diagonal sums: k elements read per element written, two sums for the scores, two for the fold;
    the key-column sums write whole padded key rows from k = 5, as the implementation does)."""
    n, l, k = batch * b.n_queries, b.n_keys, b.k
    out = {"softmax": n * l}
    if form == "fast":
        p = k // 2
        hs, ws = b.key_size
        wide_keys = _wide_key_count(b)
        score_rows = 0 if _row_product(b) else hs * (ws + 2 * p)  # summed by the product itself
        written = sum(t.nb * (t.th * t.hw * score_rows + t.th * t.tw * wide_keys
                              + t.oh * (t.ow + 2 * p) * hs * (ws + 2 * p) + t.oh * t.ow * wide_keys)
                      for t in fast_tiles(b, batch, budget))
        out["band_sums"] = k * written
        out["key_norms"] = batch * k * k * l  # window sums of the squared keys (an average pool)
    else:
        out["fold"] = n * b.channels * k * k
    return out


def msnlab_macs(height: int, width: int, channels: int, patch_sizes, *, reduction: int = 16,
                match_channels: int | None = None, form: str = "fast", batch: int = 1,
                pool_counted: bool = False, chunk_elements=None, device_type: str = "cpu") -> MsnlabMacs:
    """Closed-form MACs of one MSNLAB on a batch of `batch` maps of height x width.

    `pool_counted`: fvcore counts adaptive_avg_pool2d as one flop per input element; our channel
    attention pools with a plain mean, which it does not count (the default, False).
    `chunk_elements`: the fast form's working-buffer budget (None: the implementation's default;
    UNTILED: one tile per image), or a mapping patch size -> budget where branches differ.
    `device_type`: where the fast form runs ("cpu", "cuda", "meta"); its tiling is the same on
    every device type (kept so that callers can say which device a count refers to).
    """
    if height < 1 or width < 1 or channels < 1:
        raise ValueError(f"sizes must be positive, got {height}x{width} with {channels} channels")
    cq = channels // 2 if match_channels is None else match_channels
    conv_parts: dict = {}
    att_parts: dict = {}
    elements: dict = {}
    halo: dict = {}
    tiles: dict = {}
    for k in patch_sizes:
        b = BranchShape(k, height, width, channels, cq)
        conv_parts[f"k{k}"] = {n: batch * v for n, v in branch_conv_macs(b).items()}
        budget = chunk_elements.get(k) if isinstance(chunk_elements, dict) else chunk_elements
        att_parts[f"k{k}"] = branch_attention_macs(b, form, batch, budget)
        elements[f"k{k}"] = branch_attention_elements(b, form, batch, budget)
        if form == "fast":  # pixel scores computed per query (the padded ring and tile overlaps)
            halo[f"k{k}"] = round(score_windows(b, batch, budget) / (batch * b.n_queries), 4)
            tiles[f"k{k}"] = len(fast_tiles(b, batch, budget))
    hidden = max(channels // reduction, 1)
    n = height * width
    conv_parts["fusion"] = batch * len(patch_sizes) * channels * channels * n
    conv_parts["channel_attention"] = batch * 2 * channels * hidden
    if pool_counted:  # fvcore's adaptive_avg_pool2d handle: one per input element
        conv_parts["channel_attention_pool"] = batch * channels * n
    convs = sum(sum(v.values()) if isinstance(v, dict) else v for v in conv_parts.values())
    attention = sum(sum(v.values()) for v in att_parts.values())
    return MsnlabMacs(convs=convs, attention=attention, attention_parts=att_parts,
                      conv_parts=conv_parts, elements=elements, halo_factors=halo, tiles=tiles)
