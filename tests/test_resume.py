"""Kill -9 at a random moment, restart, and end bitwise equal to an uninterrupted run (CPU)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

# The training command run in a subprocess (the same as `msnlan train`, with a tiny network).
RUNNER = textwrap.dedent("""
    import sys
    from msnlan.cli import main
    sys.exit(main(["train", "--variant", "msnlan", "--scale", "2", "--preset", "demo",
                   "--train-data", sys.argv[1], "--val-data", sys.argv[2], "--out", sys.argv[3],
                   "--device", "cpu"] + [a for kv in sys.argv[4:] for a in ("--set", kv)]))
""")

TINY = ["model.n_feats=8", "model.n_resgroups=2", "model.n_resblocks=1", "model.patch_sizes=[3]",
        "model.reduction=4", "batch_size=2", "patch_size=12", "val_interval=15", "log_interval=1",
        "milestones=[10,25]", "stages=null"]  # one stage here; test_stages.py kills a run in stage 2


def write_images(folder: Path, n: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "HR").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y, x = np.mgrid[0:size, 0:size]
        base = 128 + 90 * np.sin(x / (2.5 + i)) * np.cos(y / (3.5 + i))
        img = base[..., None] + rng.integers(-15, 16, (size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / "HR" / f"img{i}.png")
    return folder


def start(run_dir: Path, data: tuple[Path, Path], settings: list[str]) -> subprocess.Popen:
    # one thread: tiny tensors run fastest so, and timing is steadier on a busy machine
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(data[0]), str(data[1]), str(run_dir), *settings],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def log_rows(run_dir: Path) -> list[list[str]]:
    return [line.split(",") for line in (run_dir / "log.csv").read_text().splitlines()[1:]]


def count_rows(run_dir: Path) -> int:
    try:
        return (run_dir / "log.csv").read_text().count("\n") - 1
    except FileNotFoundError:
        return 0


def run_until_killed(run_dir: Path, data, settings: list[str], at_iteration: int) -> bool:
    """Start the run and SIGKILL it as soon as its log reaches `at_iteration` (past a checkpoint);
    False if it finished first."""
    proc = start(run_dir, data, settings)
    return kill_when(proc, lambda: count_rows(run_dir) >= at_iteration and (run_dir / "last.pt").exists())


def kill_when(proc: subprocess.Popen, condition) -> bool:
    """SIGKILL the process as soon as condition() holds; False if it finished first."""
    while proc.poll() is None:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return proc.returncode == -signal.SIGKILL
        time.sleep(0.001)
    proc.communicate()
    return False


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    data = (write_images(tmp_path / "train", 3, 40, 0), write_images(tmp_path / "val", 2, 24, 1))
    settings = TINY + ["iterations=40", "checkpoint_interval=3"]
    reference = tmp_path / "reference"
    finish(start(reference, data, settings))

    # two kills at random iterations after the first checkpoint (iteration 3), each landing
    # wherever the process happens to be (step, log write, checkpoint write, validation)
    rng = random.Random(os.getpid() ^ time.time_ns())
    first = rng.randint(4, 24)
    second = rng.randint(first + 1, 38)
    killed = tmp_path / "killed"
    kills = [run_until_killed(killed, data, settings, first), run_until_killed(killed, data, settings, second)]
    assert any(kills), f"the run finished before it could be killed (iterations {first}, {second})"
    assert not (killed / "final.pt").exists() or not kills[-1]
    finish(start(killed, data, settings))

    ref = torch.load(reference / "final.pt", weights_only=True)
    got = torch.load(killed / "final.pt", weights_only=True)
    assert ref["model"].keys() == got["model"].keys()
    for key in ref["model"]:
        assert torch.equal(ref["model"][key], got["model"][key]), (key, first, second)

    ref_rows, got_rows = log_rows(reference), log_rows(killed)
    assert [r[0] for r in got_rows] == [str(i) for i in range(1, 41)]  # no duplicates after resume
    assert [r[2] for r in got_rows] == [r[2] for r in ref_rows]         # lr at every iteration
    assert [r[1] for r in got_rows] == [r[1] for r in ref_rows]         # loss, bit for bit
    assert [r[3] for r in got_rows] == [r[3] for r in ref_rows]         # validation PSNR
    lrs = {int(r[0]): float(r[2]) for r in ref_rows}
    assert lrs[10] == 5e-4 and lrs[11] == 2.5e-4 and lrs[26] == 1.25e-4  # halved after each milestone
