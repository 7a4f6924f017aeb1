"""benchmarks/gpu_check.sh is run only where a GPU is lent, so its checks can rot unseen (its
SIGKILL + resume check once passed without killing anything after the presets gained a second
stage). Its dry run (GPU_CHECK_DRY_RUN=1: the CPU, toy sizes) keeps the resume check honest here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def dry_run(steps: str, out: Path) -> str:
    """The script's dry run of `steps`; returns its log."""
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "GPU_CHECK_ONLY": steps, "OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return (out / "gpu_check.log").read_text()


def test_dry_run_resume_check_kills_and_resumes(tmp_path):
    log = dry_run("resume", tmp_path)
    assert "killed at log row 17" in log and "killed (rc -9) and resumed" in log, log[-3000:]
    assert "weights bitwise equal: True" in log
    summary = log.split("=== summary", 1)[1].splitlines()
    assert [line.split()[-2] for line in summary if line.startswith("SIGKILL + resume on cpu")] == ["ok"], summary


def test_dry_run_engine_check_compares_graphed_and_eager_runs(tmp_path):
    """On the CPU both runs are eager (cuda_graphs: auto): the check's plumbing, its comparison of
    the final weights and its reading of log.csv are what run here."""
    log = dry_run("graphs", tmp_path)
    assert log.count("environment.json: cuda_graphs False") == 2, log[-3000:]
    assert "final weights bitwise equal: True" in log and "images/s with graphs / eager:" in log
    summary = log.split("=== summary", 1)[1].splitlines()
    assert [line.split()[-2] for line in summary if line.startswith("engine: cuda_graphs vs eager")] == ["ok"], summary
