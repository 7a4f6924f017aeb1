"""`msnlan demo-data`, `prepare` and `evaluate` end to end on tiny data."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from msnlan.cli import main
from msnlan.data.datasets import load_dataset
from msnlan.data.imresize import imresize
from msnlan.inference import upscale
from msnlan.metrics import evaluate_pair

TINY = {"n_feats": 8, "n_resgroups": 2, "n_resblocks": 1, "patch_sizes": [3], "reduction": 4}


def _tiny_dataset(root):
    """Two RGB images and one grayscale, sizes not multiples of the scale."""
    rng = np.random.default_rng(0)
    (root / "HR").mkdir(parents=True)
    for name, shape in (("a", (34, 41, 3)), ("b", (30, 30, 3)), ("g", (33, 36))):
        y, x = np.mgrid[0:shape[0], 0:shape[1]]
        base = 128 + 80 * np.sin(x / 3.0) * np.cos(y / 4.0)
        img = base if len(shape) == 2 else base[..., None] + rng.integers(-20, 21, shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "HR" / f"{name}.png")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _tiny_variant(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"_base_": "msnlan", "description": "tiny test network", "model": TINY}))
    return path


def test_demo_data_command(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-data", "--out", str(out)]) == 0
    record = json.loads((out / "demo_data.json").read_text())
    assert list(record["sets"]) == ["DemoTrain", "DemoVal", "DemoA", "DemoB"]
    assert (out / "README.txt").read_text().count("skimage/data/") == sum(len(v) for v in record["sets"].values())
    sources = {s: {e["source_file"] for e in entries} for s, entries in record["sets"].items()}
    for a in sources:  # disjoint by source photograph
        for b in sources:
            assert a == b or not sources[a] & sources[b]
    for name in ("DemoA", "DemoB"):
        ds = load_dataset(out / name, 4)
        assert len(ds) >= 6  # enough images for a bootstrap interval that means something
        assert any(p.hr.ndim == 2 for p in ds.items) and any(p.hr.ndim == 3 for p in ds.items)
        # small crops keep evaluation cheap: no more pixels per set than the two 192 x 192 crops of before
        assert sum(p.hr.shape[0] * p.hr.shape[1] for p in ds.items) <= 2 * 192 * 192
        assert len({e["source_file"] for e in record["sets"][name]}) == len(ds)  # one photograph each
    for entry in record["sets"]["DemoA"]:
        assert (out / entry["file"]).is_file() and entry["crop_box"] is not None


def test_prepare_then_evaluate_bicubic(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    prep = tmp_path / "prep"
    assert main(["prepare", "--dataset", str(src), "--scales", "2", "3", "--out", str(prep)]) == 0
    assert (prep / "dataset.json").is_file() and (prep / "manifest.tsv").is_file()
    out = tmp_path / "eval" / "bicubic" / "x2" / "Tiny.csv"
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(prep), "--out", str(out),
               "--save-images", str(tmp_path / "img")])
    assert rc == 0
    rows = _rows(out)
    assert [r["image"] for r in rows] == ["a", "b", "g"]
    assert list(rows[0]) == ["image", "psnr", "ssim", "seconds", "peak_memory_mb"]
    ds = load_dataset(src, 2)
    for row, pair in zip(rows, ds.items):
        sr = imresize(pair.lr, 2)
        expected = evaluate_pair(sr, pair.hr, 2)
        assert float(row["psnr"]) == pytest.approx(expected["psnr"], abs=1e-5)
        assert float(row["ssim"]) == pytest.approx(expected["ssim"], abs=1e-7)
        assert float(row["seconds"]) >= 0 and float(row["peak_memory_mb"]) > 0
        saved = np.asarray(Image.open(tmp_path / "img" / f"{pair.name}.png"))
        assert np.array_equal(saved, sr)
    assert saved.ndim == 2  # the grayscale image stays one channel
    proto = json.loads((out.parent / "Tiny.protocol.json").read_text())
    assert proto["method"] == "bicubic" and proto["scale"] == 2 and proto["benchmark"] == "Tiny"
    assert proto["lr_source"].startswith("generated: MATLAB-exact imresize")
    assert proto["tiling"]["mode"] == "none" and proto["self_ensemble"] is False
    assert proto["shave"] == 2 and proto["color_space"].startswith("Y (ITU-R BT.601")
    assert proto["ssim"].startswith("gaussian 11x11 sigma 1.5")
    assert proto["summary"]["n_images"] == 3
    assert proto["summary"]["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=1e-5)
    for key in ("versions", "device", "git_commit", "date", "peak_memory", "checkpoint", "grayscale", "rounding"):
        assert key in proto
    assert proto["dataset"] == str(prep)

    # the workflow passes its tiling options to every method: bicubic ignores them (whole image)
    out2 = tmp_path / "chop.csv"
    assert main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(prep), "--out", str(out2),
                 "--tile", "chop", "--min-pixels", "100"]) == 0
    assert [r["psnr"] for r in _rows(out2)] == [r["psnr"] for r in rows]
    assert json.loads((tmp_path / "chop.protocol.json").read_text())["tiling"]["mode"] == "none"


def test_several_datasets_in_one_process(tmp_path, capsys):
    """One job per method and scale: `--dataset A B --out A.csv B.csv --save-images a b` writes what
    two single-dataset runs write; mismatched or repeated paths fail before any image is computed."""
    prep = {}
    for name in ("One", "Two"):
        src = _tiny_dataset(tmp_path / name)
        prep[name] = tmp_path / f"prep{name}"
        assert main(["prepare", "--dataset", str(src), "--scales", "2", "--out", str(prep[name])]) == 0
    variant = str(_tiny_variant(tmp_path))
    common = ["evaluate", "--method", variant, "--random-init", "--scale", "2", "--device", "cpu"]
    outs = [tmp_path / "both" / "One.csv", tmp_path / "both" / "Two.csv"]
    images = [tmp_path / "img" / "One", tmp_path / "img" / "Two"]
    assert main([*common, "--dataset", str(prep["One"]), str(prep["Two"]), "--out", *map(str, outs),
                 "--save-images", *map(str, images)]) == 0
    alone = tmp_path / "alone" / "Two.csv"
    assert main([*common, "--dataset", str(prep["Two"]), "--out", str(alone)]) == 0
    assert _rows(outs[1])[0]["psnr"] == _rows(alone)[0]["psnr"]
    assert [r["image"] for r in _rows(outs[0])] == [r["image"] for r in _rows(outs[1])] == ["a", "b", "g"]
    for out, folder, name in zip(outs, images, ("One", "Two")):
        assert json.loads(out.with_suffix(".protocol.json").read_text())["benchmark"] == name
        assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "g.png"]
    capsys.readouterr()
    fresh = [tmp_path / "fresh" / "One.csv", tmp_path / "fresh" / "Two.csv"]
    bad = [
        (["--out", str(fresh[0])], "--out names 1 value(s) for 2 --dataset value(s)"),
        (["--out", *map(str, fresh), "--save-images", str(tmp_path / "i1")], "--save-images names 1 value(s)"),
        (["--out", str(fresh[0]), str(fresh[0])], f"--out: {fresh[0]} is named twice"),
        (["--out", *map(str, fresh), "--lr-dir", str(tmp_path)], "--lr-dir holds the LR images of one dataset"),
        (["--out", str(fresh[0]), str(prep["One"] / "x.csv")], "--out"),  # the second output lies in an input
    ]
    for extra, message in bad:
        assert main([*common, "--dataset", str(prep["One"]), str(prep["Two"]), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").iterdir())


def test_variant_without_checkpoint_is_an_error(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    out = tmp_path / "r.csv"
    rc = main(["evaluate", "--method", "msnlan", "--scale", "2", "--dataset", str(src), "--out", str(out)])
    assert rc == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_bad_inputs_are_reported(tmp_path, capsys):
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(tmp_path / "nowhere"),
               "--out", str(tmp_path / "r.csv")])
    assert rc == 2 and "nowhere" in capsys.readouterr().err
    src = _tiny_dataset(tmp_path / "Tiny")
    rc = main(["evaluate", "--method", "no_such_variant", "--scale", "2", "--dataset", str(src),
               "--out", str(tmp_path / "r.csv"), "--random-init"])
    assert rc == 2 and "no_such_variant" in capsys.readouterr().err
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src),
               "--out", str(tmp_path / "r.csv"), "--self-ensemble"])
    assert rc == 2 and "self-ensemble" in capsys.readouterr().err


def test_random_init_variant_with_chop_and_self_ensemble(tmp_path, capsys):
    from msnlan.models.network import build_model

    src = _tiny_dataset(tmp_path / "Tiny")
    variant = _tiny_variant(tmp_path)
    out = tmp_path / "eval" / "tiny+" / "x2" / "Tiny.csv"
    rc = main(["evaluate", "--method", str(variant), "--random-init", "--scale", "2", "--dataset", str(src),
               "--out", str(out), "--tile", "chop", "--min-pixels", "170", "--overlap", "4", "--self-ensemble",
               "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    rows = _rows(out)
    assert [r["image"] for r in rows] == ["a", "b", "g"]
    proto = json.loads(out.with_name("Tiny.protocol.json").read_text())
    assert proto["method"] == "tiny+" and proto["variant"] == "tiny" and proto["random_init"] is True
    assert proto["weights"].startswith("random-init")
    assert proto["tiling"] == {"mode": "chop", "min_pixels": 170, "overlap": 4}
    assert proto["self_ensemble"] is True and proto["checkpoint"] is None
    assert proto["variant_model"]["n_feats"] == 8 and proto["device_type"] == "cpu"
    assert proto["attention_mode"] == "auto" and proto["attention_form"] == "fast"  # the form that ran

    # the same numbers as running the seeded network directly
    torch.manual_seed(0)
    model = build_model(str(variant), 2).eval()
    pair = load_dataset(src, 2).items[2]  # the grayscale one
    sr = upscale(model, pair.lr, tile="chop", min_pixels=170, overlap=4, self_ensemble=True)
    assert sr.ndim == 2
    assert float(rows[2]["psnr"]) == pytest.approx(evaluate_pair(sr, pair.hr, 2)["psnr"], abs=1e-5)


def test_checkpoint_is_loaded_and_checked(tmp_path, capsys):
    from msnlan.models.network import build_model
    from msnlan.training.checkpoint import save, weights_record
    from msnlan.variants import resolve_variant

    src = _tiny_dataset(tmp_path / "Tiny")
    variant = _tiny_variant(tmp_path)
    torch.manual_seed(123)
    model = build_model(str(variant), 2)
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    final = tmp_path / "final.pt"
    save(weights_record(model, resolve_variant(variant), 2, "demo", 5), final)

    args = ["evaluate", "--method", str(variant), "--scale", "2", "--dataset", str(src), "--device", "cpu"]
    assert main(args + ["--checkpoint", str(plain), "--out", str(tmp_path / "p.csv")]) == 0
    assert main(args + ["--checkpoint", str(final), "--out", str(tmp_path / "f.csv")]) == 0
    assert _rows(tmp_path / "p.csv")[0]["psnr"] == _rows(tmp_path / "f.csv")[0]["psnr"]
    proto = json.loads((tmp_path / "f.protocol.json").read_text())
    assert proto["checkpoint"] == str(final) and proto["weights"] == "checkpoint"
    assert len(proto["checkpoint_sha256"]) == 64 and proto["random_init"] is False

    expected = evaluate_pair(upscale(model, load_dataset(src, 2).items[0].lr), load_dataset(src, 2).items[0].hr, 2)
    assert float(_rows(tmp_path / "p.csv")[0]["psnr"]) == pytest.approx(expected["psnr"], abs=1e-5)

    # wrong scale, other variant, or weights that do not fit: errors naming the checkpoint
    capsys.readouterr()
    rc = main(["evaluate", "--method", str(variant), "--scale", "3", "--dataset", str(src), "--device", "cpu",
               "--checkpoint", str(final), "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and "x2, not x3" in capsys.readouterr().err
    rc = main(["evaluate", "--method", "msnlan", "--scale", "2", "--dataset", str(src), "--device", "cpu",
               "--checkpoint", str(final), "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and "model.n_feats" in capsys.readouterr().err
    rc = main(["evaluate", "--method", "msnlan", "--scale", "2", "--dataset", str(src), "--device", "cpu",
               "--checkpoint", str(plain), "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and "do not fit" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
