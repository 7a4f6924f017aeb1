"""A second training job kept busy on all cores while a benchmark measures, as a second workflow
job would be: the demo network trained endlessly by benchmarks/train_throughput.py. No torch
import here, so that a parent process that only starts children stays light."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

THROUGHPUT = Path(__file__).resolve().parent / "train_throughput.py"


def start_load(settle_s: float = 10.0) -> subprocess.Popen:
    """Start the competing job and wait `settle_s` seconds for it to reach its training loop."""
    proc = subprocess.Popen([sys.executable, str(THROUGHPUT), "--configs", "demo", "--modes", "auto",
                             "--iterations", "100000", "--profile-steps", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(settle_s)
    return proc


def stop_load(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        proc.kill()
        proc.wait()
