"""Inference: chop tiling, x8 self-ensemble, grayscale handling, rounding."""
import numpy as np
import pytest
import torch
from torch import nn

from msnlan.errors import ConfigError, DataError
from msnlan.checks import resolve_device
from msnlan.inference import (chop_forward, default_min_pixels, inference_protocol,
                              upscale, upscale_float)


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


@pytest.mark.parametrize("scale,h,w,min_pixels,overlap", [(2, 47, 61, 400, 5), (3, 40, 33, 300, 4),
                                                          (4, 64, 64, 3600, 10), (2, 30, 90, 150, 3)])
def test_chop_equals_whole_image_for_a_local_model(scale, h, w, min_pixels, overlap):
    model = SmallConvSR(scale).eval()  # receptive field radius 2 <= overlap: tiling changes nothing
    x = torch.from_numpy(_lr(h, w)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        whole = model(x)
        tiled = chop_forward(model, x, scale, min_pixels, overlap)
    assert tiled.shape == whole.shape == (1, 3, h * scale, w * scale)
    assert torch.max(torch.abs(tiled - whole)).item() < 1e-4


def test_chop_recursion_respects_min_pixels_and_overlap():
    rec = Recorder(SmallConvSR(2)).eval()
    lr = _lr(100, 80)
    out = upscale(rec, lr, tile="chop", min_pixels=700, overlap=10)
    assert out.shape == (200, 160, 3)
    # level 1: 60x50 = 3000 >= 700 -> split; level 2: 40x35 = 1400 -> split; level 3: 30x27 = 810
    # -> split; level 4: 25x23 = 575 < 700 -> the model runs on 4^4 tiles of 25x23
    assert set(rec.sizes) == {(25, 23)}
    assert len(rec.sizes) == 4 ** 4
    assert np.array_equal(out, upscale(rec.inner, lr))


def test_chop_actually_tiles_a_non_local_model():
    model = GlobalMeanUp(2)
    lr = np.zeros((60, 60, 3), np.uint8)
    lr[:30] = 200  # top half bright: the quadrants' means differ from the image mean
    whole = upscale(model, lr)
    tiled = upscale(model, lr, tile="chop", min_pixels=100000)
    assert not np.array_equal(whole, tiled)


def test_chop_stops_when_tiles_cannot_shrink():
    rec = Recorder(SmallConvSR(2)).eval()
    out = upscale(rec, _lr(15, 15), tile="chop", min_pixels=401, overlap=10)
    assert out.shape == (30, 30, 3)
    assert rec.sizes == [(15, 15)]  # the quadrants would be the whole image: one pass
    assert np.array_equal(out, upscale(rec.inner, _lr(15, 15)))


def test_chop_refuses_a_threshold_it_can_never_reach():
    # quadrants never get below (2 * overlap)^2 pixels: the authors' recursion would not end
    with pytest.raises(ConfigError, match="min_pixels 400 is too small for overlap 10"):
        upscale(SmallConvSR(2), _lr(50, 50), tile="chop", min_pixels=400, overlap=10)
    assert upscale(SmallConvSR(2), _lr(30, 30), tile="chop", min_pixels=40, overlap=2).shape == (60, 60, 3)


def test_default_min_pixels_follows_the_authors():
    assert default_min_pixels(2) == 4000 and default_min_pixels(3) == 4000 and default_min_pixels(4) == 3600
    proto = inference_protocol("chop", None, 10, False, 4)
    assert proto["tiling"] == {"mode": "chop", "min_pixels": 3600, "overlap": 10}
    assert inference_protocol(None, None, 10, True, 2)["tiling"]["mode"] == "none"


def test_self_ensemble_of_flip_equivariant_model_equals_plain_output():
    model = NearestUp(3)
    lr = _lr(13, 21, seed=3)
    plain = upscale(model, lr)
    assert np.array_equal(plain, np.kron(lr, np.ones((3, 3, 1), np.uint8)))
    assert np.array_equal(upscale(model, lr, self_ensemble=True), plain)
    assert np.array_equal(upscale(model, lr, self_ensemble=True, tile="chop", min_pixels=50, overlap=2), plain)


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
