"""Inference: chop tiling, x8 self-ensemble, grayscale handling, rounding."""
import numpy as np
import pytest
import torch
from torch import nn

from msnlan.errors import ConfigError, DataError
from msnlan.checks import resolve_device
from msnlan.inference import (ChopPlan, chop_forward, chop_plan, chop_tile_side, default_min_pixels,
                              inference_protocol, upscale, upscale_float)


class SmallConvSR(nn.Module):
    """Local model: receptive field radius 2 LR pixels (< the 10 px overlap)."""

    def __init__(self, scale: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.body(x / 255.0) * 255.0


class NearestUp(nn.Module):
    """Nearest-neighbour upsampler: commutes exactly with flips and transposes."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest") + self.dummy


class GlobalMeanUp(NearestUp):
    """Non-local model: every output pixel depends on the whole input (tiling must change it)."""

    def forward(self, x):
        return super().forward(x) + x.mean(dim=(-2, -1), keepdim=True)


class Recorder(nn.Module):
    """Wraps a model and records the input sizes it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.scale, self.sizes = inner, inner.scale, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.inner(x)


def _lr(h, w, seed=0, gray=False):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w) if gray else (h, w, 3), dtype=np.uint8)


def authors_chop(model, x, scale, shave=10, min_size=4000):
    """The authors' test-time chop, re-implemented here from the stated facts of their code: tile side
    half + shave, then + scale - (half + shave) % scale; always split once; recurse while the rounded
    tile's area >= min_size; each quadrant keeps its own half; pasted without blending. It crashes
    where the rounded tile is larger than the image (as theirs does)."""
    b, c, h, w = x.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + shave, w_half + shave
    h_size += scale - h_size % scale
    w_size += scale - w_size % scale
    lr = [x[:, :, 0:h_size, 0:w_size], x[:, :, 0:h_size, (w - w_size):w],
          x[:, :, (h - h_size):h, 0:w_size], x[:, :, (h - h_size):h, (w - w_size):w]]
    if w_size * h_size < min_size:
        sr = [model(patch) for patch in lr]
    else:
        sr = [authors_chop(model, patch, scale, shave, min_size) for patch in lr]
    H, W, Hh, Wh, Hs, Ws = (scale * v for v in (h, w, h_half, w_half, h_size, w_size))
    out = x.new_zeros(b, c, H, W)
    out[:, :, 0:Hh, 0:Wh] = sr[0][:, :, 0:Hh, 0:Wh]
    out[:, :, 0:Hh, Wh:W] = sr[1][:, :, 0:Hh, (Ws - W + Wh):Ws]
    out[:, :, Hh:H, 0:Wh] = sr[2][:, :, (Hs - H + Hh):Hs, 0:Wh]
    out[:, :, Hh:H, Wh:W] = sr[3][:, :, (Hs - H + Hh):Hs, (Ws - W + Wh):Ws]
    return out


class NonLocalSR(SmallConvSR):
    """Local convolutions plus the input's mean: every output pixel depends on the whole tile, so any
    difference in tiling shows up in the output."""

    def forward(self, x):
        return super().forward(x) + 0.5 * x.mean(dim=(-2, -1), keepdim=True).mean(dim=1, keepdim=True)


def _tensor(lr):
    return torch.from_numpy(lr).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("h,w", [(70, 90), (61, 75), (130, 47), (25, 200)])
def test_chop_is_the_authors_chop(scale, h, w):
    model = NonLocalSR(scale).eval()
    lr = _lr(h, w, seed=h + w)
    x = _tensor(lr)
    min_size = default_min_pixels(scale)
    with torch.inference_mode():
        theirs = authors_chop(model, x, scale, 10, min_size)
        ours = upscale_float(model, x, scale, tile="chop", min_pixels=min_size, overlap=10)
    assert torch.equal(ours, theirs)  # same tiles, same operations: float for float
    assert np.array_equal(upscale(model, lr, tile="chop"),
                          theirs[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy())
    assert not chop_plan(h, w, scale, min_size).whole_pass


def test_chop_is_the_authors_chop_with_the_paper_network_at_small_width():
    from msnlan.models.network import build_model

    for scale, (h, w) in ((2, (70, 90)), (3, (61, 75)), (4, (61, 75))):
        torch.manual_seed(scale)
        model = build_model("msnlan", scale, n_feats=16, n_resgroups=2, n_resblocks=1).eval()
        x = _tensor(_lr(h, w, seed=scale))
        with torch.inference_mode():
            theirs = authors_chop(model, x, scale, 10, default_min_pixels(scale))
            ours = upscale_float(model, x, scale, tile="chop", min_pixels=default_min_pixels(scale))
            whole = model(x)
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-4), (ours - theirs).abs().max()
        assert (ours - whole).abs().max() > 1e-3  # the attention sees one tile at a time


