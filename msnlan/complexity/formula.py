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
* fast form (msnlan.models.msnlab.patch_attention): a patch score is a sum over the k^2 patch
  offsets of pixel scores, so a (queries x Cq) by (Cq x L) pixel-score product plus diagonal band
  sums (additions) replaces the first product, and a (C x L) by (L x queries) product with the
  band-summed softmax replaces the second: k^2 fewer MACs. Large images are processed in query
  tiles (msnlan.models.msnlab.plan_chunks); a tile's pixel scores and its aggregation cover the
  tile plus a k//2-pixel halo, so as executed the two products cost
  (sum of halo-inclusive tile areas) * L * (Cq + C); with one tile that is N*L*(Cq + C).
  The key-patch norms are a k x k all-ones convolution of the channel energy: k^2*L MACs.
  Band sums, softmax and the norms' square roots are additions or elementwise work, not MACs
  (reported separately as element counts).
* the block: the branches, then a 1x1 fusion conv (n_branches*C -> C over N) and channel
  attention (two 1x1 convs on a 1x1 map after average pooling).
"""
from __future__ import annotations

import inspect
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


def _axis_window_sum(size: int, tile: int, p: int) -> int:
    """Sum over the tiles along one axis of the tile's length plus its p-pixel halo (clipped)."""
    return sum(min(size, start + tile + p) - max(0, start - p) for start in range(0, size, tile))


#: chunk budget meaning "the whole image as one query tile" (the fast form without halo work)
UNTILED = "untiled"


def tiling(b: BranchShape, batch: int = 1, budget=None, device_type: str = "cpu") -> tuple[int, int, int]:
    """(images per group, tile height, tile width) of the fast form for these shapes.

    Asks msnlan.models.msnlab.plan_chunks, so the count follows the implementation's tiling,
    which depends on the device type (on CPU it prefers cache-sized tiles).
    """
    if budget == UNTILED:
        return 1, b.height, b.width
    from ..models.msnlab import DEFAULT_CHUNK_ELEMENTS, plan_chunks

    budget = DEFAULT_CHUNK_ELEMENTS if budget is None else budget
    args = (batch, b.height, b.width, b.n_keys, b.k, budget)
    if "cache_tiles" in inspect.signature(plan_chunks).parameters:
        return plan_chunks(*args, cache_tiles=device_type == "cpu")
    return plan_chunks(*args)


def n_tiles(b: BranchShape, batch: int = 1, budget=None, device_type: str = "cpu") -> int:
    """How many query tiles (loop iterations) the fast form runs for the batch."""
    group, tile_h, tile_w = tiling(b, batch, budget, device_type)
    if (tile_h, tile_w) == (b.height, b.width):
        return -(-batch // group)
    return batch * -(-b.height // tile_h) * -(-b.width // tile_w)


def query_windows(b: BranchShape, batch: int = 1, budget=None, device_type: str = "cpu") -> int:
    """Query positions (halos included) the fast form computes pixel scores for, whole batch.

    Mirrors patch_attention's loop: whole images where a tile is the image, else tiles whose
    p-pixel halo windows (clipped at the border) overlap.
    """
    _, tile_h, tile_w = tiling(b, batch, budget, device_type)
    if (tile_h, tile_w) == (b.height, b.width):
        return batch * b.n_queries
    p = b.k // 2
    return batch * _axis_window_sum(b.height, tile_h, p) * _axis_window_sum(b.width, tile_w, p)


def branch_attention_macs(b: BranchShape, form: str, batch: int = 1, budget=None,
                          device_type: str = "cpu") -> dict:
    """MACs of one branch's attention for a batch: {'scores', 'aggregation'[, 'key_norms']}."""
    n, l, k2 = batch * b.n_queries, b.n_keys, b.k * b.k
    if form == "direct":
        return {"scores": n * l * b.match_channels * k2, "aggregation": n * l * b.channels * k2}
    if form == "fast":
        windows = query_windows(b, batch, budget, device_type)
        return {"scores": windows * l * b.match_channels, "aggregation": windows * l * b.channels,
                "key_norms": batch * k2 * l}
    raise ValueError(f"form must be 'fast' or 'direct', got {form!r}")


def branch_attention_elements(b: BranchShape, form: str, batch: int = 1, budget=None,
                              device_type: str = "cpu") -> dict:
    """Element counts of the attention's non-MAC work (softmax over N x L; band sums in the fast form)."""
    n, l, k = batch * b.n_queries, b.n_keys, b.k
    out = {"softmax": n * l}
    if form == "fast":
        windows = query_windows(b, batch, budget, device_type)
        # separable band sums, k adds per element written: about k*(N + W)*L for the scores
        # (rows then columns) and again for the fold (W = halo-inclusive query windows)
        out["band_sums"] = 2 * k * (n + windows) * l
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
    `device_type`: where the fast form runs ("cpu", "cuda", "meta"): its tiling depends on it.
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
        att_parts[f"k{k}"] = branch_attention_macs(b, form, batch, budget, device_type)
        elements[f"k{k}"] = branch_attention_elements(b, form, batch, budget, device_type)
        if form == "fast":  # how many times the tiles recompute each query's pixel scores
            halo[f"k{k}"] = round(query_windows(b, batch, budget, device_type) / (batch * b.n_queries), 4)
            tiles[f"k{k}"] = n_tiles(b, batch, budget, device_type)
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
