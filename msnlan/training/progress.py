"""Training progress: a tqdm bar (loss, lr, ETA) on a terminal, plain periodic lines otherwise
(Snakemake logs, CI), so that a log file shows where a run is without carriage-return noise."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, start: int = 0, *, stream: TextIO | None = None, tty: bool | None = None,
                 every_s: float = 30.0, prefix: str = "train"):
        self.total, self.start, self.prefix = total, start, prefix
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self._t0 = time.monotonic()
        self._last_line = -float("inf")
        self._bar = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, file=self.stream, desc=prefix, dynamic_ncols=True,
                             unit="it")

    def update(self, iteration: int, loss: float, lr: float, images_per_s: float | None = None) -> None:
        if self._bar is not None:
            self._bar.update(iteration - self._bar.n)
            self._bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}", refresh=False)
            return
        now = time.monotonic()
        if now - self._last_line < self.every_s and iteration < self.total:
            return
        self._last_line = now
        done = iteration - self.start
        rate = done / (now - self._t0) if now > self._t0 and done > 0 else 0.0
        eta = (self.total - iteration) / rate if rate > 0 else float("nan")
        speed = f" {images_per_s:.1f} img/s" if images_per_s else ""
        eta_text = _fmt_seconds(eta) if eta == eta else "?"
        self.write(f"{self.prefix}: iteration {iteration}/{self.total} loss {loss:.4f} lr {lr:.3g}"
                   f"{speed} ETA {eta_text}")

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
