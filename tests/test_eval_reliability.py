"""Outputs never inside inputs, filesystem errors as one line (exit 2), resumable evaluations,
images too small for the protocol named up front."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from msnlan.cli import main, os_error_message
from msnlan.evaluation import evaluate_method

from test_evaluate_cli import _rows, _tiny_dataset


def _hr_bytes(src):
    return {p.name: p.read_bytes() for p in sorted((src / "HR").iterdir())}


def test_save_images_into_the_ground_truth_is_refused(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    before = _hr_bytes(src)
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(tmp_path / "r.csv"), "--save-images", str(src / "HR")])
    err = capsys.readouterr().err
    assert rc == 2 and "--save-images" in err and "lies inside the dataset folder" in err
    assert _hr_bytes(src) == before and not (tmp_path / "r.csv").exists()
    # through a prepared folder the source is protected as well, and so is the CSV
    prep = tmp_path / "prep"
    assert main(["prepare", "--dataset", str(src), "--scales", "2", "--out", str(prep)]) == 0
    for args in (["--save-images", str(src / "HR")], ["--save-images", str(prep / "LR" / "x2")]):
        rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(prep), "--out",
                   str(tmp_path / "r.csv"), *args])
        assert rc == 2 and "which this command reads" in capsys.readouterr().err
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(src / "HR" / "results.csv")])
    assert rc == 2 and "--out" in capsys.readouterr().err
    assert _hr_bytes(src) == before


def test_other_commands_refuse_to_overwrite_their_input(tmp_path, capsys):
    variant = tmp_path / "v.yaml"
    variant.write_text("_base_: msnlan\n")
    assert main(["complexity", "--variant", str(variant), "--scale", "2", "--out", str(variant)]) == 2
    assert "is the variant file" in capsys.readouterr().err
    assert main(["convert", str(variant), str(variant), "--scale", "2"]) == 2
    assert "is the authors' checkpoint" in capsys.readouterr().err
    assert variant.read_text() == "_base_: msnlan\n"


def _read_only(monkeypatch, folder):
    """Creating files in `folder` fails as on a read-only mount (root ignores permission bits)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):
        if dir is not None and str(dir).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_read_only_output_fails_up_front_in_one_line(tmp_path, capsys, monkeypatch):
    src = _tiny_dataset(tmp_path / "Tiny")
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    _read_only(monkeypatch, out_dir)
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(out_dir / "r.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"msnlan evaluate: error: cannot write {out_dir}: Read-only file system\n"  # before any image


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (the monkeypatched test covers it)")
def test_read_only_folder_by_permissions(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(out_dir / "r.csv")])
    assert rc == 2 and "cannot write" in capsys.readouterr().err


def _full_disk():
    """In the child: files may not grow past 2 kB (EFBIG, as a full disk gives ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


@pytest.mark.parametrize("command", ["prepare", "evaluate"])
def test_full_disk_is_one_line_and_exit_2(tmp_path, command):
    src = _tiny_dataset(tmp_path / "Tiny")
    args = {"prepare": ["--dataset", str(src), "--scales", "2", "--out", str(tmp_path / "prep")],
            "evaluate": ["--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
                         str(tmp_path / "ev" / "r.csv"), "--save-images", str(tmp_path / "img")]}[command]
    proc = subprocess.run([sys.executable, "-m", "msnlan", command, *args], capture_output=True, text=True,
                          preexec_fn=_full_disk, timeout=600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[-1].startswith(f"msnlan {command}: error: cannot write ") and "File too large" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_os_error_wording():
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == \
        "cannot write /x/y: No space left on device"
    assert os_error_message(OSError(errno.ENOENT, "No such file or directory", "/x")) == \
        "/x: No such file or directory"


class Stop(Exception):
    pass


def _stop_after(n):
    def log_line(msg):
        if msg.startswith(f"[{n}/"):
            raise Stop
    return log_line


def test_interrupted_evaluation_resumes_and_says_so(tmp_path):
    src = _tiny_dataset(tmp_path / "Tiny")
    full = tmp_path / "full.csv"
    evaluate_method("bicubic", src, 2, full, device="cpu", progress=False, log_line=lambda m: None)
    out = tmp_path / "eval" / "Tiny.csv"
    with pytest.raises(Stop):
        evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, log_line=_stop_after(2))
    assert not out.exists()
    partial = tmp_path / "eval" / ".Tiny.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 3  # identity + 2 images
    notes = []
    protocol = evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, log_line=notes.append)
    assert any(n.startswith("resuming: 2 of 3 images") for n in notes)
    assert sum(n.startswith("[") for n in notes) == 1  # only the third image was evaluated
    assert protocol["resumed"]["images_from_interrupted_run"] == 2
    assert [(r["image"], r["psnr"], r["ssim"]) for r in _rows(out)] == \
        [(r["image"], r["psnr"], r["ssim"]) for r in _rows(full)]
    assert json.loads((tmp_path / "eval" / "Tiny.protocol.json").read_text())["summary"] == \
        json.loads((tmp_path / "full.protocol.json").read_text())["summary"]
    assert not partial.exists()


def test_saved_images_survive_the_loss_of_the_output_folder(tmp_path):
    """A workflow deletes a failed job's outputs (the images folder): the resumed run still skips."""
    src = _tiny_dataset(tmp_path / "Tiny")
    out, images = tmp_path / "eval" / "Tiny.csv", tmp_path / "images"
    with pytest.raises(Stop):
        evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, save_images=images,
                        log_line=_stop_after(2))
    import shutil

    shutil.rmtree(images, ignore_errors=True)
    notes = []
    evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, save_images=images, log_line=notes.append)
    assert sum(n.startswith("[") for n in notes) == 1
    assert sorted(p.name for p in images.iterdir()) == ["a.png", "b.png", "g.png"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["Tiny.csv", "Tiny.protocol.json"]


def test_changed_images_start_the_evaluation_over(tmp_path):
    src = _tiny_dataset(tmp_path / "Tiny")
    out = tmp_path / "Tiny.csv"
    with pytest.raises(Stop):
        evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, log_line=_stop_after(2))
    img = np.asarray(Image.open(src / "HR" / "a.png"))
    Image.fromarray(255 - img).save(src / "HR" / "a.png")
    notes = []
    protocol = evaluate_method("bicubic", src, 2, out, device="cpu", progress=False, log_line=notes.append)
    assert any("was written for another evaluation (differs in: images)" in n and "starting over" in n for n in notes)
    assert protocol["resumed"] is None and sum(n.startswith("[") for n in notes) == 3


def test_image_too_small_for_the_protocol_is_named_up_front(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "Tiny")
    Image.fromarray(np.full((14, 40, 3), 90, np.uint8)).save(src / "HR" / "small.png")
    rc = main(["prepare", "--dataset", str(src), "--scales", "2", "--out", str(tmp_path / "prep")])
    err = capsys.readouterr().err
    assert rc == 2 and "small.png: 40x14 pixels" in err and "at least 15 pixels" in err
    rc = main(["evaluate", "--method", "bicubic", "--scale", "2", "--dataset", str(src), "--out",
               str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "image small: 40x14 pixels" in err and "[1/" not in err
