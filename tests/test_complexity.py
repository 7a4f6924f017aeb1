"""Complexity accounting: handles, the MSNLAB formula, breakdowns, parameters, JSON and CLI."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from msnlan.complexity import count_params, count_size, lr_size_720p, msnlab_macs
from msnlan.complexity.counting import TOP_LEVEL_REST, fvcore_count
from msnlan.complexity.formula import UNTILED
from msnlan.complexity.msnlab_hooks import direct_form, find_msnlabs, flop_counter_macs

TINY = {"_base_": "msnlan", "model": {"n_feats": 8, "n_resgroups": 2, "n_resblocks": 1, "reduction": 4}}


def tiny_model(scale: int = 2, **overrides) -> nn.Module:
    from msnlan.models.network import build_model

    return build_model(TINY, scale, **overrides).eval()


def flop_counter_total(module: nn.Module, *inputs) -> int:
    """MACs per torch's own counter (it reports 2 flops per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    return counter.get_total_flops() // 2


# --- handles ----------------------------------------------------------------------------------

class Products(nn.Module):
    """Attention-style products written every way an implementation might."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which

    def forward(self, q, k, v):
        if self.which == "bmm":
            return torch.bmm(torch.bmm(q, k.transpose(1, 2)).softmax(-1), v)
        if self.which == "matmul_broadcast":  # (n,e) @ (b,e,s): fvcore's own handle drops b
            return torch.matmul(q[0], k.transpose(1, 2))
        if self.which == "baddbmm":
            return torch.baddbmm(torch.zeros(q.shape[0], q.shape[1], k.shape[1]), q, k.transpose(1, 2))
        if self.which == "einsum":
            return torch.einsum("bne,bse->bns", q, k)
        if self.which == "sdpa":
            return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])
        raise AssertionError(self.which)


#: q (2,7,5), k (2,6,5), v (2,6,4): scores b*n*e*s = 420, aggregation b*n*s*ev = 336
PRODUCT_MACS = {"bmm": 420 + 336, "matmul_broadcast": 420, "baddbmm": 420, "einsum": 420, "sdpa": 420 + 336}


def qkv():
    return torch.rand(2, 7, 5), torch.rand(2, 6, 5), torch.rand(2, 6, 4)


@pytest.mark.parametrize("which", sorted(PRODUCT_MACS))
def test_attention_products_counted(which):
    q, k, v = qkv()
    result = fvcore_count(Products(which), (q, k, v))
    assert result.total == PRODUCT_MACS[which]
    assert result.total == flop_counter_total(Products(which), q, k, v)
    assert not result.unsupported  # nothing left that fvcore could not even name


def test_what_fvcore_alone_counts():
    """Why the handles: plain fvcore counts bmm, but not sdpa or baddbmm, and drops a broadcast batch."""
    from fvcore.nn import FlopCountAnalysis

    def plain(which):
        fa = FlopCountAnalysis(Products(which), qkv())
        fa.unsupported_ops_warnings(False)
        return fa.total(), set(fa.unsupported_ops())

    assert plain("bmm") == (PRODUCT_MACS["bmm"], {"aten::softmax"})
    assert plain("sdpa") == (0, {"aten::scaled_dot_product_attention"})
    assert plain("baddbmm")[0] == 0 and "aten::baddbmm" in plain("baddbmm")[1]
    assert plain("matmul_broadcast")[0] == PRODUCT_MACS["matmul_broadcast"] // 2


def test_bmm_counted_as_fvcore_counts_it_and_with_out():
    """aten::bmm: fvcore's own handle counts a plain bmm; ours agrees and also takes out=."""
    from fvcore.nn import FlopCountAnalysis

    class OutBmm(nn.Module):
        def forward(self, a, b):
            c = torch.empty(a.shape[0], a.shape[1], b.shape[2])
            torch.bmm(a, b, out=c)  # traced as aten::bmm with three inputs
            return c

    a, b = torch.rand(3, 4, 5), torch.rand(3, 5, 6)
    qkv = (a, b.transpose(1, 2), b.transpose(1, 2))  # scores (3,4,5)x(3,5,6), aggregation (3,4,6)x(3,6,5)
    plain = FlopCountAnalysis(Products("bmm"), qkv)  # fvcore alone, its default handles
    assert plain.by_operator()["bmm"] == 3 * 4 * 5 * 6 + 3 * 4 * 6 * 5
    assert fvcore_count(Products("bmm"), qkv).total == plain.total()
    with pytest.raises(AssertionError):  # why the handle is replaced
        FlopCountAnalysis(OutBmm(), (a, b)).total()
    assert fvcore_count(OutBmm(), (a, b)).total == 3 * 4 * 5 * 6


