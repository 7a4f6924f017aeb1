"""The MSNLAB's attention: fast (diagonal-sum, tiled) and direct forms against the tests' own references."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from msnlan.models import attention
from msnlan.models.attention import POOL, SCORE_FLOOR, plan_tiles, resolve_attention_form, tile_elements
from msnlan.models.msnlab import (DEFAULT_CHUNK_ELEMENTS, MSNLAB, NonLocalBranch, attention_form, configure_attention,
                                  direct_patch_attention, patch_attention, plan_chunks)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- references (the textbook forms)


def reference_attention(q, e, v, k, scale=10.0, eps=1e-4):
    """Per image: Q = unfold(q), K = unfold(e) with columns L2-normalised (norm clamped
    at eps), V = unfold(v), A = softmax over the L keys of scale K^T Q, y = fold(V A)."""
    p = k // 2
    out = []
    for b in range(q.shape[0]):
        Q = F.unfold(q[b:b + 1], k, padding=p)[0]
        K = F.unfold(e[b:b + 1], k, padding=p)[0]
        K = K / torch.clamp(torch.sqrt((K * K).sum(dim=0)), min=eps)
        V = F.unfold(v[b:b + 1], k, padding=p)[0]
        A = torch.softmax(scale * (K.T @ Q), dim=0)
        out.append(F.fold(V @ A, output_size=tuple(q.shape[2:]), kernel_size=k, padding=p))
    return torch.stack(out)


def conv_form_attention(q, e, v, k, scale=10.0, eps=1e-4):
    """The same attention as correlation with normalised key patches (conv2d, one filter per
    key) and pasting of value patches (conv_transpose2d): the authors' formulation."""
    p = k // 2
    out = []
    for b in range(q.shape[0]):
        C2, C = e.shape[1], v.shape[1]
        keys = F.unfold(e[b:b + 1], k, padding=p)[0].T.reshape(-1, C2, k, k)  # (L, C', k, k)
        norms = keys.flatten(1).norm(dim=1).clamp_min(eps)
        values = F.unfold(v[b:b + 1], k, padding=p)[0].T.reshape(-1, C, k, k)  # (L, C, k, k)
        scores = F.conv2d(F.pad(q[b:b + 1], (p, p, p, p)), keys / norms.view(-1, 1, 1, 1))
        attn = torch.softmax(scale * scores, dim=1)  # over the L keys
        out.append(F.conv_transpose2d(attn, values, padding=p)[0])
    return torch.stack(out)


