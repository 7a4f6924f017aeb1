"""Checked reading of the results folder's JSON, YAML and CSV files.

Every reader raises DataError naming the file and the key, line or column at fault.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import yaml

if TYPE_CHECKING:
    import pandas as pd

from ..errors import DataError


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


def read_csv_checked(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A CSV read as text with the required columns present (named in the error otherwise)."""
    import pandas as pd  # here, not at the top: importing pandas costs a job 0.3 s of start-up
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header)") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(frame.columns)})")
    return frame


def numeric_column(frame: pd.DataFrame, column: str, path: Path, *, required: bool) -> pd.Series:
    """A column as float; empty cells are NaN unless `required`; anything non-numeric is an error."""
    import pandas as pd
    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw.replace({"": "nan"}), errors="coerce")
    bad = values.isna() & ~raw.str.lower().isin(["", "nan"])
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{path}: line {i + 2}, column {column!r}: {raw.iloc[i]!r} is not a number")
    if required and values.isna().any():
        i = int(values.isna().to_numpy().nonzero()[0][0])
        raise DataError(f"{path}: line {i + 2}, column {column!r} is empty")
    return values.astype(float)
