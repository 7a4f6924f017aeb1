"""Dataset layouts, LR generation and checks, prepare/manifest/cache."""
import json

import numpy as np
import pytest
from PIL import Image

from msnlan.data import datasets as ds_mod
from msnlan.data.datasets import LR_GENERATED, load_dataset, modcrop, prepare_dataset, read_manifest
from msnlan.data.imresize import imresize
from msnlan.errors import DataError


def _img(h, w, seed=0, gray=False):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _ours(root, sizes=((26, 31), (20, 24)), gray_last=False):
    hrs = {}
    for i, (h, w) in enumerate(sizes):
        gray = gray_last and i == len(sizes) - 1
        hrs[f"im{i}"] = _save(root / "HR" / f"im{i}.png", _img(h, w, seed=i, gray=gray))
    return hrs


def test_ours_layout_generates_matlab_lr(tmp_path):
    hrs = _ours(tmp_path / "SetX", gray_last=True)
    ds = load_dataset(tmp_path / "SetX", 3)
    assert (ds.name, ds.layout, ds.scale) == ("SetX", "ours", 3)
    assert [p.name for p in ds.items] == ["im0", "im1"]
    for pair in ds.items:
        hr = modcrop(hrs[pair.name], 3)
        assert np.array_equal(pair.hr, hr)
        assert pair.hr.shape[0] % 3 == 0 and pair.hr.shape[1] % 3 == 0
        assert np.array_equal(pair.lr, imresize(hr, 1 / 3))
        assert pair.lr_source == LR_GENERATED
    assert ds.items[0].hr.shape == (24, 30, 3)
    assert ds.items[1].hr.ndim == 2 and ds.items[1].lr.ndim == 2  # grayscale stays grayscale
    assert ds.lr_source == LR_GENERATED
    # the HR folder itself names the same dataset
    assert load_dataset(tmp_path / "SetX" / "HR", 3).name == "SetX"


def test_ours_layout_uses_given_lr(tmp_path):
    root = tmp_path / "SetY"
    _ours(root)
    lrs = {"im0": _save(root / "LR" / "x2" / "im0.png", _img(13, 15, seed=10)),
           "im1": _save(root / "LR" / "x2" / "im1.png", _img(10, 12, seed=11))}
    ds = load_dataset(root, 2)
    for pair in ds.items:
        assert np.array_equal(pair.lr, lrs[pair.name])
        assert pair.lr_source == f"given: {root.resolve() / 'LR' / 'x2' / (pair.name + '.png')}"
    assert ds.lr_source == f"given: {root.resolve() / 'LR' / 'x2'}"
    # no LR/x4 folder: generated at x4
    assert load_dataset(root, 4).lr_source == LR_GENERATED


def test_given_lr_must_match_hr_size(tmp_path):
    root = tmp_path / "SetZ"
    _ours(root, sizes=((26, 31),))
    _save(root / "LR" / "x2" / "im0.png", _img(13, 16))  # HR modcrop 26x30 -> LR must be 13x15
    with pytest.raises(DataError) as exc:
        load_dataset(root, 2)
    msg = str(exc.value)
    assert "HR/im0.png" in msg and "LR/x2/im0.png" in msg and "31x26" in msg and "16x13" in msg and "15x13" in msg


def test_given_lr_folder_missing_an_image(tmp_path):
    root = tmp_path / "SetW"
    _ours(root)
    _save(root / "LR" / "x2" / "im0.png", _img(13, 15))
    with pytest.raises(DataError, match="no LR image for HR file .*im1.png"):
        load_dataset(root, 2)


def test_given_lr_channels_must_match(tmp_path):
    root = tmp_path / "SetG"
    _ours(root, sizes=((20, 20),))
    _save(root / "LR" / "x2" / "im0.png", _img(10, 10, gray=True))
    with pytest.raises(DataError, match="same number of channels"):
        load_dataset(root, 2)