def test_chop_rounds_up_splits_once_and_recurses_on_the_rounded_area():
    rec = Recorder(SmallConvSR(2)).eval()
    # 70 x 90 at x2: sides 35 + 10 = 45 -> 46 and 45 + 10 = 55 -> 56; 46 * 56 = 2576 < 4000: one split
    upscale(rec, _lr(70, 90), tile="chop")
    assert rec.sizes == [(46, 56)] * 4
    assert chop_plan(70, 90, 2, 4000) == ChopPlan(1, (46, 56), False)
    # a full `scale` is added when half + overlap is already a multiple: 40 // 2 + 10 = 30 -> 32
    assert chop_tile_side(40, 2, 10) == 32 and chop_tile_side(41, 3, 10) == 33
    # split at least once even when the image is far below min_pixels
    rec.sizes.clear()
    upscale(rec, _lr(30, 30), tile="chop", min_pixels=100000)
    assert rec.sizes == [(26, 26)] * 4
    # recursion while the rounded area is >= min_pixels: 124 -> 74 (62 + 10 = 72 is even: + 2; 74 * 74 =
    # 5476 >= 4000) -> 48 (37 + 10 = 47 -> 48; 2304 < 4000)
    rec.sizes.clear()
    upscale(rec, _lr(124, 124), tile="chop")
    assert rec.sizes == [(48, 48)] * 16
    assert chop_plan(124, 124, 2, 4000) == ChopPlan(2, (48, 48), False)


@pytest.mark.parametrize("scale,h,w", [(2, 21, 40), (2, 40, 21), (3, 23, 23), (4, 20, 64)])
def test_chop_runs_whole_where_the_authors_code_crashes(scale, h, w):
    model = NonLocalSR(scale).eval()
    lr = _lr(h, w)
    x = _tensor(lr)
    with torch.inference_mode(), pytest.raises(RuntimeError):
        authors_chop(model, x, scale, 10, default_min_pixels(scale))
    plan = chop_plan(h, w, scale, default_min_pixels(scale))
    assert plan == ChopPlan(0, (h, w), True)
    assert np.array_equal(upscale(model, lr, tile="chop"), upscale(model, lr))


def test_chop_plan_tells_what_chop_runs_and_where_the_authors_code_crashes():
    class Sizes(nn.Module):  # records input sizes; the output only has the right shape
        def __init__(self, scale):
            super().__init__()
            self.scale, self.sizes = scale, []

        def forward(self, x):
            self.sizes.append(tuple(x.shape[-2:]))
            return x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)

    for scale in (2, 3, 4):
        for h in (5, 21, 22, 23, 24, 25, 31, 47, 64, 99, 150):
            for w in (7, 23, 26, 45, 80, 133, 400):
                model, x = Sizes(scale), torch.zeros(1, 3, h, w)
                plan = chop_plan(h, w, scale, default_min_pixels(scale))
                chop_forward(model, x, scale, default_min_pixels(scale))
                assert model.sizes == [plan.tile] * 4 ** plan.levels, (scale, h, w)
                model.sizes.clear()
                try:
                    authors_chop(model, x, scale, 10, default_min_pixels(scale))
                    crashed = False
                except RuntimeError:
                    crashed = True
                assert crashed == plan.whole_pass, (scale, h, w)
                assert plan.whole_pass == (plan.levels == 0)  # splitting at least once, unless it crashes


def test_chop_equals_whole_image_for_a_local_model():
    model = SmallConvSR(3).eval()  # receptive field radius 2 <= overlap: tiling changes nothing
    x = _tensor(_lr(95, 83))
    with torch.inference_mode():
        whole = model(x)
        tiled = chop_forward(model, x, 3, 600, 5)
    assert tiled.shape == whole.shape == (1, 3, 285, 249)
    assert torch.max(torch.abs(tiled - whole)).item() < 1e-4


def test_chop_actually_tiles_a_non_local_model():
    model = GlobalMeanUp(2)
    lr = np.zeros((60, 60, 3), np.uint8)
    lr[:30] = 200  # top half bright: the quadrants' means differ from the image mean
    whole = upscale(model, lr)
    tiled = upscale(model, lr, tile="chop", min_pixels=100000)
    assert not np.array_equal(whole, tiled)


def test_chop_refuses_a_threshold_it_can_never_reach():
    # x2, overlap 10: t(24) = 24, a 24 x 24 tile splits into 24 x 24 quadrants forever
    assert chop_tile_side(24, 2, 10) == 24
    with pytest.raises(ConfigError, match="min_pixels 576 is too small for overlap 10 at x2"):
        upscale(SmallConvSR(2), _lr(50, 50), tile="chop", min_pixels=576, overlap=10)
    assert upscale(SmallConvSR(2), _lr(50, 50), tile="chop", min_pixels=577, overlap=10).shape == (100, 100, 3)
    assert upscale(SmallConvSR(2), _lr(30, 30), tile="chop", min_pixels=65, overlap=2).shape == (60, 60, 3)


def test_default_min_pixels_follows_the_authors():
    assert default_min_pixels(2) == 4000 and default_min_pixels(3) == 4000 and default_min_pixels(4) == 3600
    proto = inference_protocol("chop", None, 10, False, 4)
    assert proto["tiling"] == {"mode": "chop", "min_pixels": 3600, "overlap": 10}
    assert "n//2 + overlap + scale - (n//2 + overlap) % scale" in proto["tiling_rule"]
    assert inference_protocol(None, None, 10, True, 2)["tiling"]["mode"] == "none"