def test_uncounted_ops_listed_with_estimates():
    class Act(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            return F.gelu(self.conv(x)).softmax(1)

    result = fvcore_count(Act(), torch.rand(1, 2, 5, 4))
    assert result.total == 2 * 3 * 9 * 5 * 4
    assert result.uncounted == {"aten::gelu": 1, "aten::softmax": 1}
    assert result.elements == {"aten::gelu": 60, "aten::softmax": 60}


# --- the MSNLAB formula -----------------------------------------------------------------------

#: per-branch chunk budgets that split a 12 x 10 map into query tiles (their rings recomputed)
SMALL_BUDGETS = {3: 14000, 5: 40000, 7: 90000}


@pytest.mark.parametrize("n_feats", [8, 64])  # scores summed along the query rows by the product / by band sums
@pytest.mark.parametrize("patch_sizes, budget", [([3, 5, 7], None), ([3], None), ([3, 5, 7], SMALL_BUDGETS)])
def test_formula_matches_traced_msnlab(patch_sizes, budget, n_feats):
    """fvcore (traced), FlopCounterMode (run) and FlopCounterMode (meta) all equal the formula,
    for both forms; with small chunk budgets the fast form tiles and recomputes halos."""
    from msnlan.models.attention import uses_row_product

    assert all(uses_row_product(n_feats // 2, k) == (n_feats == 8) for k in patch_sizes)
    model = tiny_model(patch_sizes=patch_sizes, n_feats=n_feats, reduction=4 if n_feats == 8 else 16)
    [(name, block)] = find_msnlabs(model)
    for branch in block.modules():
        if hasattr(branch, "max_chunk_elements"):
            branch.max_chunk_elements = None if budget is None else budget[branch.patch_size]
    h, w, c = 12, 10, n_feats
    x = torch.rand(1, c, h, w)
    for form in ("fast", "direct"):
        reduction = 4 if n_feats == 8 else 16
        expected = msnlab_macs(h, w, c, patch_sizes, reduction=reduction, form=form, chunk_elements=budget)
        on_meta = msnlab_macs(h, w, c, patch_sizes, reduction=reduction, form=form, chunk_elements=budget,
                              device_type="meta")
        switch = direct_form(block) if form == "direct" else contextlib.nullcontext(True)
        with switch as switched:
            assert switched
            counts = (fvcore_count(block, x).total, flop_counter_total(block, x),
                      flop_counter_macs(block, x.shape)["total"])
        assert counts == (expected.total, expected.total, on_meta.total), form
    if budget is not None:
        tiled = msnlab_macs(h, w, c, patch_sizes, chunk_elements=budget)
        whole = msnlab_macs(h, w, c, patch_sizes, chunk_elements=UNTILED)
        assert all(t > 1 for t in tiled.tiles.values())
        # output windows overlap; score windows too, but only in the rows a row-summing product skips
        assert tiled.total > whole.total
        assert all(tiled.halo_factors[k] >= whole.halo_factors[k] for k in tiled.halo_factors)


def test_direct_form_is_k2_times_the_fast_attention():
    fast = msnlab_macs(20, 30, 64, [3, 5, 7], form="fast", chunk_elements=UNTILED)
    direct = msnlab_macs(20, 30, 64, [3, 5, 7], form="direct")
    assert fast.convs == direct.convs
    for k in (3, 5, 7):
        # untiled, the fast form's scores cover the image plus its k//2 zero ring, keys likewise
        p = k // 2
        assert fast.halo_factors[f"k{k}"] == round((20 + 2 * p) * (30 + 2 * p) / 600, 4)
        parts_fast, parts_direct = fast.attention_parts[f"k{k}"], direct.attention_parts[f"k{k}"]
        # the fast form's aggregation spans whole padded key rows from k = 5 (extra columns meet zeros)
        hs, ws = 20 + k - 3, 30 + k - 3
        keys_per_row = ws + 2 * p if k >= 5 else ws
        assert parts_direct["aggregation"] * keys_per_row == k * k * parts_fast["aggregation"] * ws
        assert k * k / 3 < parts_direct["scores"] / parts_fast["scores"] < k * k
    # the expected scale: ~15 TMAC for the paper model's fast attention at the x2 720p size, untiled;
    # tiled with the default budget, halos are recomputed (the as-executed figure is larger)
    h, w = lr_size_720p(2)
    untiled = msnlab_macs(h, w, 64, [3, 5, 7], chunk_elements=UNTILED)
    assert 14e12 < untiled.attention < 16e12
    assert msnlab_macs(h, w, 64, [3, 5, 7]).attention > untiled.attention


# --- whole-model counts -----------------------------------------------------------------------

def test_breakdown_sums_to_total_and_analytic_path_agrees():
    model = tiny_model()
    cfg = {**{"n_feats": 8, "patch_sizes": [3, 5, 7], "reduction": 4}}
    traced = count_size(model, cfg, (10, 12))
    analytic = count_size(model, cfg, (10, 12), trace_limit=0)  # MSNLAB from the formula
    assert traced["traced_attention"] and not analytic["traced_attention"]
    for entry in (traced, analytic):
        assert sum(entry["by_module"].values()) == entry["total"]
        assert TOP_LEVEL_REST not in entry["by_module"]  # every MAC happens inside a named part
        assert sum(entry["direct_form"]["by_module"].values()) == entry["direct_form"]["total"]
        assert entry["total_plus"] == 8 * entry["total"]
        assert entry["direct_form"]["total"] > entry["total"]
    assert analytic["total"] == traced["total"]
    assert analytic["by_module"] == traced["by_module"]
    assert analytic["direct_form"]["total"] == traced["direct_form"]["total"]
    for entry in (traced, analytic):
        assert sum(entry["by_operator"].values()) == entry["total"]
    row = traced["msnlab"][next(iter(traced["msnlab"]))]
    assert row["formula_fast_cpu_check"] == row["formula_direct_check"] == "match"
    assert row["direct_form_method"].startswith("fvcore trace")


def test_a_traced_count_leaves_no_traced_values_in_the_buffer_pool():
    """Under torch.jit's trace shapes are traced tensors: buffers given back then would carry them
    in their layout tags, and every later pool lookup would read values back from them."""
    from msnlan.models.attention import POOL

    def tensors_in(tag) -> bool:
        return torch.is_tensor(tag) or (isinstance(tag, tuple) and any(tensors_in(x) for x in tag))

    model = tiny_model()
    POOL.clear()
    count_size(model, {"n_feats": 8, "patch_sizes": [3, 5, 7], "reduction": 4}, (11, 9))
    assert not any(tensors_in(tag) for _, tag in POOL._free)
    with torch.no_grad():
        model(torch.rand(1, 3, 11, 9))  # an eager pass pools its buffers, tagged with plain numbers
    assert any(tag is not None for _, tag in POOL._free) and not any(tensors_in(tag) for _, tag in POOL._free)


def test_total_matches_torch_flop_counter():
    """The whole network: fvcore + our handles agree with FlopCounterMode (no pooling in MSNLAN)."""
    model = tiny_model()
    x = torch.rand(1, 3, 11, 9) * 255
    assert fvcore_count(model, x).total == flop_counter_total(model, x)


def test_runtime_size_forms():
    from msnlan.commands.complexity import _runtime_size
    from msnlan.errors import ConfigError

    assert _runtime_size(["64x48"]) == _runtime_size(["64", "48"]) == (64, 48)
    with pytest.raises(ConfigError, match="'0x5'"):
        _runtime_size(["0x5"])


def test_lr_sizes_for_720p_output():
    from msnlan.complexity.measure import lr_rounding_note

    assert lr_size_720p(2) == (360, 640)
    assert lr_size_720p(3) == (240, 426)  # floored: SR output 1278x720
    assert lr_size_720p(4) == (180, 320)
    assert "1278x720" in lr_rounding_note(3) and "floored" in lr_rounding_note(3)
    assert "floored" not in lr_rounding_note(2)


def test_paper_model_parameters():
    from msnlan.models.network import build_model

    params = count_params(build_model("msnlan", 2))
    assert params["trainable"] == 9_581_043
    assert params["fixed"] == 24
    assert params["total"] == params["trainable"] + params["fixed"] == 9_581_067
    assert params["msnlab"] == 148_688


# --- CLI and JSON -----------------------------------------------------------------------------

def write_tiny_variant(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("_base_: msnlan\ndescription: tiny test width\nmodel:\n  n_feats: 4\n  n_resgroups: 2\n"
                    "  n_resblocks: 1\n  reduction: 2\n")
    return path


def test_cli_writes_complexity_json(tmp_path, capsys):
    from msnlan.cli import main

    out = tmp_path / "complexity" / "tiny" / "x4.json"
    rc = main(["complexity", "--variant", str(write_tiny_variant(tmp_path)), "--scale", "4", "--out", str(out),
               "--device", "cpu", "--runs", "2", "--runtime-size", "16x12"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert [p.name for p in out.parent.iterdir()] == ["x4.json"]  # no temp file left behind
    assert data["variant"] == "tiny" and data["scale"] == 4
    assert set(data["params"]) >= {"total", "trainable", "fixed"}
    m720 = data["macs"]["720p"]
    assert m720["lr_size"] == [180, 320] and m720["hr_size"] == [720, 1280]
    assert set(m720) >= {"total", "by_module", "uncounted", "as_executed", "direct_form"}
    assert sum(m720["by_module"].values()) == m720["total"]
    assert not m720["traced_attention"]  # 57,600 queries: the attention is computed, not run
    row = next(iter(m720["msnlab"].values()))  # few tiles on the meta device: checked there
    assert row["flop_counter_check_fast"]["status"] == row["flop_counter_check_direct"]["status"] == "match"
    assert data["macs"]["48x48"]["lr_size"] == [48, 48]
    assert data["self_ensemble_factor"] == 8
    rt = data["runtime"]
    assert rt["runs"] == 2 and len(rt["times_ms"]) == 2 and rt["lr_size"] == [16, 12]
    assert rt["median_ms"] > 0 and rt["peak_memory_mb"] > 0 and rt["device"].startswith("CPU")
    assert all(rt["load_average_1min"][k] >= 0 for k in ("before", "after"))  # other jobs on the cores
    assert data["tool"]["fvcore"] and data["tool"]["torch"] == torch.__version__


def test_cli_no_runtime_and_bad_input(tmp_path, capsys):
    from msnlan.cli import main

    variant = str(write_tiny_variant(tmp_path))
    out = tmp_path / "x4.json"
    assert main(["complexity", "--variant", variant, "--scale", "4", "--out", str(out), "--no-runtime"]) == 0
    data = json.loads(out.read_text())
    assert data["runtime"]["skipped"] and data["runtime"]["median_ms"] is None
    assert data["macs_plus"] == {size: 8 * e["total"] for size, e in data["macs"].items()}
    before = out.read_text()
    capsys.readouterr()
    assert main(["complexity", "--variant", variant, "--scale", "4", "--out", str(out),
                 "--runtime-size", "64by64"]) == 2
    assert "64by64" in capsys.readouterr().err
    assert main(["complexity", "--variant", str(tmp_path / "missing.yaml"), "--scale", "4",
                 "--out", str(out), "--no-runtime"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["complexity", "--variant", variant, "--scale", "4", "--out", str(out), "--device", "tpu"]) == 2
    assert "'tpu'" in capsys.readouterr().err
    assert main(["complexity", "--variant", variant, "--scale", "5", "--out", str(out), "--no-runtime"]) == 2
    assert "scale 5" in capsys.readouterr().err
    assert main(["complexity", "--variant", variant, "--scale", "4", "--out", str(out), "--runs", "0"]) == 2
    assert "--runs" in capsys.readouterr().err
    assert out.read_text() == before  # a failed run leaves the previous file untouched


def test_cli_several_scales_in_one_process(tmp_path, capsys):
    """One job per variant: `--scale 2 4 --out x2.json x4.json` writes both files, each as one
    `--scale` alone would; mismatched or repeated arguments fail before any file is written."""
    from msnlan.cli import main

    variant = str(write_tiny_variant(tmp_path))
    outs = [tmp_path / "x2.json", tmp_path / "x4.json"]
    assert main(["complexity", "--variant", variant, "--scale", "2", "4", "--out", *map(str, outs),
                 "--no-runtime"]) == 0
    both = [json.loads(p.read_text()) for p in outs]
    assert [d["scale"] for d in both] == [2, 4]
    single = tmp_path / "alone.json"
    assert main(["complexity", "--variant", variant, "--scale", "4", "--out", str(single), "--no-runtime"]) == 0
    alone = json.loads(single.read_text())
    assert alone["macs"] == both[1]["macs"] and alone["params"] == both[1]["params"]
    capsys.readouterr()
    fresh = [tmp_path / "a.json", tmp_path / "b.json"]
    assert main(["complexity", "--variant", variant, "--scale", "2", "4", "--out", str(fresh[0]),
                 "--no-runtime"]) == 2
    assert "--out names 1 value(s) for 2 --scale value(s)" in capsys.readouterr().err
    assert main(["complexity", "--variant", variant, "--scale", "2", "2", "--out", *map(str, fresh),
                 "--no-runtime"]) == 2
    assert "--scale: 2 is named twice" in capsys.readouterr().err
    assert main(["complexity", "--variant", variant, "--scale", "2", "5", "--out", *map(str, fresh),
                 "--no-runtime"]) == 2
    assert "scale 5" in capsys.readouterr().err
    assert not any(p.exists() for p in fresh)  # the bad scale was found before the good one was counted


def test_formula_tiles_follow_the_default_budget(monkeypatch):
    """The formula caches tile plans; a default budget is resolved before the cache, never stale."""
    from msnlan.complexity.formula import msnlab_macs
    from msnlan.models import attention

    whole = msnlab_macs(48, 48, 16, (7,)).tiles["k7"]
    monkeypatch.setattr(attention, "DEFAULT_CHUNK_ELEMENTS", 2 ** 14)
    tiled = msnlab_macs(48, 48, 16, (7,))
    g, tiles = attention.plan_tiles(1, 8, 48, 48, 16, 52, 52, 7, 2 ** 14)
    assert whole == 1 and tiled.tiles["k7"] == len(tiles) > 1
