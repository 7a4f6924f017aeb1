"""One GPU per training process, claimed through one lock file per device.

With `snakemake --resources gpu=N`, up to N training jobs start at once. Each one calls
`claim_device("auto")`, which takes an exclusive, non-blocking fcntl.flock on
<lock dir>/gpu<k>.lock for the first free k and keeps that file open for the life of the process:
the OS drops the lock when the process ends, however it ends (SIGKILL included).

When every device is taken, the claimant WAITS, polling, for up to MSNLAN_GPU_WAIT seconds
(default 600), then raises GpuLeaseError naming the holders. (With Snakemake's gpu resource this
only happens transiently, or when other programs hold devices.)

Environment:
  MSNLAN_GPU_LOCK_DIR  lock folder (default /tmp/msnlan-gpu-locks-<uid>; inside a SLURM job
                       $TMPDIR/msnlan-gpu-locks-<uid>-<job id>)
  MSNLAN_GPU_COUNT     number of devices to lease (default: torch.cuda.device_count()); a count
                       above the real one simulates devices, mapped onto the real ones round-robin
  MSNLAN_GPU_WAIT      seconds to wait when every device is taken
"""
from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..checks import DEVICE_CHOICES, DEVICE_PATTERN
from ..errors import MsnlanError


class GpuLeaseError(MsnlanError):
    """No GPU could be claimed (all taken past the wait, or a bad --device)."""


@dataclass
class Lease:
    device: str             # torch device string the process uses: "cpu" or "cuda:<k>"
    slot: int | None        # leased lock index, None when no lock is held
    lock_path: str | None
    simulated: bool         # the slot is beyond the real device count (or there is no CUDA)
    message: str            # what to print in the log

    def as_dict(self) -> dict:
        return dict(self.__dict__)


_HELD: dict[int, int] = {}      # slot -> open file descriptor holding its lock
_LEASE: Lease | None = None


def default_lock_dir() -> Path:
    """The lock folder when MSNLAN_GPU_LOCK_DIR is unset.

    SLURM gives every job its own GPU(s), numbered from 0 in each job, but jobs on one node may
    share the temp folder: a folder per job keeps two jobs from waiting on each other's cuda:0 lock,
    while the processes of one job (which share its GPUs) still share their locks.
    """
    name = f"msnlan-gpu-locks-{os.getuid()}"
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        name += f"-{job}"
    return Path(tempfile.gettempdir()) / name


def lock_dir(path: str | os.PathLike | None = None) -> Path:
    if path is None:
        path = os.environ.get("MSNLAN_GPU_LOCK_DIR") or default_lock_dir()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def real_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_count(count: int | None = None) -> int:
    """Devices to lease: `count`, else $MSNLAN_GPU_COUNT, else the CUDA device count."""
    if count is not None:
        return int(count)
    env = os.environ.get("MSNLAN_GPU_COUNT")
    if env not in (None, ""):
        try:
            value = int(env)
        except ValueError:
            raise GpuLeaseError(f"MSNLAN_GPU_COUNT={env!r} is not an integer") from None
        if value < 0:
            raise GpuLeaseError(f"MSNLAN_GPU_COUNT={env!r} is negative")
        return value
    return real_gpu_count()


def _try_lock(directory: Path, slot: int) -> int | None:
    """Open and flock gpu<slot>.lock without blocking; the fd on success, None if held."""
    path = directory / f"gpu{slot}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # who holds it, for other claimants' messages
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _holder(directory: Path, slot: int) -> str:
    try:
        return (directory / f"gpu{slot}.lock").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _lease_for(slot: int, directory: Path, real: int) -> Lease:
    path = str(directory / f"gpu{slot}.lock")
    if real == 0:
        return Lease("cpu", slot, path, True,
                     f"GPU lease: slot {slot} ({path}) is simulated and this machine has no CUDA: running on CPU")
    physical = slot % real
    simulated = slot >= real
    note = f" (simulated slot mapped onto cuda:{physical})" if simulated else ""
    return Lease(f"cuda:{physical}", slot, path, simulated, f"GPU lease: slot {slot} ({path}) -> cuda:{physical}{note}")


def claim_device(requested: str = "auto", *, count: int | None = None, lock_directory: str | os.PathLike | None = None,
                 wait_s: float | None = None, poll_s: float = 0.5, real_count: int | None = None) -> Lease:
    """The device this process trains on: 'cpu', or a leased 'cuda:<k>'.

    `requested` is auto (a free GPU if any, else CPU), cpu, cuda (a free GPU, error if none) or
    cuda:N (that device; its lock is taken if free, otherwise used anyway with a warning).
    A process keeps one lease: later calls return it. `count` (devices to lease) and `real_count`
    (CUDA devices present) are injectable for tests.
    """
    global _LEASE
    requested = (requested or "auto").strip().lower()
    if not re.fullmatch(DEVICE_PATTERN, requested):
        raise GpuLeaseError(f"--device {requested!r}: expected {DEVICE_CHOICES}")
    if requested == "cpu":
        return Lease("cpu", None, None, False, "device: CPU (requested)")
    if _LEASE is not None and _LEASE.slot is not None:
        return _LEASE
    n = gpu_count(count)
    real = _safe_real_count() if real_count is None else int(real_count)
    directory = lock_dir(lock_directory)
    if requested.startswith("cuda:"):
        index = int(requested.split(":")[1])
        if index >= max(n, real):
            raise GpuLeaseError(f"--device {requested}: only {max(n, real)} CUDA device(s) here")
        fd = _try_lock(directory, index)
        lease = _lease_for(index, directory, real)
        if fd is None:
            lease = Lease(lease.device, None, None, lease.simulated,
                          f"warning: {requested} is leased by {_holder(directory, index)}; using it as requested")
        else:
            _HELD[index] = fd
        _LEASE = lease
        return lease
    if n == 0:
        if requested == "cuda":
            raise GpuLeaseError("--device cuda: no CUDA device is available")
        return Lease("cpu", None, None, False, "device: no GPU found, training on CPU")
    if wait_s is None:
        wait_s = float(os.environ.get("MSNLAN_GPU_WAIT", "600"))
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(n):
            fd = _try_lock(directory, slot)
            if fd is not None:
                _HELD[slot] = fd
                _LEASE = _lease_for(slot, directory, real)
                return _LEASE
        if time.monotonic() >= deadline:
            holders = "; ".join(f"gpu{k}: {_holder(directory, k)}" for k in range(n))
            raise GpuLeaseError(f"all {n} GPU(s) are leased (lock dir {directory}; {holders}) and none was "
                                f"freed within {wait_s:g} s (MSNLAN_GPU_WAIT)")
        time.sleep(poll_s)


def _safe_real_count() -> int:
    try:
        return real_gpu_count()
    except Exception:  # torch missing or CUDA broken: simulated slots run on CPU
        return 0


def release() -> None:
    """Drop this process's lease (the OS does it at exit; tests and long-lived callers use this)."""
    global _LEASE
    for fd in _HELD.values():
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    _HELD.clear()
    _LEASE = None