def test_self_ensemble_of_flip_equivariant_model_equals_plain_output():
    model = NearestUp(3)
    lr = _lr(13, 21, seed=3)
    plain = upscale(model, lr)
    assert np.array_equal(plain, np.kron(lr, np.ones((3, 3, 1), np.uint8)))
    assert np.array_equal(upscale(model, lr, self_ensemble=True), plain)
    assert np.array_equal(upscale(model, lr, self_ensemble=True, tile="chop", min_pixels=100, overlap=2), plain)


def test_self_ensemble_inverts_each_transform():
    """Reference computed with numpy flips/transposes, independently of the implementation."""
    model = SmallConvSR(2, seed=1).eval()
    lr = _lr(12, 17, seed=5)
    acc = np.zeros((24, 34, 3), np.float64)
    for transpose in (False, True):
        for flip_h in (False, True):
            for flip_w in (False, True):
                a = lr
                a = a[::-1] if flip_h else a
                a = a[:, ::-1] if flip_w else a
                a = a.transpose(1, 0, 2) if transpose else a
                with torch.inference_mode():
                    y = model(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float())[0]
                y = y.permute(1, 2, 0).numpy().astype(np.float64)
                y = y.transpose(1, 0, 2) if transpose else y
                y = y[:, ::-1] if flip_w else y
                y = y[::-1] if flip_h else y
                acc += y
    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        ours = upscale_float(model, x, 2, self_ensemble=True)[0].permute(1, 2, 0).numpy()
    assert np.max(np.abs(ours - acc / 8)) < 1e-3
    plain = upscale(model, lr)
    assert not np.array_equal(upscale(model, lr, self_ensemble=True), plain)


def test_grayscale_goes_through_three_channels_and_back():
    lr = _lr(10, 14, seed=2, gray=True)
    out = upscale(NearestUp(2), lr)
    assert out.shape == (20, 28) and out.dtype == np.uint8
    assert np.array_equal(out, np.kron(lr, np.ones((2, 2), np.uint8)))

    class ChannelOffsets(NearestUp):
        def forward(self, x):  # channel c gets +c: the float mean adds exactly 1
            return super().forward(x) + torch.arange(3.0).view(1, 3, 1, 1)

    lr = np.full((4, 4), 100, np.uint8)
    assert np.all(upscale(ChannelOffsets(2), lr) == 101)


def test_output_is_clamped_and_rounded_half_to_even():
    class Constant(NearestUp):
        def __init__(self, values):
            super().__init__(1)
            self.values = torch.tensor(values).view(1, 3, 1, 1)

        def forward(self, x):
            return torch.zeros_like(x) + self.values

    lr = np.zeros((2, 2, 3), np.uint8)
    assert upscale(Constant([0.5, 1.5, 2.5]), lr)[0, 0].tolist() == [0, 2, 2]
    assert upscale(Constant([-3.0, 254.5, 300.0]), lr)[0, 0].tolist() == [0, 254, 255]


def test_bicubic_method_is_matlab_imresize():
    from msnlan.data.imresize import imresize

    lr = _lr(9, 11, seed=4)
    assert np.array_equal(upscale("bicubic", lr, 3), imresize(lr, 3))
    with pytest.raises(ConfigError):
        upscale("lanczos", lr, 3)


def test_bad_input_is_rejected():
    with pytest.raises(DataError, match="uint8"):
        upscale(NearestUp(2), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DataError, match="shape"):
        upscale(NearestUp(2), np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ConfigError, match="tile"):
        upscale(NearestUp(2), np.zeros((4, 4, 3), np.uint8), tile="grid")
    with pytest.raises(ConfigError, match="scale"):
        upscale(NearestUp(2), np.zeros((4, 4, 3), np.uint8), scale=3)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="gpu0"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda:0")


def test_evaluation_protocol_lists_the_whole_image_passes(tmp_path):
    from PIL import Image

    from msnlan.evaluation import evaluate_method

    (tmp_path / "Set" / "HR").mkdir(parents=True)
    for name, size in (("small", (42, 60)), ("large", (90, 100))):  # LR 21 x 30 (whole pass) and 45 x 50 at x2
        Image.fromarray(_lr(*size, seed=1)).save(tmp_path / "Set" / "HR" / f"{name}.png")
    variant = tmp_path / "tiny.yaml"
    variant.write_text("_base_: msnlan\ndescription: tiny\nmodel: {n_feats: 8, n_resgroups: 1, n_resblocks: 1, "
                       "patch_sizes: [3], reduction: 4}\n")
    proto = evaluate_method(str(variant), tmp_path / "Set", 2, tmp_path / "out.csv", random_init=True, tile="chop",
                            device="cpu", log_line=lambda _: None)
    assert proto["chop_whole_passes"] == [{"image": "small", "lr_size": [21, 30]}]
    assert "run whole" in proto["tiling_rule"]
    proto = evaluate_method(str(variant), tmp_path / "Set", 2, tmp_path / "out2.csv", random_init=True,
                            device="cpu", log_line=lambda _: None)
    assert proto["chop_whole_passes"] is None
