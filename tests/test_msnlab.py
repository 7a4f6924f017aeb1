"""The MSNLAB's attention: fast (band-sum, tiled) and direct forms against the tests' own references."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from msnlan.models.msnlab import (DEFAULT_CHUNK_ELEMENTS, MAX_HALO_OVERHEAD, MSNLAB, NonLocalBranch, configure_attention,
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


# --------------------------------------------------------------------------- equality with the references


def test_references_agree():
    """The two test references (unfold/fold and conv/conv-transpose) describe the same thing."""
    for batch, h, w, k in [(2, 5, 7, 3), (1, 6, 4, 7), (1, 1, 1, 5)]:
        q, e, v = random_qev(batch, h, w, k)
        assert rel_err(conv_form_attention(q, e, v, k), reference_attention(q, e, v, k)) < 1e-12


@pytest.mark.parametrize("batch,height,width,k", CASES)
def test_fast_and_direct_equal_reference_float64(batch, height, width, k):
    q, e, v = random_qev(batch, height, width, k)
    ref = reference_attention(q, e, v, k)
    assert patch_attention(q, e, v, k).shape == ref.shape == (batch, 6, height, width)
    assert rel_err(patch_attention(q, e, v, k), ref) < 1e-10
    assert rel_err(direct_patch_attention(q, e, v, k), ref) < 1e-10


@pytest.mark.parametrize("batch,height,width,k", [(2, 9, 13, 7), (1, 16, 11, 5), (3, 10, 6, 3)])
def test_fast_equals_reference_float32_within_1e4(batch, height, width, k):
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


@pytest.mark.parametrize("batch,height,width,k,budget", [
    (2, 9, 13, 7, 2000), (2, 9, 13, 7, 9000), (1, 16, 11, 5, 300), (1, 16, 11, 5, 5000), (2, 12, 12, 3, 2000),
    (2, 4, 5, 7, 1), (1, 5, 3, 3, 1),  # 1 element: the 1 x 1 tile floor
])
def test_chunked_by_tiny_budget_equals_reference(batch, height, width, k, budget):
    q, e, v = random_qev(batch, height, width, k)
    n_keys = e.shape[2] * e.shape[3]
    group, tile_h, tile_w = plan_chunks(batch, height, width, n_keys, k, budget)
    assert (tile_h, tile_w) != (height, width), "the budget should force tiling"
    out = patch_attention(q, e, v, k, max_chunk_elements=budget)
    assert rel_err(out, reference_attention(q, e, v, k)) < 1e-10


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("track_grad", [False, True])
def test_never_holds_the_whole_score_matrix(track_grad):
    q, e, v = random_qev(1, 14, 12, 5, dtype=torch.float32)
    n_queries, n_keys = 14 * 12, e.shape[2] * e.shape[3]
    budget = n_queries * n_keys // 4
    for t in (q, e, v):
        t.requires_grad_(track_grad)
    with torch.set_grad_enabled(track_grad), _LargestTensor() as mode:
        out = patch_attention(q, e, v, 5, max_chunk_elements=budget)
    assert mode.largest <= budget < n_queries * n_keys
    assert rel_err(out.detach().double(),
                   reference_attention(q.detach().double(), e.detach().double(), v.detach().double(), 5)) < 1e-4


def test_default_plan_bounds_large_inputs():
    """At 256 x 256 (the direct form would need a 17 GB matrix) every tile fits the default
    budget, and the halo (work done twice) stays within MAX_HALO_OVERHEAD."""
    for k in (3, 5, 7):
        p = k // 2
        n_keys = (256 + 2 * p - 2) ** 2
        group, tile_h, tile_w = plan_chunks(1, 256, 256, n_keys, k, DEFAULT_CHUNK_ELEMENTS)
        window = min(256, tile_h + 2 * p) * min(256, tile_w + 2 * p)
        assert group == 1 and window * n_keys <= DEFAULT_CHUNK_ELEMENTS
        rows = [min(256, r + tile_h + p) - max(0, r - p) for r in range(0, 256, tile_h)]
        cols = [min(256, c + tile_w + p) - max(0, c - p) for c in range(0, 256, tile_w)]
        assert sum(rows) * sum(cols) <= MAX_HALO_OVERHEAD * 256 * 256


def test_small_batches_run_in_one_chunk():
    assert plan_chunks(16, 12, 12, 144, 3, DEFAULT_CHUNK_ELEMENTS) == (16, 12, 12)


@pytest.mark.parametrize("budget", [None, 150])
def test_gradients_equal_reference(budget):
    q, e, v = random_qev(2, 5, 6, 5)
    ours = [t.clone().requires_grad_() for t in (q, e, v)]
    theirs = [t.clone().requires_grad_() for t in (q, e, v)]
    weight = torch.randn(2, 6, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (patch_attention(*ours, 5, max_chunk_elements=budget) * weight).sum().backward()
    (reference_attention(*theirs, 5) * weight).sum().backward()
    for a, b in zip(ours, theirs):
        assert rel_err(a.grad, b.grad) < 1e-10


def test_gradcheck_tiny():
    q, e, v = random_qev(1, 3, 2, 3, c_key=2, c_val=2)
    inputs = tuple(t.requires_grad_() for t in (q, e, v))
    assert torch.autograd.gradcheck(lambda a, b, c: patch_attention(a, b, c, 3, max_chunk_elements=20), inputs)


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
