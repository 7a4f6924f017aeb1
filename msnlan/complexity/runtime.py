"""Runtime and peak memory of one forward pass, measured in a fresh subprocess.

A fresh process keeps the measurement free of whatever the caller allocated before.
CPU peak memory: the process's resident-set high-water mark (VmHWM in /proc/self/status),
reset just before each timed forward by writing 5 to /proc/self/clear_refs; the figure is that
high-water mark minus the resident size measured before the model was built, so it covers the
weights, the input and every activation, but not the interpreter and libraries. Where the reset is
not allowed, the process's ru_maxrss is used instead (it then also covers any earlier transient).
CUDA peak memory: torch.cuda.max_memory_allocated after reset_peak_memory_stats.

Run as ``python -m msnlan.complexity.runtime`` with a JSON request on stdin; prints one JSON line.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..checks import resolve_device
from ..errors import ConfigError, MsnlanError
from ..memory import current_rss_kib, peak_rss_kib, reset_peak_rss

def measure_here(request: dict) -> dict:
    """Build the model and time `runs` forward passes after `warmup` ones (this process)."""
    import torch

    from ..models.network import build_model
    from ..provenance import device_description

    # libraries are loaded: from here on the resident set grows by the model, input and activations
    base_rss_kb = current_rss_kib()
    device = resolve_device(request.get("device", "auto"))
    h, w = request["lr_size"]
    runs, warmup = int(request["runs"]), int(request["warmup"])
    torch.manual_seed(0)
    model = build_model(request["variant"], int(request["scale"])).to(device).eval()
    x = (torch.rand(1, 3, h, w) * 255).to(device)
    cuda = device.type == "cuda"

    def forward() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    times, peaks = [], []
    load_before = _load_average()
    can_reset = False
    if not cuda:  # the high-water mark so far (e.g. from importing) must not count as the forward's
        can_reset = reset_peak_rss()
    with torch.inference_mode():
        for _ in range(warmup):
            forward()
        for _ in range(runs):
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            else:
                can_reset = reset_peak_rss()
            times.append(forward())
            if cuda:
                peaks.append(torch.cuda.max_memory_allocated(device) / 2**20)
            else:
                hwm = peak_rss_kib()  # without a reset: the process's lifetime high-water mark
                peaks.append((hwm - (base_rss_kb or 0)) / 1024)
    if cuda:
        method = "torch.cuda.max_memory_allocated (reset before each timed run), max over runs"
    elif can_reset:
        method = ("CPU resident-set high-water mark (VmHWM, reset via /proc/self/clear_refs before each "
                  "timed run) minus the resident size before the model was built; max over runs")
    else:
        method = ("CPU ru_maxrss of the measuring subprocess minus its resident size before the model "
                  "was built (high-water reset not allowed here: may include earlier transients)")
    return {
        "device": device_description(device),
        "device_type": device.type,
        "lr_size": [h, w],
        "hr_size": [h * int(request["scale"]), w * int(request["scale"])],
        "median_ms": round(statistics.median(times) * 1000, 3),
        "times_ms": [round(t * 1000, 3) for t in times],
        "runs": runs,
        "warmup": warmup,
        "peak_memory_mb": round(max(peaks), 1),
        "peak_memory_method": method,
        "timing_method": "time.perf_counter around model(x) under torch.inference_mode"
                         + (", torch.cuda.synchronize before and after" if cuda else "")
                         + f"; median of {runs} run(s) after {warmup} warm-up run(s); batch 1, float32",
        "threads": torch.get_num_threads(),
        # other jobs on the same cores (a workflow runs several) slow the timed runs down
        "load_average_1min": {"before": load_before, "after": _load_average()},
    }


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def measure_runtime(variant: dict, scale: int, lr_size, *, device: str = "auto", runs: int = 3,
                    warmup: int = 1, timeout: float | None = None) -> dict:
    """Runtime/peak memory of `variant` (a mapping accepted by build_model) in a subprocess."""
    if runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be at least 0, got {warmup}")
    resolve_device(device)  # fail early, in this process, on an impossible device
    request = {"variant": variant, "scale": scale, "lr_size": list(lr_size), "device": device,
               "runs": runs, "warmup": warmup}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "msnlan.complexity.runtime"], input=json.dumps(request),
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MsnlanError(f"runtime measurement of {lr_size[0]}x{lr_size[1]} LR at x{scale} exceeded "
                          f"{timeout} s (use --runtime-size, fewer --runs, or --no-runtime)") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise MsnlanError(f"runtime measurement failed (exit {proc.returncode}): " + " | ".join(tail))
    result = json.loads(lines[-1])
    if "error" in result:
        raise MsnlanError(f"runtime measurement failed: {result['error']}")
    return result


def _main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        result = measure_here(request)
    except MsnlanError as exc:
        result = {"error": str(exc)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
