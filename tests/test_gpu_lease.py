"""GPU leasing with simulated devices: one lock file per device, held for the process's life."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from msnlan.training import gpu_lease
from msnlan.training.gpu_lease import GpuLeaseError, claim_device

REPO = Path(__file__).resolve().parent.parent

# A claimant: lease a device among `count` simulated ones (no CUDA), print it, hold it until stdin closes.
CLAIMANT = textwrap.dedent("""
    import sys
    from msnlan.training.gpu_lease import claim_device, GpuLeaseError
    try:
        lease = claim_device("auto", count=int(sys.argv[1]), real_count=0, wait_s=float(sys.argv[2]), poll_s=0.05)
    except GpuLeaseError as exc:
        print("error:", exc, flush=True)
        sys.exit(3)
    print("slot", lease.slot, lease.device, flush=True)
    sys.stdin.read()
""")


def claimant(lock_dir: Path, count: int = 2, wait_s: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), MSNLAN_GPU_LOCK_DIR=str(lock_dir))
    return subprocess.Popen([sys.executable, "-c", CLAIMANT, str(count), str(wait_s)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def first_line(proc: subprocess.Popen) -> str:
    return proc.stdout.readline().strip()


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_concurrent_claimants_get_distinct_devices_then_wait_or_fail(tmp_path):
    procs = [claimant(tmp_path, count=3) for _ in range(3)]  # started together: they race
    try:
        lines = [first_line(p) for p in procs]
        assert sorted(lines) == ["slot 0 cpu", "slot 1 cpu", "slot 2 cpu"], lines

        refused = claimant(tmp_path, count=3, wait_s=0)
        assert refused.wait(30) == 3
        message = refused.stdout.read()
        assert "all 3 GPU(s) are leased" in message and str(tmp_path) in message and "pid" in message

        waiting = claimant(tmp_path, count=3, wait_s=30)
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting for a free device
        holder = procs[lines.index("slot 1 cpu")]
        holder.send_signal(signal.SIGKILL)  # a killed holder frees its device (the OS drops the lock)
        assert first_line(waiting) == "slot 1 cpu"
        procs.append(waiting)
    finally:
        stop(*procs)


def test_two_claimants_on_two_devices(tmp_path):
    a, b = claimant(tmp_path), claimant(tmp_path)
    try:
        assert {first_line(a), first_line(b)} == {"slot 0 cpu", "slot 1 cpu"}
    finally:
        stop(a, b)


def test_in_process_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("MSNLAN_GPU_LOCK_DIR", str(tmp_path))
    try:
        assert claim_device("cpu").device == "cpu"
        lease = claim_device("auto", count=0, real_count=0)
        assert lease.device == "cpu" and "no GPU" in lease.message
        with pytest.raises(GpuLeaseError, match="no CUDA device"):
            claim_device("cuda", count=0, real_count=0)
        with pytest.raises(GpuLeaseError, match="'gpu0'"):
            claim_device("gpu0")
        with pytest.raises(GpuLeaseError, match="only 2"):
            claim_device("cuda:5", count=2, real_count=2)
        # simulated slots beyond the real devices map onto them round-robin
        lease = claim_device("auto", count=4, real_count=2)
        assert (lease.slot, lease.device, lease.simulated) == (0, "cuda:0", False)
        assert claim_device("auto", count=4, real_count=2) is lease  # one lease per process
        assert (tmp_path / "gpu0.lock").read_text().startswith(f"pid {os.getpid()}")
    finally:
        gpu_lease.release()
    monkeypatch.setenv("MSNLAN_GPU_COUNT", "two")
    with pytest.raises(GpuLeaseError, match="MSNLAN_GPU_COUNT"):
        claim_device("auto")
    monkeypatch.setenv("MSNLAN_GPU_COUNT", "3")
    assert gpu_lease.gpu_count() == 3


def test_lock_folder_per_slurm_job(tmp_path, monkeypatch):
    """Jobs of one node may share the temp folder while SLURM numbers each job's GPUs from 0: each
    job gets its own lock folder; outside SLURM (or with MSNLAN_GPU_LOCK_DIR) nothing changes."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delenv("MSNLAN_GPU_LOCK_DIR", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpu_lease.lock_dir() == tmp_path / f"msnlan-gpu-locks-{os.getuid()}"
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    assert gpu_lease.lock_dir() == tmp_path / f"msnlan-gpu-locks-{os.getuid()}-4711"
    monkeypatch.setenv("MSNLAN_GPU_LOCK_DIR", str(tmp_path / "mine"))
    assert gpu_lease.lock_dir() == tmp_path / "mine"
