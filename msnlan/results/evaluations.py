"""An evaluation's two files: eval/<method>/x<s>/<benchmark>.csv and <benchmark>.protocol.json
(eval/<method>/x<s>/seed<k>/... for one of several training seeds).

The CSV has one row per image: the image name, one column per registered metric
(msnlan.metric_registry), seconds and peak_memory_mb. The protocol.json records every protocol choice and
the summary (msnlan.results.summary); it is written last, so its presence marks a finished
evaluation. Optional protocol keys (OPTIONAL_PROTOCOL_KEYS), such as the attention form that ran,
are checked for type when present and read as None when absent.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError
from ..io_utils import write_json_atomic, write_text_atomic, writing
from ..metric_registry import metric_names, registered_metrics
from . import layout
from .files import numeric_column, read_csv_checked, read_json

if TYPE_CHECKING:
    import pandas as pd

#: columns every eval CSV has; each registered metric adds its own (see eval_columns)
REQUIRED_COLUMNS = ("image", "psnr", "ssim", "seconds", "peak_memory_mb")
#: protocol.json keys a reader may find absent (older files); value type when present
OPTIONAL_PROTOCOL_KEYS = {"attention_mode": str, "attention_form": str, "chop_whole_passes": list,
                          "checkpoint_conversion": dict, "pretrained": dict}

#: the record of weights not trained by the workflow (msnlan evaluate --weights-source)
PRETRAINED_KEYS = ("name", "label", "source", "variant")


def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def eval_columns() -> tuple[str, ...]:
    """image, one column per registered metric, seconds, peak_memory_mb."""
    return ("image", *metric_names(), "seconds", "peak_memory_mb")


def write_eval_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """The per-image CSV (rows with the eval_columns keys), atomically."""
    metrics = registered_metrics()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(eval_columns())
    for r in rows:
        writer.writerow([r["image"], *(_fmt(r[m.name], m.csv_digits) for m in metrics), f"{r['seconds']:.4f}",
                         f"{r['peak_memory_mb']:.1f}"])
    write_text_atomic(path, buf.getvalue())


def write_protocol(csv_path: str | os.PathLike, protocol: dict) -> Path:
    """protocol.json beside `csv_path`; call it after write_eval_csv (it marks completion)."""
    for key, kind in OPTIONAL_PROTOCOL_KEYS.items():
        if protocol.get(key) is not None and not isinstance(protocol[key], kind):
            raise TypeError(f"protocol key {key!r} must be {kind.__name__}, got {protocol[key]!r}")
    path = layout.protocol_json(csv_path)
    write_json_atomic(path, protocol)
    return path


class PartialEval:
    """The rows of an evaluation in progress, one JSON line per image as it is done.

    The first line is the evaluation's identity (what decides the numbers: images, weights,
    protocol). A later run of the same evaluation takes the finished rows from it and skips those
    images; with any other identity it starts over. A line cut short by a kill is ignored. The file
    is removed once the CSV and protocol are written.
    """

    def __init__(self, csv_path: str | os.PathLike, identity: dict):
        self.path = layout.partial_eval(csv_path)
        self.identity = json.loads(json.dumps(identity, default=str))  # as it reads back
        self._file = None

    def earlier_rows(self) -> tuple[list[dict], str | None]:
        """(rows of an interrupted run of this same evaluation, why they are not used or None)."""
        if not self.path.is_file():
            return [], None
        lines = self.path.read_text().split("\n")
        try:
            head = json.loads(lines[0])
        except json.JSONDecodeError:
            return [], f"{self.path} is unreadable"
        if head != self.identity:
            keys = sorted(k for k in set(head) | set(self.identity) if head.get(k) != self.identity.get(k))
            return [], f"{self.path} was written for another evaluation (differs in: {', '.join(keys)})"
        rows = []
        for line in lines[1:-1]:  # the last element follows the final newline (or is a cut line)
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows, None

    def start(self, rows: list[dict]) -> None:
        """Rewrite the file with the identity and `rows`, then keep it open for appending."""
        text = "".join(json.dumps(x) + "\n" for x in [self.identity, *rows])
        write_text_atomic(self.path, text)
        with writing(self.path):
            self._file = open(self.path, "a")

    def append(self, row: dict) -> None:
        with writing(self.path):
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class EvalResult:
    """One eval/<method>/x<s>/<benchmark>.csv with its protocol.json."""

    method: str
    scale: int
    benchmark: str
    csv_path: Path
    protocol_path: Path
    protocol: dict
    rows: pd.DataFrame  # image, psnr, ssim, seconds, peak_memory_mb (floats; psnr may be inf)
    seed: int | None = None  # training seed, from a seed<k> folder; None in the one-seed layout

    @property
    def self_ensemble(self) -> bool:
        return bool(self.protocol.get("self_ensemble", self.method.endswith("+")))

    @property
    def variant(self) -> str:
        """The variant behind the method: '' for bicubic, the name without '+' for self-ensemble rows."""
        return variant_of_method(self.method)

    @property
    def attention_form(self) -> str | None:
        return self.protocol.get("attention_form")

    @property
    def pretrained(self) -> dict | None:
        """{name, label, source, variant} for weights not trained by the workflow, else None."""
        return self.protocol.get("pretrained")


def variant_of_method(method: str) -> str:
    if method == "bicubic":
        return ""
    return method[:-1] if method.endswith("+") else method


def read_protocol(protocol_path: Path, scale: int | None = None, benchmark: str | None = None) -> dict:
    protocol = read_json(protocol_path)
    for key, expected in (("scale", scale), ("benchmark", benchmark)):
        if expected is not None and key in protocol and str(protocol[key]) != str(expected):
            raise DataError(f"{protocol_path}: key {key!r} is {protocol[key]!r} but the file's place says {expected!r}")
    for key, kind in OPTIONAL_PROTOCOL_KEYS.items():
        if protocol.get(key) is not None and not isinstance(protocol[key], kind):
            raise DataError(f"{protocol_path}: key {key!r}: {protocol[key]!r} is not a {kind.__name__}")
    for key in PRETRAINED_KEYS if protocol.get("pretrained") is not None else ():
        if not isinstance(protocol["pretrained"].get(key), str):
            raise DataError(f"{protocol_path}: key 'pretrained.{key}' is missing or not a string")
    return protocol


def read_eval_rows(csv_path: Path) -> pd.DataFrame:
    """The per-image rows, checked: names present and unique, numbers numeric, each metric within its
    registered range. A registered metric the file lacks (written before it was added) reads as NaN."""
    import pandas as pd  # here, not at the top: evaluation jobs never read a CSV this way

    frame = read_csv_checked(csv_path, REQUIRED_COLUMNS)
    if frame.empty:
        raise DataError(f"{csv_path}: no image rows")
    images = frame["image"].astype(str).str.strip()
    if (images == "").any():
        raise DataError(f"{csv_path}: line {int((images == '').to_numpy().nonzero()[0][0]) + 2}: empty image name")
    dup = images[images.duplicated()]
    if len(dup):
        raise DataError(f"{csv_path}: image {dup.iloc[0]!r} appears more than once")
    rows = pd.DataFrame({"image": images})
    for m in registered_metrics():
        if m.name not in frame.columns:
            rows[m.name] = math.nan
            continue
        rows[m.name] = numeric_column(frame, m.name, csv_path, required=m.name in REQUIRED_COLUMNS)
        values = rows[m.name].dropna()
        bad = values[(values < m.low) | (values > m.high)]
        if len(bad):
            raise DataError(f"{csv_path}: column {m.name!r}: {bad.iloc[0]} is outside [{m.low:g}, {m.high:g}]")
    for col in ("seconds", "peak_memory_mb"):
        rows[col] = numeric_column(frame, col, csv_path, required=False)
    return rows


def read_eval_result(csv_path: Path, method: str, scale: int, seed: int | None = None) -> EvalResult:
    benchmark = csv_path.stem
    protocol_path = layout.protocol_json(csv_path)
    if not protocol_path.is_file():
        raise DataError(f"{csv_path}: its protocol file {protocol_path.name} is missing (evaluation unfinished?)")
    protocol = read_protocol(protocol_path, scale, benchmark)
    return EvalResult(method, scale, benchmark, csv_path, protocol_path, protocol, read_eval_rows(csv_path), seed)


def find_eval_results(results_dir: Path) -> list[EvalResult]:
    """Every eval/<method>/x<s>/[seed<k>/]<benchmark>.csv of a results folder."""
    return [read_eval_result(path, method, scale, seed)
            for method, scale, seed, path in layout.eval_csvs(results_dir)]