def test_authors_layout(tmp_path):
    root = tmp_path / "Set5"
    hr = _save(root / "GTmod12" / "baby.png", _img(24, 36))
    lr = _save(root / "LRbicx2" / "baby.png", _img(12, 18, seed=3))
    ds = load_dataset(root, 2)
    assert (ds.name, ds.layout) == ("Set5", "authors")
    assert np.array_equal(ds.items[0].hr, hr) and np.array_equal(ds.items[0].lr, lr)
    assert ds.items[0].lr_source.startswith("given: ")
    assert load_dataset(root, 3).items[0].lr_source == LR_GENERATED


def test_div2k_layout(tmp_path):
    root = tmp_path / "DIV2K"
    hr = _save(root / "DIV2K_train_HR" / "0001.png", _img(20, 28))
    _save(root / "DIV2K_train_HR" / "0002.png", _img(16, 16, seed=1))
    lr1 = _save(root / "DIV2K_train_LR_bicubic" / "X2" / "0001x2.png", _img(10, 14, seed=5))
    lr2 = _save(root / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png", _img(8, 8, seed=6))
    for path in (root, root / "DIV2K_train_HR"):
        ds = load_dataset(path, 2)
        assert (ds.name, ds.layout) == ("DIV2K_train", "div2k")
        assert ds.names == ["0001", "0002"]
        assert np.array_equal(ds.items[0].hr, hr)
        assert np.array_equal(ds.items[0].lr, lr1) and np.array_equal(ds.items[1].lr, lr2)
    assert load_dataset(root, 4).lr_source == LR_GENERATED
    (root / "DIV2K_valid_HR").mkdir()
    with pytest.raises(DataError, match="several DIV2K HR folders"):
        load_dataset(root, 2)


def test_flat_folder_of_mixed_formats(tmp_path):
    arrays = {"a": _img(8, 8), "b": _img(8, 10, seed=1), "c": _img(10, 8, seed=2, gray=True)}
    Image.fromarray(arrays["a"]).save(tmp_path / "a.png")
    Image.fromarray(arrays["b"]).save(tmp_path / "b.bmp")
    Image.fromarray(arrays["c"]).save(tmp_path / "c.TIF")
    Image.fromarray(_img(8, 8, seed=3)).save(tmp_path / "d.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path, 2)
    assert ds.layout == "flat" and ds.names == ["a", "b", "c", "d"]
    for name in "abc":
        assert np.array_equal(ds.items["abc".index(name)].hr, arrays[name])


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no images"):
        load_dataset(tmp_path / "empty", 2)
    (tmp_path / "nohr" / "HR").mkdir(parents=True)
    with pytest.raises(DataError, match="HR.*no images"):
        load_dataset(tmp_path / "nohr", 2)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nowhere", 2)


def test_duplicate_names_are_rejected(tmp_path):
    Image.fromarray(_img(8, 8)).save(tmp_path / "a.png")
    Image.fromarray(_img(8, 8)).save(tmp_path / "a.bmp")
    with pytest.raises(DataError, match="share the name 'a'"):
        load_dataset(tmp_path, 2)


def test_bad_image_in_dataset_names_it(tmp_path):
    root = tmp_path / "S"
    _ours(root)
    (root / "HR" / "im1.png").write_bytes((root / "HR" / "im1.png").read_bytes()[:60])
    with pytest.raises(DataError, match="im1.png"):
        load_dataset(root, 2)


def test_alpha_rejected_or_dropped_in_a_dataset(tmp_path):
    root = tmp_path / "A"
    rgba = _img(8, 8, seed=4).copy()
    Image.fromarray(np.dstack([rgba, np.full((8, 8), 9, np.uint8)]), "RGBA").save(_mk(root / "HR") / "x.png")
    with pytest.raises(DataError, match="alpha"):
        load_dataset(root, 2)
    assert np.array_equal(load_dataset(root, 2, drop_alpha=True).items[0].hr, rgba)


def _mk(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_prepare_writes_manifest_cache_and_marker_last(tmp_path, monkeypatch):
    src = tmp_path / "SetP"
    hrs = _ours(src, gray_last=True)
    _save(src / "LR" / "x2" / "im0.png", _img(13, 15, seed=9))
    _save(src / "LR" / "x2" / "im1.png", _img(10, 12, seed=8, gray=True))
    out = tmp_path / "prep"
    info = prepare_dataset(src, out, [4, 2])
    assert info["scales"] == [2, 4] and info["n_images"] == 2 and info["names"] == ["im0", "im1"]
    assert info["lr"]["2"].startswith("given: ") and info["lr"]["4"] == LR_GENERATED
    assert json.loads((out / "dataset.json").read_text()) == info
    rows = read_manifest(out)
    assert [r["file"] for r in rows] == ["HR/im0.png", "HR/im1.png", "LR/x2/im0.png", "LR/x2/im1.png"]
    assert rows[0]["width"] == 31 and rows[0]["height"] == 26 and rows[0]["mode"] == "RGB"
    assert rows[1]["mode"] == "L"
    assert sorted(p.name for p in (out / "LR" / "x4").iterdir()) == ["im0.png", "im1.png"]
    assert not (out / "LR" / "x2").exists()  # given LR is not copied
    n_cached = len(list((out / "cache").rglob("*.npy")))
    assert n_cached == 6  # 2 HR + 2 given LR + 2 generated LR (x4)

    direct = load_dataset(src, 4)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(ds_mod, "read_image", no_decoding)
    monkeypatch.setattr("msnlan.data.imresize.imresize", no_decoding)
    cached = load_dataset(out, 4)
    assert cached.prepared == out and cached.name == "SetP"
    for a, b in zip(direct.items, cached.items):
        assert np.array_equal(a.hr, b.hr) and np.array_equal(a.lr, b.lr)
    assert np.array_equal(cached.items[0].hr, modcrop(hrs["im0"], 4))
    monkeypatch.undo()

    # a changed source file misses the cache: its new content is decoded (and LR regenerated)
    new = _save(src / "HR" / "im0.png", _img(26, 31, seed=42))
    reloaded = load_dataset(out, 4)
    assert np.array_equal(reloaded.items[0].hr, modcrop(new, 4))
    assert np.array_equal(reloaded.items[0].lr, imresize(modcrop(new, 4), 1 / 4))
    assert len(list((out / "cache").rglob("*.npy"))) == n_cached + 2

    # images added to the source since prepare: an error, not a silent change of the benchmark
    _save(src / "HR" / "im2.png", _img(12, 12))
    with pytest.raises(DataError, match="changed since it was prepared.*im2"):
        load_dataset(out, 4)


def test_failed_prepare_leaves_no_marker(tmp_path):
    src = tmp_path / "Bad"
    _ours(src)
    Image.fromarray(_img(8, 8)).convert("P").save(src / "HR" / "zz.png")
    out = tmp_path / "prep"
    with pytest.raises(DataError, match="zz.png.*palette"):
        prepare_dataset(src, out, [2])
    assert not (out / "dataset.json").exists()


def test_lr_dir_override(tmp_path):
    root = tmp_path / "S"
    _ours(root, sizes=((20, 20),))
    lr = _save(tmp_path / "ref" / "im0.png", _img(10, 10, seed=7))
    ds = load_dataset(root, 2, lr_dir=tmp_path / "ref")
    assert np.array_equal(ds.items[0].lr, lr)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(root, 2, lr_dir=tmp_path / "none")


@pytest.mark.data
def test_generated_lr_matches_matlab_reference(shared_data):
    """Set5 x4 through the dataset code equals the MATLAB-made reference LR, pixel for pixel."""
    bench = shared_data / "benchmarks" / "Set5"
    given = load_dataset(bench, 4, lr_dir=shared_data / "reference_lr" / "Set5" / "x4")
    generated = load_dataset(bench, 4)
    assert given.names == generated.names == ["baby", "bird", "butterfly", "head", "woman"]
    for a, b in zip(given.items, generated.items):
        assert np.array_equal(a.lr, b.lr), a.name
