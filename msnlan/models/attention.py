"""Patch attention of one MSNLAB branch: the fast band-sum form, the direct form, and the choice.

One branch with patch size k (p = k // 2) attends from the k x k patches of q (H x W, N = HW
queries) to the L2-normalised k x k patches of e and pastes back the k x k patches of v (both
Hs x Ws, L = HsWs keys), as in Wu et al., "Multi-scale non-local attention network for image
super-resolution" (Signal Processing 2023).

* `direct_patch_attention`: the textbook form, y = fold(V softmax(10 K^T Q)) with unfolded
  patches, batched. It holds B x L x N scores and k^2-times larger products.
* `patch_attention`: the same numbers without the k^2 factor, in bounded memory. A patch score
  is a sum of pixel scores along a diagonal,
      P(i, j) = sum_{d in [-p, p]^2} S(i + d, j + d),   S(i, j) = <q(i), e(j)>,
  zero outside the grids. With q and e zero-padded by p, one C/2-deep product gives S on the
  padded grids (zeros in the border for free), and each axis's diagonal sum is ONE reduction
  over a strided view (`_diagonal_sum`): no shifted slice-adds, no zero-filling. Where the
  channels are few (C/2 k <= ROW_PRODUCT_MAX_DEPTH, e.g. the demo network), the sum along the
  query rows comes out of the product instead: k row-shifted copies of q and e make it k times
  deeper (`_row_summed_product`). The fold is the adjoint of the same structure, so it is the
  same kind of sum over the padded softmax.
  The backward pass is written out (`_PatchAttention`): its band sums are again diagonal sums
  and its buffers are reused, so autograd never builds full-size zero tensors.
* `resolve_attention_form`: what `attention_mode: auto` runs on a device (a measured rule).

Subnormal floats: scores far below their row's maximum give softmax weights in float32's
subnormal range, and every later pass over them runs many times slower on CPUs. Logits more
than SCORE_FLOOR below their row's maximum are raised to it before the softmax, in both forms:
each raised weight grows by less than e^-30 (9.4e-14) relative to the row's largest weight, so a
row's weights move by at most 2 L e^-30 in total, and an output pixel, which gathers k^2 rows, by
at most 2 k^2 L e^-30 max|v| (worst case, every key floored: 2e-8 max|v| for a 48 x 48 training
patch at k = 7, 2e-6 max|v| at a 720p image's L = 230,400; tests/test_msnlab.py checks it). The
gradient treats the floor as the identity (the true gradient of those entries is equally small).
With the floor the smallest weight, e^-30 / L, stays a normal float, and so do its products with
gradients.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterable

import torch
import torch.nn.functional as F

from ..attention_modes import ATTENTION_FORMS, ATTENTION_MODES  # noqa: F401

#: upper bound on the elements of one working buffer: 2**26 float32 = 256 MiB; the fast form
#: uses three such buffers forward (up to six in the backward pass)
DEFAULT_CHUNK_ELEMENTS = 2 ** 26
#: with autograd, the scaled scores, padded softmax and fold weights of every tile are kept for the
#: backward pass while they total at most this many elements (2 GiB of float32 per call); beyond it the
#: backward pass recomputes them tile by tile, so memory stays bounded at any size
MAX_SAVED_ELEMENTS = 2 ** 29
#: the authors' clamp of the key-patch norm ("escape_NaN")
NORM_EPS = 1e-4
#: diagonal sums along the key columns with outputs up to this many elements (4 MiB of float32:
#: cache-sized) use adds
SMALL_SUM_ELEMENTS = 2 ** 20
#: logits below (row max - SCORE_FLOOR) are raised to it (see the module docstring)
SCORE_FLOOR = 30.0
#: a product summed along the query rows (the scores; in the backward pass the gradient of the
#: fold weights) comes out of the product itself where channels x k is at most this
#: (`_row_operand`); deeper products cost more than the sums they save
ROW_PRODUCT_MAX_DEPTH = 80
#: key-column sums of the scores and their gradient with windows from this size run over whole
#: source rows (`_key_column_sum`)
WIDE_COLUMN_SUM_MIN_WINDOW = 5



# --------------------------------------------------------------------------- checks


def check_inputs(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int) -> None:
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


def floored_softmax(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax with logits below (max - SCORE_FLOOR) raised to it (differentiable; direct form)."""
    floor = logits.detach().amax(dim, keepdim=True) - SCORE_FLOOR
    return torch.softmax(torch.maximum(logits, floor), dim)


# --------------------------------------------------------------------------- direct form


def direct_patch_attention(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int,
                           softmax_scale: float = 10.0, eps: float = NORM_EPS) -> torch.Tensor:
    """Reference form, the whole batch at once: y = fold(V softmax_L(scale K^T Q)) with K's
    columns L2-normalised (norm clamped at `eps`). Holds B x L x N scores."""
    check_inputs(q, e, v, patch_size)
    k, p = patch_size, patch_size // 2
    queries = F.unfold(q, k, padding=p)  # (B, C' k^2, N)
    keys = F.unfold(e, k, padding=p)  # (B, C' k^2, L)
    keys = keys / keys.norm(dim=1, keepdim=True).clamp_min(eps)
    values = F.unfold(v, k, padding=p)  # (B, C k^2, L)
    attn = floored_softmax(softmax_scale * torch.bmm(keys.transpose(1, 2), queries), dim=1)  # (B, L, N)
    return F.fold(torch.bmm(values, attn), q.shape[2:], k, padding=p)


