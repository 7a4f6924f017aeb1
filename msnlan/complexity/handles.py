"""fvcore op handles: what counts as a multiply-accumulate (MAC), and estimates of what does not.

fvcore's FlopCountAnalysis counts one multiply-add as one "flop" for the ops it has handles for
(convolution, linear, addmm, bmm, matmul, einsum, ...). It has no handle for
scaled_dot_product_attention, baddbmm, addbmm, mv or dot, and its matmul handle ignores a
broadcast batch on the second operand, and its bmm handle fails on ``torch.bmm(a, b, out=c)``
(traced with three inputs), so attention written in any of those ways would be undercounted or
not countable. The handles here close those gaps; for a plain bmm they count exactly as fvcore's.

Ops that are not multiply-accumulates (activations, softmax, additions, norms, fold/unfold) get
*estimate* handles: they report the number of elements they touch under ``elements:<op>`` and a
call count under ``calls:<op>``, so one trace yields both the MACs and the list of what was left
out. Keys with those prefixes are never part of a MAC total.
"""
from __future__ import annotations

import warnings
from collections import Counter
from math import prod
from typing import Any, Callable, Iterable

with warnings.catch_warnings():  # fvcore scripts helpers at import: torch deprecates jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis  # noqa: F401  (imported here once, quietly)
    from fvcore.nn.jit_handles import einsum_flop_jit, get_shape

ELEMENTS = "elements:"
CALLS = "calls:"

Handle = Callable[[list, list], Any]


def _shapes(values: Iterable[Any]) -> list[list[int] | None]:
    return [get_shape(v) for v in values]


def matmul_macs(inputs: list, outputs: list) -> int:
    """aten::matmul / aten::mm with broadcasting: one MAC per output element per reduced index."""
    a, b = _shapes(inputs[:2])
    out = get_shape(outputs[0])
    reduced = a[-1]  # the contracted length is the last dim of the first operand (1-D included)
    if len(b) == 1 and len(a) == 1:
        return reduced
    return prod(out) * reduced


def batched_mm_macs(batch1_index: int) -> Handle:
    """Handle for ops whose operands batch1 (b,n,k) and batch2 (b,k,m) sit at `batch1_index`."""

    def handle(inputs: list, outputs: list) -> int:
        b1, b2 = _shapes(inputs[batch1_index:batch1_index + 2])
        return prod(b1) * b2[-1]

    return handle


def mv_macs(inputs: list, outputs: list) -> int:
    """aten::mv: matrix (n,k) times vector (k)."""
    return prod(get_shape(inputs[0]))


def dot_macs(inputs: list, outputs: list) -> int:
    """aten::dot / aten::vdot: k MACs."""
    return prod(get_shape(inputs[0]))


def sdpa_macs(inputs: list, outputs: list) -> int:
    """scaled_dot_product_attention(q, k, v, ...): Q K^T then P V (softmax, scaling not MACs).

    q is (..., L, E), k is (..., S, E), v is (..., S, Ev); the output (..., L, Ev) carries the
    broadcast batch shape.
    """
    q, k, v = _shapes(inputs[:3])
    out = get_shape(outputs[0])
    batch = prod(out[:-2])
    length, emb = q[-2], q[-1]
    source = k[-2]
    return batch * length * source * emb + batch * length * source * v[-1]


def _einsum_letters(equation: str, shapes: list[list[int]]) -> dict[str, int] | None:
    """Size of every index letter, or None where the equation uses an ellipsis."""
    lhs = equation.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if "." in lhs or len(terms) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape):
            return None
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return sizes


def einsum_macs(inputs: list, outputs: list) -> float:
    """aten::einsum: for two operands one MAC per point of the joint index space.

    (fvcore's own handle halves numpy's flop estimate, which undercounts products without a
    summed index; it is kept for three or more operands and ellipsis equations.)
    """
    equation = inputs[0].toIValue()
    shapes = _shapes(inputs[1].node().inputs())
    sizes = _einsum_letters(equation, shapes)
    if sizes is None or len(shapes) != 2:
        return einsum_flop_jit(inputs, outputs)
    return prod(sizes.values())


