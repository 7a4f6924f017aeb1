"""The generic MSNLAN network: every registered variant at a tiny width, and the paper model's counts."""
from __future__ import annotations

import pytest
import torch

from msnlan.errors import ConfigError
from msnlan.models.blocks import ContrastChannelAttention, MeanShift
from msnlan.models.msnlab import MSNLAB, configure_attention
from msnlan.models.network import MSNLAN, build_model, count_parameters
from msnlan.variants import list_variants, resolve_variant

VARIANTS = list_variants()
#: reduction 4 keeps a 4-channel attention bottleneck (16 // 16 = 1 channel could be a dead ReLU)
TINY = {"n_feats": 16, "n_resgroups": 4, "n_resblocks": 1, "reduction": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(variant: str, scale: int = 2, **extra) -> MSNLAN:
    return build_model(variant, scale, **{**TINY, **extra})


def lr_batch(n: int, h: int, w: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 255


# --------------------------------------------------------------------------- every variant


def test_every_paper_ablation_is_registered():
    assert {"msnlan", "no_msnlab", "single_scale", "no_dense_skips", "rcab"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes(variant, scale):
    torch.manual_seed(0)
    model = tiny(variant, scale).eval()
    with torch.no_grad():
        for h, w in [(1, 1), (5, 3), (4, 7)]:
            out = model(lr_batch(2, h, w))
            assert out.shape == (2, 3, scale * h, scale * w)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_trainable_parameter(variant):
    torch.manual_seed(0)
    model = tiny(variant)
    # a channel-attention bottleneck whose ReLU is off for every input passes exactly zero
    # gradient to its squeeze conv and its excite weight: record those, allow only them
    dead: set[str] = set()
    for name, module in model.named_modules():
        if name.endswith("attention"):
            module.reduce.register_forward_hook(
                lambda m, i, out, name=name: dead.add(name) if (out <= 0).all() else None)
    hr = lr_batch(2, 12, 10, seed=1)
    loss = (model(lr_batch(2, 6, 5)) - hr).abs().mean()
    loss.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"fixed parameter {name} got a gradient"
            continue
        assert p.grad is not None, f"{name} is not part of the computation"
        owner = name.rsplit(".", 2)[0]
        may_be_zero = owner in dead and (".reduce." in name or name.endswith("expand.weight"))
        assert may_be_zero or p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert len(dead) < 4, "nearly all attention gates are off: the check lost its power"


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_seed_same_weights_and_outputs(variant):
    x = lr_batch(1, 5, 6)
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        model = tiny(variant).eval()
        with torch.no_grad():
            results.append((model.state_dict(), model(x)))
    (sd_a, out_a), (sd_b, out_b) = results
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert torch.equal(out_a, out_b)
    torch.manual_seed(124)
    other = tiny(variant)
    assert not all(torch.equal(sd_a[k], other.state_dict()[k]) for k in sd_a)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_equals_one_by_one(variant):
    torch.manual_seed(0)
    model = tiny(variant).double().eval()
    x = lr_batch(3, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert (batched - single).abs().max().item() < 1e-9


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_settings_are_stored_and_applied(variant):
    model = tiny(variant, 3)
    resolved = resolve_variant(variant, **TINY)
    assert model.scale == 3 and model.variant == resolved
    settings = resolved["model"]
    assert len(model.groups) == settings["n_resgroups"]
    assert (model.msnlab is not None) == settings["msnlab"]
    if settings["msnlab"]:
        assert [b.patch_size for b in model.msnlab.branches] == list(settings["patch_sizes"])
    block_type = type(model.groups[0].blocks[0]).__name__.lower()
    assert block_type == settings["block"]
    assert (model.dense_fusion is not None) == settings["dense_skips"]
    # a resolved variant (as checkpoints store it) rebuilds the same network
    again = build_model(model.variant, 3)
    assert again.variant["name"] == variant
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- the paper model


@pytest.mark.parametrize("scale,trainable,total", [
    (2, 9_581_043, 9_581_067), (3, 9_765_683, 9_765_707), (4, 9_728_755, 9_728_779),
])
def test_paper_parameter_counts(scale, trainable, total):
    model = build_model("msnlan", scale)
    assert count_parameters(model) == {"total": total, "trainable": trainable, "fixed": 24}
    assert sum(p.numel() for p in model.msnlab.parameters()) == 148_688
    assert len(model.groups) == 8 and all(len(g.blocks) == 9 for g in model.groups)
    assert len(model.skip_fusions) == 3


def test_mean_shift_is_fixed():
    model = build_model("msnlan", 2)
    for shift, sign in ((model.sub_mean, -1), (model.add_mean, 1)):
        assert isinstance(shift, MeanShift)
        assert not shift.weight.requires_grad and not shift.bias.requires_grad
        assert torch.equal(shift.weight.view(3, 3), torch.eye(3))
        assert torch.allclose(shift.bias, sign * 255 * torch.tensor([0.4025, 0.4482, 0.4264]))
    x = lr_batch(1, 2, 2)
    assert torch.allclose(model.add_mean(model.sub_mean(x)), x, atol=1e-4)


def test_cca_uses_population_std():
    cca = ContrastChannelAttention(4, 2)
    x = torch.randn(1, 4, 3, 5)
    stat = x.std(dim=(2, 3), unbiased=False, keepdim=True) + x.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(cca.expand(torch.relu(cca.reduce(stat))))
    assert torch.allclose(cca(x), x * gate, atol=1e-6)


# --------------------------------------------------------------------------- wiring (dense skips)


def _record_inputs_outputs(model: MSNLAN):
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    modules = {f"group{i}": g for i, g in enumerate(model.groups)}
    modules.update({f"skip{i}": f for i, f in enumerate(model.skip_fusions)})
    for name in ("msnlab", "dense_fusion", "head", "trunk_end"):
        if getattr(model, name) is not None:
            modules[name] = getattr(model, name)
    for name, module in modules.items():
        module.register_forward_hook(lambda m, inp, out, name=name: seen.__setitem__(name, (inp[0], out)))
    return seen


@pytest.mark.parametrize("n_resgroups", [1, 2, 4, 5])
@pytest.mark.parametrize("msnlab", [True, False])
def test_dense_skip_wiring(n_resgroups, msnlab):
    torch.manual_seed(0)
    model = tiny("msnlan", n_resgroups=n_resgroups, msnlab=msnlab).eval()
    seen = _record_inputs_outputs(model)
    with torch.no_grad():
        model(lr_batch(1, 5, 4))
    before = n_resgroups // 2
    assert model.n_before == before and len(model.skip_fusions) == max(0, n_resgroups - before - 1)
    if before:  # the groups before the MSNLAB are concatenated into the dense fusion
        expected = torch.cat([seen[f"group{i}"][1] for i in range(before)], dim=1)
        assert torch.equal(seen["dense_fusion"][0], expected)
        middle_in = seen["dense_fusion"][1]
    else:
        assert model.dense_fusion is None
        middle_in = seen["head"][1]
    if msnlab:
        assert torch.equal(seen["msnlab"][0], middle_in)
        middle = seen["msnlab"][1]
    else:
        middle = middle_in  # the dense fusion output takes the MSNLAB's place
    assert torch.equal(seen[f"group{before}"][0], middle)
    for i in range(before + 1, n_resgroups):
        fusion_in, fusion_out = seen[f"skip{i - before - 1}"]
        assert torch.equal(fusion_in, torch.cat([seen[f"group{i - 1}"][1], middle], dim=1))
        assert torch.equal(seen[f"group{i}"][0], fusion_out)
    assert torch.equal(seen["trunk_end"][0], seen[f"group{n_resgroups - 1}"][1])


@pytest.mark.parametrize("n_resgroups", [1, 3, 4])
def test_no_dense_skips_is_sequential(n_resgroups):
    torch.manual_seed(0)
    model = tiny("no_dense_skips", n_resgroups=n_resgroups).eval()
    assert model.dense_fusion is None and len(model.skip_fusions) == 0
    seen = _record_inputs_outputs(model)
    with torch.no_grad():
        model(lr_batch(1, 4, 5))
    before = n_resgroups // 2
    chain = [f"group{i}" for i in range(before)] + ["msnlab"] + [f"group{i}" for i in range(before, n_resgroups)]
    assert torch.equal(seen[chain[0]][0], seen["head"][1])
    for prev, nxt in zip(chain, chain[1:]):
        assert torch.equal(seen[nxt][0], seen[prev][1]), f"{nxt} does not take {prev}'s output"


def test_global_residual_and_tail():
    torch.manual_seed(0)
    model = tiny("msnlan", 4).eval()
    x = lr_batch(1, 3, 4)
    with torch.no_grad():
        head = model.head(model.sub_mean(x))
        features = model.trunk_end(model._trunk(head)) + head
        # on the CPU the upsampler and the last conv run channels_last (faster there); the output
        # comes back in the default layout and equals the default layout's result up to rounding
        relaid = features.contiguous(memory_format=torch.channels_last)
        expected = model.add_mean(model.to_rgb(model.upsample(relaid)))
        out = model(x)
        assert torch.equal(out, expected) and out.is_contiguous()
        default_layout = model.add_mean(model.to_rgb(model.upsample(features)))
        assert default_layout.is_contiguous() and not expected.is_contiguous()
        assert torch.allclose(out, default_layout, rtol=1e-5, atol=1e-3)
    assert [type(m).__name__ for m in model.upsample] == ["Conv2d", "PixelShuffle", "Conv2d", "PixelShuffle"]


def test_attention_forms_agree_in_the_network():
    torch.manual_seed(0)
    model = tiny("msnlan").double().eval()
    x = lr_batch(2, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        fast = model(x)
        configure_attention(model, "direct")
        direct = model(x)
        configure_attention(model, "fast", max_chunk_elements=500)
        chunked = model(x)
    assert (fast - direct).abs().max() < 1e-9 and (fast - chunked).abs().max() < 1e-9
    assert configure_attention(build_model("no_msnlab", 2, **TINY), "direct") == 0


# --------------------------------------------------------------------------- build_model input


def test_build_model_accepts_path_and_mapping(repo_root):
    path = repo_root / "ablations" / "single_scale.yaml"
    by_path = build_model(path, 2, **TINY)
    assert by_path.variant["name"] == "single_scale"
    mapping = {"_base_": "msnlan", "model": {**TINY, "patch_sizes": [5]}}
    by_map = build_model(mapping, 3)
    assert [b.patch_size for b in by_map.msnlab.branches] == [5] and by_map.scale == 3
    flat = build_model({**resolve_variant("msnlan")["model"], **TINY, "block": "rcab"}, 2)
    assert type(flat.groups[0].blocks[0]).__name__ == "RCAB"


@pytest.mark.parametrize("bad", [1, 5, 8, 2.5, "x2", None])
def test_bad_scale_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="scale"):
        build_model("msnlan", bad, **TINY)


def test_bad_variant_and_override_are_config_errors():
    with pytest.raises(ConfigError, match="unknown variant"):
        build_model("no_such_variant", 2)
    with pytest.raises(ConfigError, match="n_colors"):
        build_model("msnlan", 2, n_colors=1)
    with pytest.raises(ConfigError, match="block"):
        build_model("msnlan", 2, block="resnet")
    with pytest.raises(ConfigError, match="n_feats"):
        build_model("msnlan", 2, n_feats=1, reduction=1)


def test_forward_rejects_wrong_channels():
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        tiny("msnlan")(torch.rand(1, 1, 4, 4))


def test_msnlab_is_the_block_class():
    assert isinstance(tiny("msnlan").msnlab, MSNLAB)