def direct_attention_bytes(height: int, width: int, n_feats: int, patch_size: int,
                           element_size: int = 4, batch: int = 1) -> int:
    """Approximate peak working memory of `direct_patch_attention` (the L x N scores and their
    softmax, plus the unfolded products); used to decide where the direct form can run."""
    p = patch_size // 2
    n = height * width
    l_keys = (height + 2 * p - 2) * (width + 2 * p - 2)
    k2 = patch_size * patch_size
    per_image = 2 * n * l_keys + n_feats * k2 * (n + l_keys) + n_feats // 2 * k2 * (n + l_keys)
    return element_size * batch * per_image


# --------------------------------------------------------------------------- the choice


def resolve_attention_form(mode: str, device: torch.device | str) -> str:
    """The form that `mode` runs on `device`: "fast" or "direct".

    `auto` picks the fast form on every device type, as measured:
    * CPU (benchmarks/train_throughput.py, benchmarks/msnlab.py): faster than the batched direct
      form at every size measured, per branch 1.6-7.3x in training and 1.1-6.5x in inference
      (16 x 16 demo patches up to 64 x 64 maps; the gap grows with k and the map size). Whole
      steps on two threads (2026-12-01): the paper model's training step (x2, batch 2 of 48 x 48)
      2.17x, the demo network's (batch 8 of 16 x 16) 1.82x; the paper model's forward pass at
      64 x 64, 2.2x; one MSNLAB at 64 x 64, 4.5-5.0x.
    * CUDA (an H200, benchmarks/gpu_check.sh, two sessions' runs): the paper model's training step
      at batch 16 was 1.50-1.74x faster than with the direct form in fp32 (48 x 48 and 64 x 64
      patches, both memory formats); under bf16 autocast 1.02-1.11x at 48 x 48 but 0.86-0.89x at
      64 x 64, the one measured case where the direct form was faster (and it held twice the
      memory: 16 against 8 GB). One MSNLAB's forward pass: 4.5-6.0x faster at 64 x 64 maps,
      1.7-3.4x at 128 x 128, and at 256 x 256 1.9x in fp32 but 0.59x under bf16, where the
      direct form needed 52 GB against the fast form's 0.9 GB.
    The fast form needs about C/2 + C MACs per (query, key) pair against (C/2 + C) k^2 for the
    direct one (83x fewer summed over k = 3, 5, 7) and bounded memory.
    """
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode {mode!r} is not one of {ATTENTION_MODES}")
    if mode != "auto":
        return mode
    return "fast"


# --------------------------------------------------------------------------- buffers


class _BufferPool:
    """Flat CPU buffers kept between calls.

    Fresh large allocations cost page faults on every call (measured 1-2 GB/s against 10 GB/s
    for writing into a buffer that is already mapped), which made allocation a large share of the
    band sums' time. Buffers that must have a zero border remember the layout whose border
    they hold, so they are zeroed only when the layout changes. GPUs have torch's caching
    allocator: there nothing is pooled. Nor while torch.jit traces (the complexity count): there
    shapes, and so the layout tags, are traced tensors, whose comparison reads a value back.
    """

    def __init__(self, max_bytes: int = 2 ** 30) -> None:
        self.max_bytes = max_bytes
        self._free: list[tuple[torch.Tensor, object]] = []
        self._lock = threading.Lock()

    def take(self, numel: int, like: torch.Tensor, tag: object = None) -> tuple[torch.Tensor, object]:
        """A flat buffer of at least `numel` elements of like's dtype and device, and its layout tag.

        Training repeats the same requests every step, and each should get back the buffer it had,
        so that no zero border is written twice. A scratch request (no tag) takes only an untagged
        buffer, exactly its size first, else a new one: had it spent a zero-bordered buffer, the
        next request for that layout would have to zero another (the demo network's k = 7 softmax
        buffer was re-zeroed every training step, 1 ms, when scratch requests took tagged buffers).
        A tagged request takes one with its tag first, then one of exactly its size, then the
        smallest that fits, untagged before tagged (evaluation, whose tile layouts change from
        image to image, zeroes a border rather than map fresh memory)."""
        if like.device.type == "cpu" and not torch.jit.is_tracing():
            with self._lock:
                def preference(t: torch.Tensor, t_tag: object) -> tuple:
                    tag_rank = 0 if tag is not None and t_tag == tag else 1 if t_tag is None else 2
                    return (tag_rank != 0, t.numel() != numel, tag_rank, t.numel())

                fits = [(preference(t, t_tag), i) for i, (t, t_tag) in enumerate(self._free)
                        if t.dtype == like.dtype and t.numel() >= numel and (tag is not None or t_tag is None)]
                if fits:
                    return self._free.pop(min(fits)[1])
        with torch.inference_mode(False):  # a buffer made under inference_mode could not serve training later
            return like.new_empty(max(numel, 1)), None

    def give(self, buffer: torch.Tensor, tag: object = None) -> None:
        if buffer.device.type != "cpu" or torch.jit.is_tracing():
            return
        with self._lock:
            self._free.append((buffer, tag))
            while sum(t.numel() * t.element_size() for t, _ in self._free) > self.max_bytes:
                self._free.pop(0)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