#: MAC handles added to (or replacing) fvcore's defaults; name -> (handle, why)
MAC_HANDLES: dict[str, Handle] = {
    # fvcore's bmm handle asserts on the out= form (three inputs) that patch_attention uses
    "aten::bmm": batched_mm_macs(0),
    "aten::matmul": matmul_macs,
    "aten::mm": matmul_macs,
    "aten::baddbmm": batched_mm_macs(1),
    "aten::addbmm": batched_mm_macs(1),
    "aten::mv": mv_macs,
    "aten::dot": dot_macs,
    "aten::vdot": dot_macs,
    "aten::einsum": einsum_macs,
    "aten::scaled_dot_product_attention": sdpa_macs,
    "aten::_scaled_dot_product_flash_attention": sdpa_macs,
    "aten::_scaled_dot_product_flash_attention_for_cpu": sdpa_macs,
    "aten::_scaled_dot_product_efficient_attention": sdpa_macs,
    "aten::_scaled_dot_product_cudnn_attention": sdpa_macs,
}

#: ops fvcore counts by default (kept as fvcore counts them)
FVCORE_DEFAULT_COUNTED = (
    "aten::_convolution", "aten::linear", "aten::addmm", "aten::batch_norm",
    "aten::group_norm", "aten::layer_norm", "aten::instance_norm", "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d", "aten::grid_sampler",
)

#: arithmetic that is not a multiply-accumulate: about one operation per element touched
ELEMENTWISE_OPS = (
    "gelu", "relu", "relu_", "prelu", "_prelu_kernel", "sigmoid", "sigmoid_", "tanh", "silu",
    "leaky_relu", "elu", "hardtanh", "softmax", "_softmax", "log_softmax", "exp", "log", "sqrt",
    "rsqrt", "pow", "reciprocal", "square", "abs", "neg", "add", "add_", "sub", "sub_", "rsub",
    "mul", "mul_", "div", "div_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max",
    "mean", "sum", "std", "var", "std_mean", "var_mean", "norm", "linalg_vector_norm",
    "frobenius_norm", "max_pool2d", "avg_pool2d", "col2im", "where", "masked_fill", "addcmul",
    "lerp", "maximum", "minimum", "amax", "logsumexp",
)

#: data movement and fills: memory traffic but no arithmetic, listed so that nothing that
#: touches memory is silently dropped (views such as narrow or expand stay ignored, as in fvcore)
MOVEMENT_OPS = (
    "im2col", "pixel_shuffle", "pixel_unshuffle", "constant_pad_nd", "pad", "reflection_pad2d",
    "replication_pad2d", "cat", "stack", "flip", "roll", "repeat", "index_select", "gather",
    "clone", "copy_", "zero_", "fill_", "new_ones", "ones_like",
)


def element_estimate(op: str) -> Handle:
    """Handle that records calls and elements touched (the larger of first input and output)."""

    def handle(inputs: list, outputs: list) -> Counter:
        sizes = [prod(s) for s in _shapes(inputs[:1] + outputs[:1]) if s is not None]
        return Counter({f"{ELEMENTS}{op}": max(sizes, default=0), f"{CALLS}{op}": 1})

    return handle


def estimate_handles() -> dict[str, Handle]:
    """Estimate handles for every listed non-MAC op (keyed by its aten name)."""
    return {f"aten::{name}": element_estimate(f"aten::{name}")
            for name in ELEMENTWISE_OPS + MOVEMENT_OPS}


def is_mac_key(key: str) -> bool:
    """Whether an operator key of fvcore's counters is a MAC count (not an estimate)."""
    return not key.startswith((ELEMENTS, CALLS))


def op_kind(op: str) -> str:
    """'elementwise' (arithmetic, not MACs), 'movement' (no arithmetic) or 'unknown'."""
    name = op.split("::", 1)[-1]
    if name in ELEMENTWISE_OPS:
        return "elementwise"
    if name in MOVEMENT_OPS:
        return "movement"
    return "unknown"
