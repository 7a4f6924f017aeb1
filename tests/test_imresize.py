"""MATLAB-exact bicubic imresize: hand-checked values, a per-pixel reference, the MATLAB-made LR files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import msnlan
from msnlan.data.imresize import cubic_kernel, imresize, output_size, resize_weights
from msnlan.errors import DataError

SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.5]


def _loop_resize_axis0(image: np.ndarray, out_size: int, scale: float) -> np.ndarray:
    """Per-pixel transcription of MATLAB's contributions() + resize, one output pixel at a time."""
    in_size = image.shape[0]
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.empty((out_size,) + image.shape[1:], dtype=np.uint8)
    for x in range(1, out_size + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + p for p in range(math.ceil(width) + 2)]
        if scale < 1:
            w = [scale * float(cubic_kernel(scale * (u - j))) for j in idx]
        else:
            w = [float(cubic_kernel(u - j)) for j in idx]
        total = sum(w)
        acc = np.zeros(image.shape[1:], dtype=np.float64)
        for j, wj in zip(idx, w):
            acc = acc + (wj / total) * image[min(max(j, 1), in_size) - 1].astype(np.float64)
        out[x - 1] = np.clip(np.floor(acc + 0.5), 0, 255).astype(np.uint8)
    return out


def _loop_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    rows = _loop_resize_axis0(image, math.ceil(round(h * scale, 9)), scale)
    cols = _loop_resize_axis0(np.swapaxes(rows, 0, 1), math.ceil(round(w * scale, 9)), scale)
    return np.swapaxes(cols, 0, 1)


def test_exported_from_package():
    assert msnlan.imresize is imresize


def test_cubic_kernel_values():
    x = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5, -0.25, -1.75])
    expected = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0, 0.8671875, -0.0234375]
    np.testing.assert_array_equal(cubic_kernel(x), expected)


def test_enlarge_x2_weights_by_hand():
    weights, indices = resize_weights(8, 16, 2.0)
    # Output pixel 4 (1-based) sits at u = 4/2 + 0.25 = 2.25: taps at 1..4 (1-based), 0..3 here.
    nonzero = weights[3] != 0
    np.testing.assert_array_equal(indices[3][nonzero], [0, 1, 2, 3])
    np.testing.assert_array_equal(weights[3][nonzero], [-0.0703125, 0.8671875, 0.2265625, -0.0234375])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_edge_indices_are_clamped_not_mirrored():
    weights, indices = resize_weights(10, 5, 0.5)
    assert indices.min() == 0 and indices.max() == 9
    # The first output pixel (u = 1.5, width 8) reaches 1-based indices -2..5: the out-of-range
    # ones all map to index 0 (replicate), mirroring would map them to 1, 2, ...
    assert list(indices[0][:4]) == [0, 0, 0, 0]


def test_hand_checked_pixel_enlarging_a_step():
    column = np.array([0, 0, 255, 255], dtype=np.uint8)[:, None]
    out = imresize(column, 2)
    assert out.shape == (8, 2)
    # u = 2.25: -0.0703125*0 + 0.8671875*0 + 0.2265625*255 - 0.0234375*255 = 51.796875 -> 52
    assert out[3, 0] == 52 and out[3, 1] == 52
    # Symmetric counterpart: 255 - 51.796875 = 203.203125 -> 203
    assert out[4, 0] == 203
    assert out[0, 0] == 0 and out[7, 0] == 255  # clamped edges of a constant run stay constant


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("channels", [None, 3])
def test_constant_image_stays_constant(scale, channels):
    shape = (13, 17) if channels is None else (13, 17, channels)
    image = np.full(shape, 173, dtype=np.uint8)
    out = imresize(image, scale)
    assert out.dtype == np.uint8
    assert out.shape[:2] == (math.ceil(round(13 * scale, 9)), math.ceil(round(17 * scale, 9)))
    assert np.all(out == 173)


def test_ramp_is_reproduced_in_the_interior_when_shrinking():
    # A linear ramp 10*i (0-based i): the normalised symmetric kernel reproduces linear functions, so
    # output x (1-based) sampling u = 2x - 0.5 (1-based) gives 10*(u - 1) = 20x - 15 away from the border.
    ramp = (10 * np.arange(26)).astype(np.uint8)[:, None].repeat(3, axis=1)
    out = imresize(ramp, 0.5)
    assert out.shape == (13, 2)
    x = np.arange(1, 14)
    interior = (2 * x - 0.5 - 4 >= 1) & (2 * x - 0.5 + 4 <= 26)
    assert interior.sum() == 9
    np.testing.assert_array_equal(out[interior, 0], (20 * x - 15)[interior])
    # First pixel by hand, taps at 1-based -2..5 with weights (-3, -9, 29, 111, 111, 29, -9, -3)/256:
    # replicate padding reads (0, 0, 0, 0, 10, 20, 30, 40) -> 5.078125 -> 5; mirroring would read
    # (20, 10, 0, 0, 10, 20, 30, 40) -> 4.49 -> 4.
    assert out[0, 0] == 5


@pytest.mark.parametrize("scale", SCALES)
def test_matches_per_pixel_reference_on_odd_sizes(scale):
    rng = np.random.default_rng(int(scale * 1000))
    image = rng.integers(0, 256, size=(23, 19, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(image, scale), _loop_imresize(image, scale))


def test_rounding_happens_after_each_pass():
    # Two passes rounded separately differ from one float pass rounded once on some pixels;
    # the per-pixel reference rounds after each pass and must agree exactly.
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(40, 40), dtype=np.uint8)
    out = imresize(image, 1 / 3)
    np.testing.assert_array_equal(out, _loop_imresize(image, 1 / 3))
    w0, i0 = resize_weights(40, 14, 1 / 3)
    single = np.einsum("ap,bq,apbq->ab", w0, w0, image.astype(np.float64)[i0][:, :, i0])
    single = np.clip(np.floor(single + 0.5), 0, 255).astype(np.uint8)
    assert np.any(single != out)


