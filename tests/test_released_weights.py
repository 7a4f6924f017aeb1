"""Released weights: `msnlan evaluate --checkpoint` with a checkpoint in the authors' layout (plain or
wrapped), converted on the fly and recorded in the protocol; misfits named by their first key.

The authors' checkpoints are made here from a randomly initialised paper network, its weights renamed
to the authors' keys (msnlan.models.convert.authors_key_map) with their escape_NaN buffers; the key
list is checked against the authors' list (authors_state_dict_x2.tsv beside the checkout) where present.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from msnlan.cli import main
from msnlan.data.datasets import file_sha256
from msnlan.models.convert import authors_key_map
from msnlan.models.network import build_model
from test_evaluate_cli import _rows, _tiny_dataset

TSV = Path(__file__).resolve().parents[2] / "shared" / "design" / "authors_state_dict_x2.tsv"
ESCAPE_NAN = tuple(f"body.4.atten{i}.stoL.escape_NaN" for i in (1, 2, 3))

pytestmark = pytest.mark.usefixtures("one_thread")


def authors_checkpoint(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised paper network's weights under the authors' key names."""
    torch.manual_seed(seed)
    ours = build_model("msnlan", scale).state_dict()
    state = {theirs: ours[mine].clone() for theirs, mine in authors_key_map(scale).items()}
    state.update({key: torch.tensor([1e-4]) for key in ESCAPE_NAN})
    return state


def test_made_checkpoint_has_the_authors_keys_and_shapes():
    if not TSV.is_file():
        pytest.skip(f"{TSV} not found (design files beside the checkout)")
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    expected = {key: tuple(int(n) for n in shape.split("x")) for key, shape in rows}
    assert {k: tuple(v.shape) for k, v in authors_checkpoint(2).items()} == expected


def _evaluate(tmp_path, dataset, checkpoint, scale, out_name, *extra):
    out = tmp_path / "eval" / out_name / f"x{scale}" / "Tiny.csv"
    rc = main(["evaluate", "--method", "msnlan", "--checkpoint", str(checkpoint), "--scale", str(scale),
               "--dataset", str(dataset), "--out", str(out), "--device", "cpu", *extra])
    return rc, out


@pytest.mark.parametrize("scale", [2, 3])
def test_authors_checkpoint_evaluates_like_its_converted_copy(tmp_path, capsys, scale):
    src = _tiny_dataset(tmp_path / "Tiny")
    authors = tmp_path / f"MSNLAN_x{scale}.pt"
    torch.save(authors_checkpoint(scale, seed=scale), authors)
    converted = tmp_path / f"converted_x{scale}.pt"
    assert main(["convert", str(authors), str(converted), "--scale", str(scale)]) == 0

    rc, as_released = _evaluate(tmp_path, src, authors, scale, "released")
    assert rc == 0, capsys.readouterr().err
    rc, as_converted = _evaluate(tmp_path, src, converted, scale, "converted")
    assert rc == 0, capsys.readouterr().err
    released_rows, converted_rows = _rows(as_released), _rows(as_converted)
    assert [r["psnr"] for r in released_rows] == [r["psnr"] for r in converted_rows]
    assert [r["ssim"] for r in released_rows] == [r["ssim"] for r in converted_rows]

    proto = json.loads(as_released.with_name("Tiny.protocol.json").read_text())
    conv = proto["checkpoint_conversion"]
    assert conv["file"] == str(authors) and conv["sha256"] == file_sha256(authors)
    assert "authors" in conv["from"] and conv["wrapper"] is None
    assert proto["checkpoint"] == str(authors) and proto["checkpoint_sha256"] == file_sha256(authors)
    assert json.loads(as_converted.with_name("Tiny.protocol.json").read_text())["checkpoint_conversion"] is None


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_authors_checkpoint(tmp_path, capsys, wrapper):
    src = _tiny_dataset(tmp_path / "Tiny")
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pt"
    state = authors_checkpoint(2, seed=7)
    torch.save(state, plain)
    torch.save({wrapper: state, "epoch": 1000}, wrapped)
    rc, a = _evaluate(tmp_path, src, plain, 2, "plain")
    assert rc == 0, capsys.readouterr().err
    rc, b = _evaluate(tmp_path, src, wrapped, 2, "wrapped")
    assert rc == 0, capsys.readouterr().err
    assert [r["psnr"] for r in _rows(a)] == [r["psnr"] for r in _rows(b)]
    conv = json.loads(b.with_name("Tiny.protocol.json").read_text())["checkpoint_conversion"]
    assert conv["wrapper"] == wrapper and conv["sha256"] == file_sha256(wrapped)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") <= 2 and len(err) < 400, err  # a short message, not a list of 900 keys
    return err