def random_qev(batch, height, width, k, c_key=4, c_val=6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    hs, ws = height + 2 * (k // 2) - 2, width + 2 * (k // 2) - 2
    q = torch.randn(batch, c_key, height, width, generator=g, dtype=dtype)
    e = torch.randn(batch, c_key, hs, ws, generator=g, dtype=dtype)
    v = torch.randn(batch, c_val, hs, ws, generator=g, dtype=dtype)
    return q, e, v


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


CASES = [  # batch, height, width, patch size
    (1, 1, 1, 3), (1, 1, 1, 7), (2, 1, 4, 5), (2, 5, 7, 3), (3, 6, 4, 5), (2, 9, 13, 7), (1, 16, 11, 5),
    (1, 12, 12, 3),
]


@pytest.fixture(params=["row products", "band sums", "mixed"])
def score_path(request, monkeypatch):
    """The ways the fast form sums a product along the query rows: by a k-times deeper product
    (narrow channels, as in these tests and the demo network), by band sums (the paper model),
    and the scores one way and the backward pass's value product the other (c_key 4, c_val 6)."""
    if request.param == "band sums":
        monkeypatch.setattr(attention, "ROW_PRODUCT_MAX_DEPTH", 0)
    elif request.param == "mixed":
        monkeypatch.setattr(attention, "uses_row_product", lambda channels, k: channels <= 4)
    assert attention.uses_row_product(4, 3) == (request.param != "band sums")
    assert attention.uses_row_product(6, 3) == (request.param == "row products")
    return request.param


# --------------------------------------------------------------------------- equality with the references


def test_references_agree():
    """The two test references (unfold/fold and conv/conv-transpose) describe the same thing."""
    for batch, h, w, k in [(2, 5, 7, 3), (1, 6, 4, 7), (1, 1, 1, 5)]:
        q, e, v = random_qev(batch, h, w, k)
        assert rel_err(conv_form_attention(q, e, v, k), reference_attention(q, e, v, k)) < 1e-12


@pytest.mark.parametrize("batch,height,width,k", CASES)
def test_fast_and_direct_equal_reference_float64(batch, height, width, k, score_path):
    q, e, v = random_qev(batch, height, width, k)
    ref = reference_attention(q, e, v, k)
    assert patch_attention(q, e, v, k).shape == ref.shape == (batch, 6, height, width)
    assert rel_err(patch_attention(q, e, v, k), ref) < 1e-10
    assert rel_err(direct_patch_attention(q, e, v, k), ref) < 1e-10


@pytest.mark.parametrize("batch,height,width,k", [(2, 9, 13, 7), (1, 16, 11, 5), (3, 10, 6, 3)])
def test_fast_equals_reference_float32_within_1e4(batch, height, width, k, score_path):
    q, e, v = random_qev(batch, height, width, k, c_key=8, c_val=16, dtype=torch.float32)
    ref = reference_attention(q.double(), e.double(), v.double(), k)
    assert rel_err(patch_attention(q, e, v, k).double(), ref) < 1e-4
    assert rel_err(direct_patch_attention(q, e, v, k).double(), ref) < 1e-4


def test_float32_stable_with_large_scores():
    """Large query magnitudes (scores in the thousands) must not overflow the softmax."""
    q, e, v = random_qev(1, 8, 9, 5, c_key=8, dtype=torch.float32)
    q = q * 300.0
    out = patch_attention(q, e, v, 5)
    assert torch.isfinite(out).all()
    assert rel_err(out.double(), reference_attention(q.double(), e.double(), v.double(), 5)) < 1e-4


def test_zero_keys_use_the_norm_clamp():
    """All-zero key patches (norm below 1e-4) are divided by the clamp, not by zero."""
    q, e, v = random_qev(1, 6, 5, 3)
    e[:, :, :3] = 0.0
    out = patch_attention(q, e, v, 3)
    assert torch.isfinite(out).all()
    assert rel_err(out, reference_attention(q, e, v, 3)) < 1e-10


def whole_image_elements(batch, height, width, k):
    """The fast form's largest buffer for whole images (its planning unit)."""
    p = k // 2
    keys_padded = (height + 4 * p - 2) * (width + 4 * p - 2)
    return tile_elements(batch, height, width, height, width, keys_padded, k), keys_padded


@pytest.mark.parametrize("batch,height,width,k,fraction", [
    (1, 30, 25, 5, 3), (2, 17, 23, 7, 2), (1, 20, 20, 3, 8), (2, 12, 12, 3, 10**9),  # 10**9: the 1 x 1 floor
])
def test_tiled_equals_reference(batch, height, width, k, fraction, score_path):
    q, e, v = random_qev(batch, height, width, k)
    whole, keys_padded = whole_image_elements(1, height, width, k)
    budget = max(1, whole // fraction)
    group, tile_h, tile_w = plan_chunks(batch, height, width, keys_padded, k, budget)
    assert (group, tile_h, tile_w) != (batch, height, width), "the budget should force tiling"
    out = patch_attention(q, e, v, k, max_chunk_elements=budget)
    assert rel_err(out, reference_attention(q, e, v, k)) < 1e-10


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns (views, which hold no memory, aside)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and not getattr(func, "is_view", False):
                self.largest = max(self.largest, t.numel())
        return out


class _FillCounter(TorchDispatchMode):
    """Element counts of the tensors filled (zero_, fill_) while active."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.fill_, torch.ops.aten.zero_):
            self.sizes.append(args[0].numel())
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("track_grad", [False, True])
def test_never_holds_the_whole_score_matrix(track_grad):
    """Forward and backward: no tensor beyond the budget, which is a quarter of N x L."""
    POOL.clear()  # pooled buffers from earlier tests would hide the allocations
    q, e, v = random_qev(1, 30, 26, 5, dtype=torch.float32)
    n_queries, n_keys = 30 * 26, e.shape[2] * e.shape[3]
    budget = n_queries * n_keys // 4
    for t in (q, e, v):
        t.requires_grad_(track_grad)
    with torch.set_grad_enabled(track_grad), _LargestTensor() as mode:
        out = patch_attention(q, e, v, 5, max_chunk_elements=budget)
        if track_grad:
            out.sum().backward()
    assert mode.largest <= budget < n_queries * n_keys
    assert rel_err(out.detach().double(),
                   reference_attention(q.detach().double(), e.detach().double(), v.detach().double(), 5)) < 1e-4


def test_plan_whole_images_first_then_bounded_tiles():
    # whole images, as many per group as fit
    whole, keys_padded = whole_image_elements(1, 12, 12, 3)
    assert plan_chunks(16, 12, 12, keys_padded, 3, DEFAULT_CHUNK_ELEMENTS) == (16, 12, 12)
    assert plan_chunks(16, 12, 12, keys_padded, 3, 3 * whole) == (3, 12, 12)
    # at 256 x 256 (the direct form would need a 17 GB matrix) tiles fit the default budget
    for k in (3, 5, 7):
        whole, keys_padded = whole_image_elements(1, 256, 256, k)
        group, tile_h, tile_w = plan_chunks(1, 256, 256, keys_padded, k, DEFAULT_CHUNK_ELEMENTS)
        assert group == 1 and (tile_h, tile_w) != (256, 256)
        assert tile_elements(1, 256, 256, tile_h, tile_w, keys_padded, k) <= DEFAULT_CHUNK_ELEMENTS


GRAD_CASES = [  # batch, height, width, patch size, budget (None: whole images)
    (2, 5, 6, 5, None), (3, 7, 4, 7, None), (2, 6, 6, 3, None), (1, 9, 8, 3, None),
    (2, 5, 6, 5, "tiled"), (1, 13, 11, 7, "tiled"), (2, 9, 8, 3, "tiled"),
]


@pytest.mark.parametrize("save", [True, False], ids=["saved", "recomputed"])
@pytest.mark.parametrize("batch,height,width,k,budget", GRAD_CASES)
def test_gradients_equal_direct_form(batch, height, width, k, budget, save, monkeypatch, score_path):
    """The written-out backward pass against autograd through the direct form (float64), with
    the scores kept for the backward pass and recomputed, whole images and tiles."""
    if not save:
        monkeypatch.setattr(attention, "MAX_SAVED_ELEMENTS", 0)
    if budget == "tiled":
        budget = whole_image_elements(1, height, width, k)[0] // 3
    q, e, v = random_qev(batch, height, width, k, seed=batch + height + k)
    ours = [t.clone().requires_grad_() for t in (q, e, v)]
    theirs = [t.clone().requires_grad_() for t in (q, e, v)]
    weight = torch.randn(batch, 6, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (patch_attention(*ours, k, max_chunk_elements=budget) * weight).sum().backward()
    (direct_patch_attention(*theirs, k) * weight).sum().backward()
    for a, b in zip(ours, theirs):
        assert rel_err(a.grad, b.grad) < 1e-10


@pytest.mark.parametrize("budget", [None, 20])
def test_gradcheck_tiny(budget, score_path):
    q, e, v = random_qev(2, 3, 2, 3, c_key=2, c_val=2)
    inputs = tuple(t.requires_grad_() for t in (q, e, v))
    assert torch.autograd.gradcheck(lambda a, b, c: patch_attention(a, b, c, 3, max_chunk_elements=budget), inputs)


def test_second_backward_recomputes():
    """retain_graph: the buffers kept for the first backward pass are released; a second pass
    recomputes and gives the same gradients."""
    q, e, v = (t.requires_grad_() for t in random_qev(1, 5, 5, 3))
    out = patch_attention(q, e, v, 3)
    first = torch.autograd.grad(out.sum(), (q, e, v), retain_graph=True)
    second = torch.autograd.grad(out.sum(), (q, e, v))
    for a, b in zip(first, second):
        assert rel_err(a, b) < 1e-12


def test_saved_budget_decides_between_keeping_and_recomputing(monkeypatch):
    """A branch's max_saved_elements (configure_attention) decides whether the backward pass
    reuses the forward's scores or recomputes them: the same gradients either way."""
    calls = []
    real = attention._softmax_products
    monkeypatch.setattr(attention, "_softmax_products", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    torch.manual_seed(0)
    branch = NonLocalBranch(4, 3).double()
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    grads = {}
    for saved in (None, 0):  # the default keeps these few elements; 0 keeps nothing
        assert configure_attention(branch, "fast", max_saved_elements=saved) == 1
        calls.clear()
        branch.zero_grad()
        branch(x).square().sum().backward()
        grads[saved] = [p.grad.clone() for p in branch.parameters()]
        assert len(calls) == (1 if saved is None else 2), saved  # one tile: forward (+ recomputation)
    assert all(rel_err(a, b) < 1e-12 for a, b in zip(grads[None], grads[0]))
    assert configure_attention(branch, max_chunk_elements=None) == 1 and branch.max_saved_elements == 0  # left as is
    with pytest.raises(ValueError, match="max_saved_elements must be >= 0, got -1"):
        patch_attention(*(t.requires_grad_() for t in random_qev(1, 5, 5, 3)), 3, max_saved_elements=-1)


def test_score_floor_error_bound():
    """Logits more than SCORE_FLOOR below their row's maximum are raised to it. Each row's
    weights then move by at most 2 L e^-SCORE_FLOOR in total variation, and an output pixel
    gathers k^2 rows: |y_floor - y| <= 2 k^2 L e^-SCORE_FLOOR max|v|. Checked against the
    unfloored reference on inputs where most logits are floored."""
    k = 5
    q, e, v = random_qev(2, 9, 8, k)
    q = q * 40.0  # logits spread over thousands: most are below max - 30
    n_keys = e.shape[2] * e.shape[3]
    bound = 2 * k * k * n_keys * math.exp(-SCORE_FLOOR) * v.abs().max().item()
    ref = reference_attention(q, e, v, k)  # plain softmax, float64
    # the floor is active: many logits sit below max - 30
    keys = F.unfold(e, k, padding=k // 2)
    keys = keys / keys.norm(dim=1, keepdim=True).clamp_min(1e-4)
    logits = 10.0 * torch.bmm(keys.transpose(1, 2), F.unfold(q, k, padding=k // 2))
    assert (logits < logits.amax(1, keepdim=True) - SCORE_FLOOR).float().mean() > 0.5
    for out in (patch_attention(q, e, v, k), direct_patch_attention(q, e, v, k)):
        assert (out - ref).abs().max().item() <= bound


class _SubnormalWatch(TorchDispatchMode):
    """Counts subnormal values (0 < |x| < float32's smallest normal) in every operator's output
    (uninitialised allocations and views of them aside)."""

    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.numel()
                    and "empty" not in str(func) and not getattr(func, "is_view", False)):
                tiny = torch.finfo(torch.float32).tiny
                n = int(((t != 0) & (t.abs() < tiny)).sum())
                if n:
                    self.found.append((str(func), n))
        return out


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_no_subnormal_values_forward_or_backward(scale):
    """Large activations (input scale 100, as in a randomly initialised network) make nearly all
    softmax weights underflow into float32's subnormal range without the floor; with it, no
    operator of the forward or backward pass produces a subnormal value."""
    q, e, v = random_qev(2, 12, 10, 7, dtype=torch.float32, seed=3)
    q, e, v = (t.mul(scale).requires_grad_() for t in (q, e, v))
    with _SubnormalWatch() as watch:
        out = patch_attention(q, e, v, 7)
        (out * 1e-3).sum().backward()
    assert watch.found == []


def test_autocast_runs_in_float32():
    q, e, v = (t.requires_grad_() for t in random_qev(1, 6, 5, 3, dtype=torch.float32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = patch_attention(q, e, v, 3)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert rel_err(out.detach().double(), reference_attention(*(t.detach().double() for t in (q, e, v)), 3)) < 1e-5


def test_pooled_buffers_keep_their_zero_border():
    """Buffers come back from the pool between calls of different layouts; each result stays exact."""
    cases = [(1, 9, 7, 5), (2, 4, 6, 3), (1, 9, 7, 5), (1, 6, 9, 7), (2, 4, 6, 3)]
    for batch, height, width, k in cases:
        q, e, v = random_qev(batch, height, width, k, seed=height)
        with torch.no_grad():
            assert rel_err(patch_attention(q, e, v, k), reference_attention(q, e, v, k)) < 1e-10


def test_repeated_training_steps_do_not_zero_their_padded_buffers_again():
    """The zero-bordered softmax and score-gradient buffers come back from the pool with their
    border intact; a scratch request of the same size must not take (and spoil) one of them."""
    POOL.clear()
    q, e, v = random_qev(2, 6, 5, 5, dtype=torch.float32)
    g, tiles = plan_tiles(*q.shape, *v.shape[1:], 5)
    padded = math.prod(tiles[0].padded_shape)
    for t in (q, e, v):
        t.requires_grad_()
    patch_attention(q, e, v, 5).sum().backward()
    with _FillCounter() as fills:
        patch_attention(q, e, v, 5).sum().backward()
    assert padded not in fills.sizes, fills.sizes


@pytest.mark.parametrize("k", [5, 7])
def test_stale_pool_contents_never_reach_the_result(k):
    """Wide key-column sums read a few elements past their source; products meet them with zero
    key columns, so those elements must be finite: pooled buffers full of NaN change nothing."""
    POOL.clear()
    q, e, v = random_qev(2, 7, 6, k, dtype=torch.float32)
    for _ in range(8):
        POOL.give(torch.full((200_000,), float("nan")))
    q, e, v = (t.requires_grad_() for t in (q, e, v))
    out = patch_attention(q, e, v, k)
    out.sum().backward()
    POOL.clear()
    ref = [t.detach().clone().requires_grad_() for t in (q, e, v)]
    direct_patch_attention(*ref, k).sum().backward()
    assert rel_err(out.detach().double(), reference_attention(*(t.detach().double() for t in (q, e, v)), k)) < 1e-5
    for a, b in zip((q, e, v), ref):
        assert torch.isfinite(a.grad).all() and rel_err(a.grad, b.grad) < 1e-4


def test_buffers_from_inference_mode_serve_training():
    """Validation runs under torch.inference_mode; the pooled buffers must still serve the next
    training step (in-place updates of inference tensors are refused outside it)."""
    q, e, v = random_qev(2, 6, 5, 5, dtype=torch.float32)
    with torch.inference_mode():
        patch_attention(q, e, v, 5)
    q, e, v = (t.requires_grad_() for t in (q, e, v))
    patch_attention(q, e, v, 5).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, e, v))


def test_auto_resolves_by_device():
    assert resolve_attention_form("auto", "cpu") == "fast"
    assert resolve_attention_form("direct", "cpu") == "direct"
    with pytest.raises(ValueError, match="attention mode"):
        resolve_attention_form("flash", "cpu")
    block = MSNLAB(8, (3, 5), reduction=4)
    assert {b.attention_mode for b in block.branches} == {"auto"}
    assert attention_form(block, "cpu") == "fast"
    configure_attention(block, "direct")
    assert attention_form(block, torch.device("cpu")) == "direct"
    assert attention_form(torch.nn.Conv2d(1, 1, 1), "cpu") == "none"


def test_bad_inputs_are_rejected():
    q, e, v = random_qev(1, 4, 4, 3)
    with pytest.raises(ValueError, match="odd"):
        patch_attention(q, e, v, 4)
    with pytest.raises(ValueError, match="channels"):
        patch_attention(q[:, :3], e, v, 3)
    with pytest.raises(ValueError, match="same size"):
        patch_attention(q, e, v[:, :, :-1], 3)
    with pytest.raises(ValueError, match="batch"):
        patch_attention(q, e[:0], v, 3)


# --------------------------------------------------------------------------- the modules


def test_msnlab_parameter_count_paper():
    block = MSNLAB(64, (3, 5, 7), reduction=16)
    assert sum(p.numel() for p in block.parameters()) == 148_688
    for branch in block.branches:  # one shared PReLU slope each
        assert [m.act.weight.numel() for m in (branch.enlarge, branch.query, branch.key, branch.value)] == [1] * 4


def test_branch_sizes_and_residual_formula():
    """s is k-3 pixels larger than x; out = x + r (y + r x) with y the attention of q, e, v."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    for k in (3, 5, 7):
        branch = NonLocalBranch(8, k, softmax_scale=10.0, res_scale=0.1).double()
        s = branch.enlarge(x)
        assert s.shape[-2:] == (5 + k - 3, 7 + k - 3)
        y = reference_attention(branch.query(x), branch.key(s), branch.value(s), k)
        assert rel_err(branch(x), x + 0.1 * (y + 0.1 * x)) < 1e-12


def test_msnlab_output_formula():
    torch.manual_seed(0)
    block = MSNLAB(8, (3, 5), reduction=4).double()
    x = torch.randn(1, 8, 6, 5, dtype=torch.float64)
    fused = block.fusion(torch.cat([b(x) for b in block.branches], dim=1))
    gate = torch.sigmoid(block.attention.expand(F.relu(block.attention.reduce(fused.mean((2, 3), keepdim=True)))))
    assert rel_err(block(x), x + fused * gate) < 1e-12


def test_modes_agree_and_configure_attention():
    torch.manual_seed(0)
    block = MSNLAB(8, (3, 5, 7), reduction=4).double()
    x = torch.randn(2, 8, 7, 6, dtype=torch.float64)
    fast = block(x)
    assert configure_attention(block, "direct") == 3
    assert all(b.attention_mode == "direct" for b in block.branches)
    direct = block(x)
    configure_attention(block, "fast", max_chunk_elements=2000)
    chunked = block(x)
    assert rel_err(direct, fast) < 1e-12 and rel_err(chunked, fast) < 1e-12
    with pytest.raises(ValueError, match="attention mode"):
        configure_attention(block, "flash")
    block.branches[0].attention_mode = "bogus"
    with pytest.raises(ValueError, match="attention_mode"):
        block(x)


def test_patch_size_one_needs_3x3():
    branch = NonLocalBranch(4, 1)
    assert branch(torch.randn(1, 4, 3, 4)).shape == (1, 4, 3, 4)
    with pytest.raises(ValueError, match="at least 3 x 3"):
        branch(torch.randn(1, 4, 2, 4))