@pytest.mark.parametrize("shape", [(37, 23), (37, 23, 3), (5, 7), (1, 1, 3)])
def test_output_sizes_follow_ceil(shape):
    image = np.zeros(shape, dtype=np.uint8)
    for scale in (1 / 2, 1 / 3, 1 / 4, 2, 3, 4):
        out = imresize(image, scale)
        expected = tuple(math.ceil(round(n * scale, 9)) for n in shape[:2])
        assert out.shape[:2] == expected
        assert out.ndim == len(shape) and out.shape[2:] == shape[2:]


def test_output_size_is_immune_to_float_error():
    assert output_size(255, 1 / 3) == 85
    assert output_size(30, 0.1) == 3  # 30 * 0.1 == 3.0000000000000004 in float64
    assert output_size(31, 0.1) == 4


def test_rgb_channels_are_resized_independently():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(21, 30, 3), dtype=np.uint8)
    out = imresize(rgb, 1 / 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], imresize(np.ascontiguousarray(rgb[:, :, c]), 1 / 3))


def test_enlarging_lr_gives_hr_shape():
    rng = np.random.default_rng(5)
    for s in (2, 3, 4):
        hr = rng.integers(0, 256, size=(12 * s + s, 7 * s, 3), dtype=np.uint8)
        lr = imresize(hr, 1 / s)
        assert lr.shape == (hr.shape[0] // s, hr.shape[1] // s, 3)
        assert imresize(lr, s).shape == hr.shape


def test_output_shape_argument():
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, size=(24, 36), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(image, output_shape=(12, 18)), imresize(image, 0.5))
    out = imresize(image, output_shape=(10, 50))
    assert out.shape == (10, 50)
    # Different scales per axis: the axis shrunk most goes first, each with its own scale.
    rows = _loop_resize_axis0(image, 10, 10 / 24)
    expected = np.swapaxes(_loop_resize_axis0(np.swapaxes(rows, 0, 1), 50, 50 / 36), 0, 1)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros((8, 8), np.float32), {"scale": 0.5}, "uint8"),
        (np.zeros((8, 8), np.uint16), {"scale": 0.5}, "uint16"),
        (np.zeros((8,), np.uint8), {"scale": 0.5}, r"\(8,\)"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"scale": 0.5}, "shape"),
        (np.zeros((0, 8), np.uint8), {"scale": 0.5}, "empty"),
        (np.zeros((8, 8), np.uint8), {"scale": 0}, "0"),
        (np.zeros((8, 8), np.uint8), {"scale": -2}, "-2"),
        (np.zeros((8, 8), np.uint8), {"scale": float("nan")}, "nan"),
        (np.zeros((8, 8), np.uint8), {"scale": float("inf")}, "inf"),
        (np.zeros((8, 8), np.uint8), {"scale": "2"}, "'2'"),
        (np.zeros((8, 8), np.uint8), {"scale": True}, "True"),
        (np.zeros((8, 8), np.uint8), {}, "exactly one"),
        (np.zeros((8, 8), np.uint8), {"scale": 2, "output_shape": (4, 4)}, "exactly one"),
        (np.zeros((8, 8), np.uint8), {"output_shape": (4, 0)}, r"\(4, 0\)"),
        (np.zeros((8, 8), np.uint8), {"output_shape": (4.5, 4)}, "4.5"),
        (np.zeros((8, 8), np.uint8), {"output_shape": (4,)}, "two integers"),
    ],
)
def test_bad_inputs_raise_data_error(image, kwargs, match):
    with pytest.raises(DataError, match=match):
        imresize(image, **kwargs)


def test_non_array_input_is_rejected():
    with pytest.raises(DataError, match="list"):
        imresize([[1, 2], [3, 4]], 2)


@pytest.mark.data
def test_reproduces_every_matlab_reference_lr_pixel(shared_data: Path):
    from PIL import Image

    files = sorted((shared_data / "reference_lr").glob("*/x*/*.png"))
    assert len(files) == 57, f"expected 57 reference LR files, found {len(files)}"
    mismatches = []
    for lr_path in files:
        scale = int(lr_path.parent.name[1:])
        benchmark = lr_path.parent.parent.name
        with Image.open(shared_data / "benchmarks" / benchmark / "HR" / lr_path.name) as im:
            hr = np.asarray(im)
        with Image.open(lr_path) as im:
            reference = np.asarray(im)
        h, w = hr.shape[:2]
        out = imresize(hr[: h - h % scale, : w - w % scale], 1 / scale)
        if out.shape != reference.shape:
            mismatches.append(f"{lr_path}: shape {out.shape} vs {reference.shape}")
        elif np.any(out != reference):
            n = int(np.count_nonzero(out != reference))
            mismatches.append(f"{lr_path}: {n} pixels differ")
    assert not mismatches, "\n".join(mismatches)
    # bridge is grayscale (mode L) and must have stayed 2-D through the whole path
    bridge = np.asarray(Image.open(shared_data / "reference_lr" / "Set14" / "x2" / "bridge.png"))
    assert bridge.ndim == 2