def test_misfits_name_their_first_key(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    # the authors' layout, one weight missing
    state = authors_checkpoint(2)
    del state["body.6.body.3.fusion.bias"]
    torch.save(state, tmp_path / "missing.pt")
    rc, out = _evaluate(tmp_path, src, tmp_path / "missing.pt", 2, "m")
    assert rc == 2 and "missing key 'body.6.body.3.fusion.bias'" in _error(capsys)
    assert not out.exists()
    # the authors' x2 checkpoint evaluated at x3: the upsampler's shape
    torch.save(authors_checkpoint(2), tmp_path / "x2.pt")
    rc, _ = _evaluate(tmp_path, src, tmp_path / "x2.pt", 3, "s")
    assert rc == 2 and "'tail.0.0.weight' has shape 256x64x3x3, expected 576x64x3x3" in _error(capsys)
    # our layout with a wrong shape, and with a stray key: the first misfit only
    ours = build_model("msnlan", 2).state_dict()
    ours["groups.1.end.bias"] = torch.zeros(3)
    torch.save({"state_dict": ours}, tmp_path / "shape.pt")
    rc, _ = _evaluate(tmp_path, src, tmp_path / "shape.pt", 2, "o")
    assert rc == 2 and "key 'groups.1.end.bias' has shape 3, expected 64" in _error(capsys)
    ours = build_model("msnlan", 2).state_dict()
    ours["extra.weight"] = torch.zeros(1)
    torch.save(ours, tmp_path / "extra.pt")
    rc, _ = _evaluate(tmp_path, src, tmp_path / "extra.pt", 2, "e")
    assert rc == 2 and "unexpected key 'extra.weight'" in _error(capsys)


def test_authors_checkpoint_needs_the_paper_model(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    torch.save(authors_checkpoint(2), tmp_path / "a.pt")
    out = tmp_path / "r.csv"
    rc = main(["evaluate", "--method", "no_msnlab", "--checkpoint", str(tmp_path / "a.pt"), "--scale", "2",
               "--dataset", str(src), "--out", str(out), "--device", "cpu"])
    assert rc == 2 and "model.msnlab" in _error(capsys)


def test_pretrained_row_options(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    authors = tmp_path / "a.pt"
    torch.save(authors_checkpoint(2), authors)
    rc, out = _evaluate(tmp_path, src, authors, 2, "msnlan_authors", "--name", "msnlan_authors",
                        "--label", "MSNLAN (authors)", "--weights-source", "released by the authors")
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    proto = json.loads(out.with_name("Tiny.protocol.json").read_text())
    assert proto["method"] == "msnlan_authors" and proto["variant"] == "msnlan"
    assert proto["pretrained"] == {"name": "msnlan_authors", "label": "MSNLAN (authors)",
                                   "source": "released by the authors", "variant": "msnlan"}
    for extra, message in ((["--label", "x"], "--weights-source too"), (["--name", "a b"], "--name 'a b'")):
        rc, _ = _evaluate(tmp_path, src, authors, 2, "bad", *extra)
        assert rc == 2 and message in _error(capsys)
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(tmp_path / "b.csv"), "--weights-source", "somewhere"])
    assert rc == 2 and "--weights-source" in _error(capsys)
