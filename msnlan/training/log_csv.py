"""log.csv of a training run: iteration,loss,lr,val_psnr,seconds,images_per_s.

Rows are appended and flushed as training goes. On resume the file is cut back (atomically) to
the checkpoint's iteration, dropping rows (and any partly written last line) of the iterations
that will be run again, so a resumed run's log has no duplicate rows.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..io_utils import write_text_atomic

COLUMNS = ("iteration", "loss", "lr", "val_psnr", "seconds", "images_per_s")
HEADER = ",".join(COLUMNS) + "\n"


def format_row(iteration: int, loss: float, lr: float, val_psnr: float | None, seconds: float,
               images_per_s: float) -> str:
    # repr keeps loss and lr exact, so resumed and uninterrupted logs can be compared bit for bit
    val = "" if val_psnr is None else repr(float(val_psnr))
    return f"{iteration},{float(loss)!r},{float(lr)!r},{val},{seconds:.3f},{images_per_s:.3f}\n"


def truncate_log(path: str | os.PathLike, iteration: int) -> None:
    """Keep the header and the complete rows with iteration <= `iteration`."""
    path = Path(path)
    kept = [HEADER]
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        for line in lines[1:]:
            if not line.endswith("\n"):
                break  # a row cut short by a kill
            fields = line.rstrip("\n").split(",")
            try:
                row_iteration = int(fields[0])
            except ValueError:
                break
            if len(fields) != len(COLUMNS) or row_iteration > iteration:
                break
            kept.append(line)
    write_text_atomic(path, "".join(kept))


class LogWriter:
    """Appends rows to log.csv (created with its header if missing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            write_text_atomic(self.path, HEADER)
        self._file = open(self.path, "a", buffering=1)

    def write(self, *row) -> None:
        self._file.write(format_row(*row))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_log(path: str | os.PathLike) -> list[dict]:
    """Rows of log.csv as dicts of floats (val_psnr None where not validated)."""
    lines = Path(path).read_text().splitlines()
    rows = []
    for line in lines[1:]:
        fields = line.split(",")
        rows.append({"iteration": int(fields[0]), "loss": float(fields[1]), "lr": float(fields[2]),
                     "val_psnr": float(fields[3]) if fields[3] else None, "seconds": float(fields[4]),
                     "images_per_s": float(fields[5])})
    return rows
