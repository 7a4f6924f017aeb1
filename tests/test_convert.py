"""Conversion of the authors' checkpoint: key layout, strict loading, round trip, errors, CLI.

The authors' code cannot run here, so the authors' network is re-expressed below as a plain
function over their state_dict keys (written from their released code's key names), and our
converted model must
reproduce it.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from msnlan.cli import main
from msnlan.errors import CheckpointError
from msnlan.models.convert import authors_key_map, convert_authors_checkpoint
from msnlan.models.network import build_model

TSV = Path(__file__).resolve().parents[2] / "shared" / "design" / "authors_state_dict_x2.tsv"
C = 64
RGB_MEAN = torch.tensor([0.4025, 0.4482, 0.4264])


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- the authors' layout


def authors_layout(scale: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the authors' paper model, from their released checkpoints' key names."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)
        shapes[f"{name}.bias"] = (out,)

    conv("sub_mean", 3, 3, 1)
    conv("add_mean", 3, 3, 1)
    conv("head.0", C, 3, 3)
    for g in (0, 1, 2, 3, 5, 6, 7, 8):
        for b in range(9):
            a = f"body.{g}.body.{b}"
            for i in (1, 2, 3):
                conv(f"{a}.branch{i}.0", C, C, 3)
            conv(f"{a}.fusion", C, 3 * C, 1)
            conv(f"{a}.CCA.conv_du.0", C // 16, C, 1)
            conv(f"{a}.CCA.conv_du.2", C, C // 16, 1)
        conv(f"body.{g}.body.9", C, C, 3)
    for i in (1, 2, 3):
        a = f"body.4.atten{i}"
        conv(f"{a}.down_sample.0", C, C, 3)
        shapes[f"{a}.down_sample.1.weight"] = (1,)
        shapes[f"{a}.stoL.escape_NaN"] = (1,)
        for name, out in (("conv_match_1", C // 2), ("conv_match_2", C // 2), ("conv_assembly", C)):
            conv(f"{a}.stoL.{name}.0", out, C, 1)
            shapes[f"{a}.stoL.{name}.1.weight"] = (1,)
    conv("body.4.fusion", C, 3 * C, 1)
    conv("body.4.CA.conv_du.0", C // 16, C, 1)
    conv("body.4.CA.conv_du.2", C, C // 16, 1)
    conv("body.9", C, C, 3)
    conv("fusion", C, 4 * C, 1)
    for i in range(3):
        conv(f"fusion_list.{i}", C, 2 * C, 1)
    conv("tail.0.0", (9 if scale == 3 else 4) * C, C, 3)
    if scale == 4:
        conv("tail.0.2", 4 * C, C, 3)
    conv("tail.1", 3, C, 3)
    return shapes


def read_tsv() -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    return {key: tuple(int(n) for n in shape.split("x")) for key, shape in rows}


def random_authors_state(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the authors' layout (fan-in scaled, realistic mean shifts and PReLU slopes)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in authors_layout(scale).items():
        if key.endswith("escape_NaN"):
            value = torch.tensor([1e-4])
        elif key.startswith(("sub_mean", "add_mean")):
            sign = -1 if key.startswith("sub") else 1
            value = torch.eye(3).view(3, 3, 1, 1) if key.endswith("weight") else sign * 255 * RGB_MEAN
        elif len(shape) == 1 and shape[0] == 1:  # PReLU slope
            value = 0.25 + 0.1 * torch.rand(1, generator=g)
        elif len(shape) == 4:
            value = torch.randn(shape, generator=g) * 0.7 / math.sqrt(math.prod(shape[1:]))
        else:
            value = 0.05 * torch.randn(shape, generator=g)
        state[key] = value
    return state


def test_layout_matches_the_authors_key_list():
    if not TSV.is_file():
        pytest.skip(f"{TSV} not found (design files beside the checkout)")
    assert read_tsv() == authors_layout(2)
    assert len(authors_layout(2)) == 945 and len(authors_layout(4)) == 947


# --------------------------------------------------------------------------- the authors' network, as a function


def _attention(q, e, v, k, scale, eps):
    """Correlation with normalised key patches, softmax over keys, pasting of value patches."""
    p = k // 2
    out = []
    for b in range(q.shape[0]):
        keys = F.unfold(e[b:b + 1], k, padding=p)[0].T.reshape(-1, e.shape[1], k, k)
        norms = keys.flatten(1).norm(dim=1).clamp_min(eps)
        values = F.unfold(v[b:b + 1], k, padding=p)[0].T.reshape(-1, v.shape[1], k, k)
        scores = F.conv2d(F.pad(q[b:b + 1], (p, p, p, p)), keys / norms.view(-1, 1, 1, 1))
        out.append(F.conv_transpose2d(torch.softmax(scale * scores, dim=1), values, padding=p)[0])
    return torch.stack(out)


def authors_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, scale: int) -> torch.Tensor:
    def conv(t, name, pad=None):
        w = sd[f"{name}.weight"]
        return F.conv2d(t, w, sd[f"{name}.bias"], padding=w.shape[-1] // 2 if pad is None else pad)

    def prelu(t, name):
        return F.prelu(t, sd[f"{name}.weight"])

    def gate(t, prefix, stat):
        return t * torch.sigmoid(conv(F.relu(conv(stat, f"{prefix}.conv_du.0")), f"{prefix}.conv_du.2"))

    def rmab(t, a):
        x1 = F.gelu(conv(t, f"{a}.branch1.0"))
        x2 = F.gelu(conv(x1, f"{a}.branch2.0"))
        x3 = F.gelu(conv(x2, f"{a}.branch3.0"))
        f = conv(torch.cat([x1, x2, x3], 1), f"{a}.fusion")
        mean = f.mean(dim=(2, 3), keepdim=True)
        std = ((f - mean) ** 2).mean(dim=(2, 3), keepdim=True).sqrt()
        return t + gate(f, f"{a}.CCA", std + mean)

    def group(t, g):
        h = t
        for b in range(9):
            h = rmab(h, f"body.{g}.body.{b}")
        return t + conv(h, f"body.{g}.body.9")

    def branch(t, a, k):
        s = prelu(conv(t, f"{a}.down_sample.0", pad=k // 2), f"{a}.down_sample.1")
        q = prelu(conv(t, f"{a}.stoL.conv_match_1.0"), f"{a}.stoL.conv_match_1.1")
        e = prelu(conv(s, f"{a}.stoL.conv_match_2.0"), f"{a}.stoL.conv_match_2.1")
        v = prelu(conv(s, f"{a}.stoL.conv_assembly.0"), f"{a}.stoL.conv_assembly.1")
        y = _attention(q, e, v, k, 10.0, float(sd[f"{a}.stoL.escape_NaN"]))
        return t + 0.1 * (y + 0.1 * t)

    def msnlab(t):
        f = conv(torch.cat([branch(t, f"body.4.atten{i}", k) for i, k in ((1, 3), (2, 5), (3, 7))], 1),
                 "body.4.fusion")
        return t + gate(f, "body.4.CA", f.mean(dim=(2, 3), keepdim=True))

    head = conv(conv(x, "sub_mean"), "head.0")
    t, outs = head, []
    for g in range(4):
        t = group(t, g)
        outs.append(t)
    middle = msnlab(conv(torch.cat(outs, 1), "fusion"))
    t = group(middle, 5)
    for i, g in enumerate((6, 7, 8)):
        t = group(conv(torch.cat([t, middle], 1), f"fusion_list.{i}"), g)
    t = conv(t, "body.9") + head
    if scale == 4:
        t = F.pixel_shuffle(conv(F.pixel_shuffle(conv(t, "tail.0.0"), 2), "tail.0.2"), 2)
    else:
        t = F.pixel_shuffle(conv(t, "tail.0.0"), scale)
    return conv(conv(t, "tail.1"), "add_mean")


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_random_authors_state_converts_and_loads_strictly(scale):
    sd = random_authors_state(scale)
    ours = convert_authors_checkpoint(sd, scale)
    model = build_model("msnlan", scale)
    model.load_state_dict(ours, strict=True)
    key_map = authors_key_map(scale)
    weights = [k for k in sd if not k.endswith("escape_NaN")]
    assert sorted(key_map) == sorted(weights), "every authors' weight is consumed, nothing else"
    assert len(set(key_map.values())) == len(key_map) == len(ours)
    for key in weights:
        assert torch.equal(ours[key_map[key]], sd[key])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_our_weights_round_trip_through_the_authors_keys(scale):
    torch.manual_seed(scale)
    model = build_model("msnlan", scale)
    ours = model.state_dict()
    back = {authors: ours[mine] for authors, mine in authors_key_map(scale).items()}
    for i in (1, 2, 3):
        back[f"body.4.atten{i}.stoL.escape_NaN"] = torch.tensor([1e-4])
    assert {k: tuple(v.shape) for k, v in back.items()} == authors_layout(scale)
    converted = convert_authors_checkpoint(back, scale)
    assert list(converted) == list(ours)
    assert all(torch.equal(converted[k], ours[k]) for k in ours)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_converted_model_reproduces_the_authors_network(scale):
    sd = {k: v.double() for k, v in random_authors_state(scale, seed=scale).items()}
    model = build_model("msnlan", scale).double().eval()
    model.load_state_dict(convert_authors_checkpoint(sd, scale), strict=True)
    x = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 255
    with torch.no_grad():
        ours, theirs = model(x), authors_forward(sd, x, scale)
    assert ours.shape == (2, 3, 6 * scale, 5 * scale)
    # the random weights make the output depend on the trunk, not just on the input's upsampling
    assert (ours - authors_forward({**sd, "body.9.bias": sd["body.9.bias"] + 1}, x, scale)).abs().max() > 1e-3
    assert (ours - theirs).abs().max().item() < 1e-9 * theirs.abs().max().item()


def test_wrappers_and_module_prefix_are_accepted():
    sd = random_authors_state(2)
    plain = convert_authors_checkpoint(sd, 2)
    for wrapped in ({"state_dict": sd}, {"model": sd, "epoch": 3},
                    {f"module.{k}": v for k, v in sd.items()}, {"state_dict": {f"module.{k}": v for k, v in sd.items()}}):
        out = convert_authors_checkpoint(wrapped, 2)
        assert list(out) == list(plain) and all(torch.equal(out[k], plain[k]) for k in plain)


def test_escape_nan_buffers_are_optional_but_checked():
    sd = {k: v for k, v in random_authors_state(2).items() if not k.endswith("escape_NaN")}
    assert len(convert_authors_checkpoint(sd, 2)) == 942
    bad = random_authors_state(2)
    bad["body.4.atten2.stoL.escape_NaN"] = torch.tensor([1e-3])
    with pytest.raises(CheckpointError, match=r"body\.4\.atten2\.stoL\.escape_NaN"):
        convert_authors_checkpoint(bad, 2)


def test_missing_key_is_named():
    sd = random_authors_state(2)
    del sd["body.4.atten2.stoL.conv_match_1.1.weight"]
    with pytest.raises(CheckpointError, match=r"missing key 'body\.4\.atten2\.stoL\.conv_match_1\.1\.weight'"):
        convert_authors_checkpoint(sd, 2)


def test_unexpected_key_is_named():
    sd = random_authors_state(2)
    sd["body.4.atten4.down_sample.0.weight"] = torch.zeros(C, C, 3, 3)
    with pytest.raises(CheckpointError, match=r"unexpected key 'body\.4\.atten4\.down_sample\.0\.weight'"):
        convert_authors_checkpoint(sd, 2)


def test_wrong_shape_is_named():
    sd = random_authors_state(2)
    sd["body.6.body.3.fusion.weight"] = torch.zeros(C, 2 * C, 1, 1)
    with pytest.raises(CheckpointError, match=r"'body\.6\.body\.3\.fusion\.weight' has shape 64x128x1x1, "
                                              r"expected 64x192x1x1"):
        convert_authors_checkpoint(sd, 2)


def test_wrong_scale_is_reported():
    with pytest.raises(CheckpointError, match=r"'tail\.0\.0\.weight' has shape 256x64x3x3, expected 576x64x3x3"):
        convert_authors_checkpoint(random_authors_state(2), 3)
    with pytest.raises(CheckpointError, match=r"missing key 'tail\.0\.2\.weight'"):
        convert_authors_checkpoint(random_authors_state(2), 4)
    with pytest.raises(CheckpointError, match=r"unexpected key 'tail\.0\.2\.weight'"):
        convert_authors_checkpoint(random_authors_state(4), 2)


def test_not_a_state_dict():
    with pytest.raises(CheckpointError, match="not a state_dict"):
        convert_authors_checkpoint([1, 2], 2)
    sd = random_authors_state(2)
    sd["head.0.weight"] = [0.0]
    with pytest.raises(CheckpointError, match=r"'head\.0\.weight' holds list"):
        convert_authors_checkpoint(sd, 2)


# --------------------------------------------------------------------------- CLI


def test_cli_convert_writes_a_loadable_weights_file(tmp_path, capsys):
    from msnlan.training.checkpoint import load_model

    sd = random_authors_state(3)
    src, out = tmp_path / "authors_x3.pt", tmp_path / "converted" / "msnlan_x3.pt"
    torch.save({"state_dict": sd}, src)
    assert main(["convert", str(src), str(out), "--scale", "3"]) == 0
    assert "x3" in capsys.readouterr().out
    model = load_model(out)
    assert model.scale == 3 and model.variant["name"] == "msnlan"
    reference = build_model("msnlan", 3).eval()
    reference.load_state_dict(convert_authors_checkpoint(sd, 3), strict=True)
    x = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert [p.name for p in out.parent.iterdir()] == [out.name], "no temp files left behind"


def test_cli_convert_errors(tmp_path, capsys):
    sd = random_authors_state(2)
    del sd["fusion_list.1.bias"]
    src, out = tmp_path / "authors.pt", tmp_path / "out.pt"
    torch.save(sd, src)
    assert main(["convert", str(src), str(out), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "msnlan convert: error:" in err and "fusion_list.1.bias" in err and str(src) in err
    assert not out.exists()
    assert main(["convert", str(tmp_path / "absent.pt"), str(out), "--scale", "2"]) == 2
    assert "absent.pt" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["convert", str(tmp_path / "junk.pt"), str(out), "--scale", "2"]) == 2
    assert "junk.pt" in capsys.readouterr().err and not out.exists()