POOL = _BufferPool()


class _Workspace:
    """Named flat buffers for one call, sized up front (`sizes`: name -> elements) so that a
    view handed out stays valid for the whole call.

    `view(name, shape)` reinterprets the start of a buffer; `padded(name, shape, interior)` is a
    buffer whose elements outside `interior` (a tuple of slices) are zero.
    """

    def __init__(self, like: torch.Tensor, sizes: dict[str, int]) -> None:
        self.like = like
        self.sizes = sizes
        self.buffers: dict[str, torch.Tensor] = {}
        self.tags: dict[str, object] = {}

    def _flat(self, name: str, shape: tuple[int, ...], tag: object = None) -> torch.Tensor:
        numel = math.prod(shape)
        if numel > self.sizes[name]:
            raise AssertionError(f"workspace buffer {name!r} sized {self.sizes[name]}, asked for {numel}")
        if name not in self.buffers:
            self.buffers[name], self.tags[name] = POOL.take(self.sizes[name], self.like, tag)
        return self.buffers[name][:numel].view(shape)

    def view(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        out = self._flat(name, shape)
        self.tags[name] = None  # any contents from now on
        return out

    def view_zero_slack(self, name: str, shape: tuple[int, ...], slack: int) -> torch.Tensor:
        """`view`, with the `slack` elements after it zeroed (read, but discarded, by a wide
        key-column sum: they must be finite)."""
        numel = math.prod(shape)
        self._flat(name, (numel + slack,))[numel:].zero_()
        return self.view(name, shape)

    def padded(self, name: str, shape: tuple[int, ...], interior: tuple[slice, ...]) -> torch.Tensor:
        layout = (shape, tuple((s.start, s.stop) for s in interior))
        out = self._flat(name, shape, layout)
        if self.tags.get(name) != layout:
            out.zero_()
            self.tags[name] = layout
        return out

    def release(self) -> None:
        for name, buf in self.buffers.items():
            POOL.give(buf, self.tags.get(name))
        self.buffers.clear()


# --------------------------------------------------------------------------- fast form


def _diagonal_sum(src: torch.Tensor, out: torch.Tensor, q_axis: int, k_axis: int, window: int) -> torch.Tensor:
    """out[.., i, .., j, ..] = sum_{d < window} src[.., i + d, .., j + d, ..] along (q_axis, k_axis).

    One reduction over a strided view of src (the window axis steps both indices at once);
    src must be at least out's size plus window - 1 along both axes.
    """
    stride = src.stride()
    view = src.as_strided(tuple(out.shape) + (window,), stride + (stride[q_axis] + stride[k_axis],),
                          src.storage_offset())
    if window == 1:
        return out.copy_(view[..., 0])
    # The reduction reads each element once but is fast only where the output's key columns run
    # on into the next key row in the source as well (the sum along the query rows): there it
    # beats k - 1 adds from k = 5 at every size (measured 1.2-1.6x on one CPU thread, 2.1 vs 3.2 ms
    # at k = 7 on a batch of 8 16 x 16 training patches). Along the key columns the runs are one
    # key row short, and adds win while the output stays in cache (up to 4x), the reduction beyond.
    coalesced = k_axis != out.dim() - 1 or out.shape[k_axis] == src.shape[k_axis]  # wide: see _key_column_sum
    if window == 3 or (out.numel() <= SMALL_SUM_ELEMENTS and not coalesced):
        torch.add(view[..., 0], view[..., 1], out=out)
        for d in range(2, window):
            out.add_(view[..., d])
        return out
    return torch.sum(view, dim=-1, out=out)


def _key_column_sum(rows: torch.Tensor, ws: "_Workspace", name: str, window: int,
                    keep_wide: bool = False) -> torch.Tensor:
    """The diagonal sum along (query columns, key columns) of rows (nb, R, hw, Hk, Wk + window - 1),
    written into ws[name]: a (nb, R, hw - window + 1, Hk, Wk) tensor, not always contiguous; with
    `keep_wide`, the contiguous tensor as written, whose last axis is Wk + window - 1 from
    WIDE_COLUMN_SUM_MIN_WINDOW (_Geometry.key_ww): the columns beyond Wk are meaningless, finite
    where the caller zeroed the slack, and a product with zero-extended keys discards them
    (`_wide_keys`).

    From WIDE_COLUMN_SUM_MIN_WINDOW the sum is written over whole source rows of Wk + window - 1
    columns (the last window - 1 of each row are discarded): the output's rows then continue into
    each other as the source's do, and one reduction runs over long contiguous stretches (measured
    on one CPU thread, with the scale multiply that follows, 1.73 against 2.30 ms at k = 7 and 1.06
    against 1.41 ms at k = 5 on a batch of 8 16 x 16 training patches; 41 against 65 ms at k = 7 on
    a 64 x 64 map). A discarded column reads past its row, the last one up to window - 1 elements
    past `rows`, whose buffer holds that slack (`_workspace_sizes`). Below that window, adds into a
    compact output are faster (0.55 against 0.68 ms at k = 3). The fold weights' sum kept wide:
    14 against 27 ms at k = 5, 18 against 22 ms at k = 7, on one 60 x 48 validation image.
    """
    nb, r, hw, key_h, src_w = rows.shape
    tw, key_w = hw - window + 1, src_w - window + 1
    if window < WIDE_COLUMN_SUM_MIN_WINDOW:
        return _diagonal_sum(rows, ws.view(name, (nb, r, tw, key_h, key_w)), 2, 4, window)
    wide = _diagonal_sum(rows, ws.view(name, (nb, r, tw, key_h, src_w)), 2, 4, window)
    return wide if keep_wide else wide[..., :key_w]


def uses_row_product(channels: int, patch_size: int) -> bool:
    """Whether a product over `channels` also sums along the query rows (`_row_operand`)."""
    return patch_size > 1 and channels * patch_size <= ROW_PRODUCT_MAX_DEPTH


class _Geometry:
    """Sizes of one call: batch, query grid H x W, key grid Hs x Ws, channels, patch half-width p."""

    def __init__(self, batch: int, c_key: int, height: int, width: int, c_val: int, key_h: int, key_w: int,
                 patch_size: int) -> None:
        self.batch, self.c_key, self.height, self.width = batch, c_key, height, width
        self.c_val, self.key_h, self.key_w = c_val, key_h, key_w
        self.k, self.p = patch_size, patch_size // 2
        self.n_keys = self.key_h * self.key_w
        self.key_hp, self.key_wp = self.key_h + 2 * self.p, self.key_w + 2 * self.p
        self.n_keys_padded = self.key_hp * self.key_wp
        self.row_product = uses_row_product(c_key, patch_size)  # the scores (queries . keys)
        self.row_product_values = uses_row_product(c_val, patch_size)  # output gradient . values
        # fold weights and their gradient span whole padded key rows from WIDE_COLUMN_SUM_MIN_WINDOW
        self.key_ww = self.key_wp if patch_size >= WIDE_COLUMN_SUM_MIN_WINDOW else self.key_w
        self.n_keys_wide = self.key_h * self.key_ww

    @classmethod
    def of(cls, q: torch.Tensor, v: torch.Tensor, patch_size: int) -> "_Geometry":
        return cls(*q.shape, *v.shape[1:], patch_size)


class _Tile:
    """A group of images (b0:b1) and a rectangle of queries (r0:r1, c0:c1) with its windows.

    * score window: the tile plus a p-pixel ring, in padded-query coordinates rows r0 : r1 + 2p;
    * output window: the image pixels the tile's pasted patches reach, rows o0:o1, i.e. the
      tile plus a p-pixel ring clipped to the image; its queries are also where the backward
      pass has query gradients.
    * the padded softmax (and the padded score gradient) holds the tile's values at row offset
      `row_off` = p + min(p, r0) in a buffer of oh + 2p rows (columns likewise) and p in keys.
    """

    def __init__(self, g: _Geometry, b0: int, b1: int, r0: int, r1: int, c0: int, c1: int) -> None:
        p = g.p
        self.b0, self.b1, self.nb = b0, b1, b1 - b0
        self.r0, self.r1, self.c0, self.c1 = r0, r1, c0, c1
        self.th, self.tw = r1 - r0, c1 - c0
        self.hh, self.hw = self.th + 2 * p, self.tw + 2 * p
        self.o0, self.o1 = max(0, r0 - p), min(g.height, r1 + p)
        self.oc0, self.oc1 = max(0, c0 - p), min(g.width, c1 + p)
        self.oh, self.ow = self.o1 - self.o0, self.oc1 - self.oc0
        self.row_off, self.col_off = p + min(p, r0), p + min(p, c0)
        self.padded_shape = (self.nb, self.oh + 2 * p, self.ow + 2 * p, g.key_hp, g.key_wp)
        self.interior = (slice(None), slice(self.row_off, self.row_off + self.th),
                         slice(self.col_off, self.col_off + self.tw), slice(p, p + g.key_h), slice(p, p + g.key_w))


def _workspace_sizes(g: _Geometry, tiles: Iterable[_Tile]) -> dict[str, int]:
    """Elements each named buffer needs over these tiles, forward and backward:
    x, y: scratch (scores, band-sum rows, softmax, fold weights and their gradients);
    z: scaled scores; w: their gradient; a, g: zero-bordered softmax and score gradient."""
    sizes = dict.fromkeys("xyzwag", 1)
    for t in tiles:
        nb, p = t.nb, g.p
        window = nb * t.hh * t.hw * g.n_keys_padded
        scores = nb * t.th * t.tw * g.n_keys
        out_rows = nb * t.oh * (t.ow + 2 * p) * g.key_h * g.key_wp + g.k  # + the wide sum's slack
        out_window = nb * t.oh * t.ow * g.n_keys_wide
        padded = math.prod(t.padded_shape)
        # y holds the rows that _key_column_sum reads up to k - 1 elements past
        need = {"x": max(window, scores, out_rows), "y": max(nb * t.th * t.hw * g.key_h * g.key_wp + g.k, scores, out_window),
                "z": scores, "w": max(scores, out_window), "a": padded, "g": padded}
        for name, n in need.items():
            sizes[name] = max(sizes[name], n)
    return sizes


def tile_elements(batch: int, height: int, width: int, tile_h: int, tile_w: int, n_keys_padded: int,
                  patch_size: int) -> int:
    """Elements of the largest working buffer for tiles of tile_h x tile_w (the padded softmax)."""
    p = patch_size // 2
    return batch * (min(height, tile_h + 2 * p) + 2 * p) * (min(width, tile_w + 2 * p) + 2 * p) * n_keys_padded


def plan_chunks(batch: int, height: int, width: int, n_keys_padded: int, patch_size: int,
                max_elements: int) -> tuple[int, int, int]:
    """(images per group, tile height, tile width) of the fast form within `max_elements` per buffer.

    Whole images where they fit (as many per group as fit: fewer, larger operations); else the
    tile shape with the least redundant work (score windows overlap by 2p pixels), preferring
    full-width tiles on ties. A 1 x 1 tile is the floor, even above the budget.
    """
    per_image = tile_elements(1, height, width, height, width, n_keys_padded, patch_size)
    if per_image <= max_elements:
        return max(1, min(batch, max_elements // per_image)), height, width
    p = patch_size // 2
    best: tuple[float, int, int, int] | None = None  # (cost, -tile_w, tile_h, tile_w)
    for tile_w in range(1, width + 1):
        per_row = tile_elements(1, height, width, 1, tile_w, n_keys_padded, patch_size)
        if per_row > max_elements:
            break
        lo, hi = 1, height  # the tallest tile that fits (elements grow with the height)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if tile_elements(1, height, width, mid, tile_w, n_keys_padded, patch_size) <= max_elements:
                lo = mid
            else:
                hi = mid - 1
        tile_h = lo
        windows = math.ceil(height / tile_h) * math.ceil(width / tile_w) * (tile_h + 2 * p) * (tile_w + 2 * p)
        cand = (windows / (height * width), -tile_w, tile_h, tile_w)
        if best is None or cand < best:
            best = cand
    if best is None:
        return 1, 1, 1
    return 1, best[2], best[3]


def plan_tiles(batch: int, c_key: int, height: int, width: int, c_val: int, key_h: int, key_w: int,
               patch_size: int, max_elements: int | None = None) -> tuple[_Geometry, list[_Tile]]:
    """The geometry and the tiles the fast form runs for these shapes (None: the default budget);
    the complexity formula counts the products over exactly these."""
    g = _Geometry(batch, c_key, height, width, c_val, key_h, key_w, patch_size)
    budget = DEFAULT_CHUNK_ELEMENTS if max_elements is None else max_elements
    return g, list(_tiles(g, *plan_chunks(batch, height, width, g.n_keys_padded, patch_size, budget)))


def _tiles(g: _Geometry, group: int, tile_h: int, tile_w: int) -> Iterable[_Tile]:
    for b0 in range(0, g.batch, group):
        for r0 in range(0, g.height, tile_h):
            for c0 in range(0, g.width, tile_w):
                yield _Tile(g, b0, min(g.batch, b0 + group), r0, min(g.height, r0 + tile_h),
                            c0, min(g.width, c0 + tile_w))


def _scores_window(t: _Tile, padded: torch.Tensor) -> torch.Tensor:
    """The tile's score window of a p-padded map (queries, or output gradients): (nb, C, hh * hw)."""
    window = padded[t.b0:t.b1, :, t.r0:t.r0 + t.hh, t.c0:t.c0 + t.hw]
    return window.reshape(t.nb, padded.shape[1], t.hh * t.hw)


def _row_operand(g: _Geometry, x: torch.Tensor, row_product: bool) -> torch.Tensor:
    """The right operand of a row-summed product (`_row_summed_product`) from x (B, C, Hs, Ws), the
    keys or the values: x zero-padded, (B, C, Hkp * Wkp); or, with `row_product`, its k row-shifted
    copies stacked, (B, k C, Hs * Wkp), whose product with the left side's row-shifted copies
    (`_row_stacked_window`) is the product already summed along the query rows. Measured on one
    CPU thread against product + row sum, C = 8: 0.30 against 0.76 ms (k = 3), 0.77 / 1.54
    (k = 5), 1.35 / 2.33 (k = 7) on a batch of 8 16 x 16 training patches, 3.9 / 12.9, 9.7 / 25.5,
    25 / 37 ms on two 48 x 48 maps; C = 16 at 48 x 48: 12.5 / 15.7 (k = 3), 27 / 37 ms (k = 7), but
    at 16 x 16 k = 7 (depth 112) 3.2 / 2.4 ms; C = 32 (the paper model's keys, depth 96 and more)
    3-19% slower at 48 x 48 and 64 x 64."""
    x_pad = _padded(g, x)
    if not row_product:
        return x_pad.reshape(g.batch, x.shape[1], g.n_keys_padded)
    return torch.stack([x_pad[:, :, d:d + g.key_h] for d in range(g.k)], 1).reshape(
        g.batch, g.k * x.shape[1], g.key_h * g.key_wp)


def _row_stacked_window(g: _Geometry, t: _Tile, padded: torch.Tensor) -> torch.Tensor:
    """The tile's rows of a p-padded map in k row-shifted copies, (nb, k C, th * hw)."""
    rows = [padded[t.b0:t.b1, :, t.r0 + d:t.r0 + d + t.th, t.c0:t.c0 + t.hw] for d in range(g.k)]
    return torch.stack(rows, 1).reshape(t.nb, g.k * padded.shape[1], t.th * t.hw)


def _row_summed_product(g: _Geometry, t: _Tile, padded: torch.Tensor, operand: torch.Tensor, row_product: bool,
                        ws: _Workspace) -> torch.Tensor:
    """R(i, j) = sum_d S(i + d row, j + d row), S the product of the tile's score window of
    `padded` (queries, or output gradients) with `operand` (`_row_operand`) over channels:
    (nb, th, hw, Hs, Wkp) in ws["y"] (ws["x"] holds the product where band sums follow)."""
    nb = t.nb
    rows = ws.view("y", (nb, t.th, t.hw, g.key_h, g.key_wp))
    if row_product:
        torch.bmm(_row_stacked_window(g, t, padded).transpose(1, 2), operand[t.b0:t.b1],
                  out=rows.view(nb, t.th * t.hw, g.key_h * g.key_wp))
    else:
        product = ws.view("x", (nb, t.hh * t.hw, g.n_keys_padded))
        torch.bmm(_scores_window(t, padded).transpose(1, 2), operand[t.b0:t.b1], out=product)
        _diagonal_sum(product.view(nb, t.hh, t.hw, g.key_hp, g.key_wp), rows, 1, 3, g.k)
    return rows


def _softmax_products(g: _Geometry, t: _Tile, q_pad: torch.Tensor, keys: torch.Tensor, col_scale: torch.Tensor,
                      ws: _Workspace, z: torch.Tensor, a_pad: torch.Tensor) -> None:
    """Fill z with the tile's scaled patch scores and a_pad's interior with their floored softmax.

    keys: `_row_operand` of the keys; z: (nb, th, tw, Hs, Ws), in its own buffer or in ws["y"];
    a_pad: zero-bordered (t.padded_shape). Uses ws buffers "x", "y".
    """
    nb, k = t.nb, g.k
    rows = _row_summed_product(g, t, q_pad, keys, g.row_product, ws)
    torch.mul(_key_column_sum(rows, ws, "x", k), col_scale[t.b0:t.b1], out=z)  # the rows are spent
    flat = z.view(nb, t.th * t.tw, g.n_keys)
    attn = ws.view("y", flat.shape)
    torch.clamp(flat, min=flat.amax(-1, keepdim=True) - SCORE_FLOOR, out=attn)
    torch.softmax(attn, -1, out=attn)  # row by row: in place is safe
    a_pad[t.interior].copy_(attn.view(z.shape))


def _band_summed_window(g: _Geometry, t: _Tile, padded: torch.Tensor, ws: _Workspace, dest: _Workspace,
                        name: str) -> torch.Tensor:
    """Both diagonal sums of a zero-bordered (t.padded_shape) buffer onto the output window,
    (nb, oh * ow, Hs * key_ww) in dest[name], over wide key rows (`_key_column_sum`, `_wide_keys`);
    ws["x"] holds the row sums. Of the padded softmax: the fold weights
    W(a, b) = sum_d A(a - d, b - d); of the padded score gradient: its adjoint band sum."""
    nb, k = t.nb, g.k
    rows = ws.view_zero_slack("x", (nb, t.oh, t.ow + 2 * g.p, g.key_h, g.key_wp), k)
    _diagonal_sum(padded, rows, 1, 3, k)
    return _key_column_sum(rows, dest, name, k, keep_wide=True).view(nb, t.oh * t.ow, g.n_keys_wide)


def _wide_keys(g: _Geometry, x: torch.Tensor) -> torch.Tensor:
    """A key map (B, C, Hs, Ws) with zero columns appended to key_ww: (B, C, Hs * key_ww), the
    operand of products with wide fold weights (their extra columns multiply zeros)."""
    return F.pad(x, (0, g.key_ww - g.key_w)).reshape(x.shape[0], x.shape[1], g.n_keys_wide)


def _narrow_keys(g: _Geometry, x: torch.Tensor) -> torch.Tensor:
    """(B, C, Hs * key_ww) -> the key map (B, C, Hs, Ws) (a view)."""
    return x.view(x.shape[0], x.shape[1], g.key_h, g.key_ww)[..., :g.key_w]


def _padded(g: _Geometry, x: torch.Tensor) -> torch.Tensor:
    """x zero-padded by p on each side of its two spatial axes."""
    return F.pad(x, (g.p, g.p, g.p, g.p))


def _forward(g: _Geometry, plan: tuple[int, int, int], q, e, v, col_scale, save: bool):
    """The fast form's forward pass: (output, per tile a Workspace holding z, a_pad and the fold
    weights "w" for the backward pass, or None). col_scale: (B, Hs, Ws)."""
    q_pad = _padded(g, q)
    keys = _row_operand(g, e, g.row_product)
    v_wide = _wide_keys(g, v)
    col_scale = col_scale.view(g.batch, 1, 1, g.key_h, g.key_w)
    out = q_pad.new_zeros(g.batch, g.c_val, g.height, g.width)
    ws = _Workspace(q_pad, _workspace_sizes(g, _tiles(g, *plan)))
    saved = []
    try:
        for t in _tiles(g, *plan):
            z_shape = (t.nb, t.th, t.tw, g.key_h, g.key_w)
            if save:  # kept for the backward pass: buffers of their own, one Workspace per tile
                keep = _Workspace(q_pad, _workspace_sizes(g, [t]))
                z, a_pad = keep.view("z", z_shape), keep.padded("a", t.padded_shape, t.interior)
                saved.append(keep)
            else:  # the rows in "y" are spent once z is written
                z = ws.view("y", z_shape)
                a_pad = ws.padded("a", t.padded_shape, t.interior)
            _softmax_products(g, t, q_pad, keys, col_scale, ws, z, a_pad)
            weights = _band_summed_window(g, t, a_pad, ws, keep if save else ws, "w" if save else "y")
            contrib = torch.bmm(v_wide[t.b0:t.b1], weights.transpose(1, 2))
            out[t.b0:t.b1, :, t.o0:t.o1, t.oc0:t.oc1] += contrib.view(t.nb, g.c_val, t.oh, t.ow)
    finally:
        ws.release()
    return out, (saved if save else None)


def _backward(g: _Geometry, plan, q, e, v, q_pad, keys, col_scale, saved, grad_out):
    """Gradients of the fast form with respect to q, e, v and the column scale."""
    k = g.k
    grad_q = torch.zeros_like(q)
    grad_e = e.new_zeros(g.batch, g.c_key, g.n_keys_wide)  # over wide key rows until the end
    grad_v = v.new_zeros(g.batch, g.c_val, g.n_keys_wide)
    grad_scale = col_scale.new_zeros(g.batch, g.key_h, g.key_w)
    grad_pad = _padded(g, grad_out)
    e_wide = _wide_keys(g, e)
    values = _row_operand(g, v, g.row_product_values)
    ws = _Workspace(q_pad, _workspace_sizes(g, _tiles(g, *plan)))
    try:
        for index, t in enumerate(_tiles(g, *plan)):
            nb, b0, b1 = t.nb, t.b0, t.b1
            z_shape = (nb, t.th, t.tw, g.key_h, g.key_w)
            if saved is not None:
                keep = saved[index]
                z, a_pad = keep.view("z", z_shape), keep.padded("a", t.padded_shape, t.interior)
                weights = keep.view("w", (nb, t.oh * t.ow, g.n_keys_wide))
            else:
                z, a_pad = ws.view("z", z_shape), ws.padded("a", t.padded_shape, t.interior)
                _softmax_products(g, t, q_pad, keys, col_scale, ws, z, a_pad)
                weights = _band_summed_window(g, t, a_pad, ws, ws, "y")
            attn = a_pad[t.interior]
            grad_win = grad_out[b0:b1, :, t.o0:t.o1, t.oc0:t.oc1].reshape(nb, g.c_val, t.oh * t.ow)
            grad_v[b0:b1] += torch.bmm(grad_win, weights)
            # dL/dA: the adjoint band sum of dL/dW, with dL/dW on the score window and padded keys
            rows = _row_summed_product(g, t, grad_pad, values, g.row_product_values, ws)
            # softmax: dL/dZ = A (dL/dA - sum_j A dL/dA)
            grad_z = torch.mul(_key_column_sum(rows, ws, "x", k), attn, out=ws.view("w", z_shape))
            row_dot = grad_z.sum(dim=(-2, -1), keepdim=True)
            grad_z.addcmul_(attn, row_dot, value=-1.0)
            # column scale: Z = P * s, so dL/ds_j = sum_i dL/dZ_ij Z_ij / s_j
            product = ws.view("x", z_shape)
            torch.mul(grad_z, z, out=product)
            grad_scale[b0:b1] += product.sum(dim=(1, 2)) / col_scale[b0:b1, 0, 0]
            # dL/dS: the adjoint band sum of dL/dP = dL/dZ * s, on the output window's queries
            grad_p = ws.padded("g", t.padded_shape, t.interior)
            torch.mul(grad_z, col_scale[b0:b1], out=grad_p[t.interior])
            grad_s = _band_summed_window(g, t, grad_p, ws, ws, "y")
            q_win = q[b0:b1, :, t.o0:t.o1, t.oc0:t.oc1].reshape(nb, g.c_key, t.oh * t.ow)
            grad_e[b0:b1] += torch.bmm(q_win, grad_s)
            grad_q[b0:b1, :, t.o0:t.o1, t.oc0:t.oc1] += torch.bmm(e_wide[b0:b1], grad_s.transpose(1, 2)).view(
                nb, g.c_key, t.oh, t.ow)
    finally:
        ws.release()
    return grad_q, _narrow_keys(g, grad_e).contiguous(), _narrow_keys(g, grad_v).contiguous(), grad_scale


class _PatchAttention(torch.autograd.Function):
    """The fast form with its backward pass written out (inputs: q, e, v, column scale)."""

    @staticmethod
    def forward(ctx, q, e, v, col_scale, patch_size, plan, max_saved):
        g = _Geometry.of(q, v, patch_size)
        n_tiles = sum(1 for _ in _tiles(g, *plan))
        save = n_tiles * 3 * tile_elements(plan[0], g.height, g.width, plan[1], plan[2], g.n_keys_padded,
                                           patch_size) <= max_saved
        out, saved = _forward(g, plan, q, e, v, col_scale, save)
        ctx.geometry, ctx.plan, ctx.saved_tiles = g, plan, saved
        ctx.save_for_backward(q, e, v, col_scale)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, e, v, col_scale = ctx.saved_tensors
        g = ctx.geometry
        with torch.no_grad(), _autocast_off(q.device.type):
            q_pad = _padded(g, q)
            scale5 = col_scale.view(g.batch, 1, 1, g.key_h, g.key_w)
            saved, ctx.saved_tiles = ctx.saved_tiles, None  # a second backward pass recomputes
            keys = _row_operand(g, e, g.row_product) if saved is None else None  # only a recomputation needs them
            try:
                grads = _backward(g, ctx.plan, q, e, v, q_pad, keys, scale5, saved, grad_out.contiguous())
            finally:
                for keep in saved or ():
                    keep.release()
        return grads + (None, None, None)


def _autocast_off(device_type: str):
    """Autocast disabled on this device type (a no-op where it has no autocast, e.g. meta)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def key_patch_norms(e: torch.Tensor, patch_size: int, eps: float = NORM_EPS) -> torch.Tensor:
    """L2 norm of every zero-padded k x k patch of e, clamped below at `eps`: (B, Hs, Ws).

    The window sums are an average pool times k^2 (zeros counted): forward and backward 0.26
    against 0.78 ms for a convolution with a k x k kernel of ones at k = 7 on a batch of 8 20 x 20
    keys (one CPU thread), 1.1 against 2.4 ms on two 52 x 52 maps."""
    p = patch_size // 2
    energy = e.pow(2).sum(dim=1, keepdim=True)
    sums = F.avg_pool2d(energy, patch_size, stride=1, padding=p, count_include_pad=True) * (patch_size * patch_size)
    return sums[:, 0].clamp_min(0).sqrt().clamp_min(eps)


def patch_attention(q: torch.Tensor, e: torch.Tensor, v: torch.Tensor, patch_size: int,
                    softmax_scale: float = 10.0, eps: float = NORM_EPS,
                    max_chunk_elements: int | None = None, max_saved_elements: int | None = None) -> torch.Tensor:
    """Memory-bounded patch attention, equal to `direct_patch_attention` up to float rounding.

    q: (B, C', H, W) queries; e: (B, C', Hs, Ws) keys; v: (B, C, Hs, Ws) values; returns
    (B, C, H, W). Runs in the inputs' precision, or float32 under autocast (a softmax over
    thousands of keys in bfloat16 loses the small weights). `max_chunk_elements` bounds each
    working buffer (None: DEFAULT_CHUNK_ELEMENTS), `max_saved_elements` what autograd keeps for
    the backward pass instead of recomputing it (None: MAX_SAVED_ELEMENTS).
    """
    check_inputs(q, e, v, patch_size)
    budget = DEFAULT_CHUNK_ELEMENTS if max_chunk_elements is None else int(max_chunk_elements)
    if budget < 1:
        raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements!r}")
    max_saved = MAX_SAVED_ELEMENTS if max_saved_elements is None else int(max_saved_elements)
    if max_saved < 0:
        raise ValueError(f"max_saved_elements must be >= 0, got {max_saved_elements!r}")
    device_type = q.device.type
    autocast = torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)
    if autocast or q.dtype in (torch.float16, torch.bfloat16):
        q, e, v = q.float(), e.float(), v.float()
    with _autocast_off(device_type):
        col_scale = softmax_scale / key_patch_norms(e, patch_size, eps)
        g = _Geometry.of(q, v, patch_size)
        plan = plan_chunks(g.batch, g.height, g.width, g.n_keys_padded, patch_size, budget)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (q, e, v)):
            return _PatchAttention.apply(q.contiguous(), e.contiguous(), v.contiguous(), col_scale.contiguous(),
                                         patch_size, plan, max_saved)
        return _forward(g, plan, q, e, v, col_scale, save=False)[0]
