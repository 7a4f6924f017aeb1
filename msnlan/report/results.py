"""Reading a results folder (layout in docs/architecture.md) into plain Python/pandas objects.

Every reader checks what it reads and raises DataError naming the file and the key or column.
Files starting with "." are skipped: they are the temporary files of atomic writes in progress.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import yaml

from ..errors import DataError

EVAL_COLUMNS = ("image", "psnr", "ssim", "seconds", "peak_memory_mb")
LOG_COLUMNS = ("iteration", "loss", "lr", "val_psnr", "seconds", "images_per_s")
_SCALE_DIR = re.compile(r"^x([1-9][0-9]*)$")


def _visible(paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith("."))


def scale_dirs(parent: Path) -> list[tuple[int, Path]]:
    """The x<s> sub-folders of `parent`, as (s, path), sorted by scale."""
    out = []
    for p in _visible(parent.iterdir()) if parent.is_dir() else []:
        m = _SCALE_DIR.match(p.name)
        if p.is_dir() and m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data


def _numeric(frame: pd.DataFrame, column: str, path: Path, *, required: bool) -> pd.Series:
    """A column as float; empty cells are NaN unless `required`; anything non-numeric is an error."""
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


def read_csv_checked(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A CSV read as text with the required columns present (named in the error otherwise)."""
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

    @property
    def self_ensemble(self) -> bool:
        return bool(self.protocol.get("self_ensemble", self.method.endswith("+")))

    @property
    def variant(self) -> str:
        """The variant behind the method: '' for bicubic, the name without '+' for self-ensemble rows."""
        if self.method == "bicubic":
            return ""
        return self.method[:-1] if self.method.endswith("+") else self.method


def read_eval_result(csv_path: Path, method: str, scale: int) -> EvalResult:
    benchmark = csv_path.stem
    protocol_path = csv_path.with_name(f"{benchmark}.protocol.json")
    if not protocol_path.is_file():
        raise DataError(f"{csv_path}: its protocol file {protocol_path.name} is missing (evaluation unfinished?)")
    protocol = read_json(protocol_path)
    for key, expected in (("scale", scale), ("benchmark", benchmark)):
        if key in protocol and str(protocol[key]) != str(expected):
            raise DataError(f"{protocol_path}: key {key!r} is {protocol[key]!r} but the file's place says {expected!r}")
    frame = read_csv_checked(csv_path, EVAL_COLUMNS)
    if frame.empty:
        raise DataError(f"{csv_path}: no image rows")
    images = frame["image"].astype(str).str.strip()
    if (images == "").any():
        raise DataError(f"{csv_path}: line {int((images == '').to_numpy().nonzero()[0][0]) + 2}: empty image name")
    dup = images[images.duplicated()]
    if len(dup):
        raise DataError(f"{csv_path}: image {dup.iloc[0]!r} appears more than once")
    rows = pd.DataFrame({
        "image": images,
        "psnr": _numeric(frame, "psnr", csv_path, required=True),
        "ssim": _numeric(frame, "ssim", csv_path, required=True),
        "seconds": _numeric(frame, "seconds", csv_path, required=False),
        "peak_memory_mb": _numeric(frame, "peak_memory_mb", csv_path, required=False),
    })
    if (rows.psnr == -math.inf).any() or (rows.psnr < 0).any():
        raise DataError(f"{csv_path}: column 'psnr' has a negative value")
    bad_ssim = ~rows.ssim.between(-1.0, 1.0)
    if bad_ssim.any():
        raise DataError(f"{csv_path}: column 'ssim': {rows.ssim[bad_ssim].iloc[0]} is outside [-1, 1]")
    return EvalResult(method, scale, benchmark, csv_path, protocol_path, protocol, rows)


def find_eval_results(results_dir: Path) -> list[EvalResult]:
    """Every eval/<method>/x<s>/<benchmark>.csv of a results folder."""
    eval_dir = results_dir / "eval"
    out = []
    for method_dir in _visible(eval_dir.iterdir()) if eval_dir.is_dir() else []:
        if not method_dir.is_dir():
            continue
        for scale, sdir in scale_dirs(method_dir):
            for csv_path in _visible(sdir.glob("*.csv")):
                out.append(read_eval_result(csv_path, method_dir.name, scale))
    return out


def _find_key(data: Any, names: tuple[str, ...], depth: int = 3) -> Any:
    """First value under any of `names`, searching the mapping breadth-first up to `depth` levels.

    The run's config.yaml is written by the training engine (resolved variant + preset + overrides);
    searching by key keeps this reader working whether the budget sits at the top or in a section.
    """
    level = [data]
    for _ in range(depth):
        nxt = []
        for node in level:
            if not isinstance(node, Mapping):
                continue
            for name in names:
                if name in node and not isinstance(node[name], Mapping):
                    return node[name]
            nxt.extend(v for v in node.values() if isinstance(v, Mapping))
        level = nxt
    return None


def _resolved_variant_in(data: Any) -> dict | None:
    """A resolved variant ({'name', 'model': {...all settings}}) inside a run config or checkpoint."""
    from ..variants import MODEL_KEYS

    if not isinstance(data, Mapping):
        return None
    candidates = [data.get("variant"), data.get("resolved_variant"), data]
    for cand in candidates:
        if isinstance(cand, Mapping) and isinstance(cand.get("model"), Mapping) \
                and all(k in cand["model"] for k in MODEL_KEYS):
            return dict(cand)
    return None


@dataclass
class RunInfo:
    """One training run folder runs/<variant>/x<s>/."""

    variant: str
    scale: int
    path: Path
    config: dict = field(default_factory=dict)
    log: pd.DataFrame | None = None
    has_final: bool = False
    environment: dict = field(default_factory=dict)

    @property
    def device(self) -> str | None:
        value = self.environment.get("device")
        return None if value is None else str(value)

    @property
    def preset(self) -> str | None:
        value = self.config.get("preset")
        if isinstance(value, Mapping):
            value = value.get("name")
        if value is None:
            value = _find_key(self.config, ("preset_name", "preset"))
        return None if value is None else str(value)

    def _budget(self, names: tuple[str, ...]) -> Any:
        return _find_key(self.config, names)

    @property
    def iterations(self) -> int | None:
        v = self._budget(("iterations", "total_iterations", "max_iterations", "n_iterations"))
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def patch_size(self) -> Any:
        return self._budget(("patch_size", "lr_patch_size", "lr_patch", "patch"))

    @property
    def batch_size(self) -> Any:
        return self._budget(("batch_size", "batch"))

    @property
    def iterations_done(self) -> int | None:
        if self.log is None or self.log.empty:
            return None
        return int(self.log["iteration"].max())


def read_log(path: Path) -> pd.DataFrame:
    frame = read_csv_checked(path, ("iteration", "loss"))
    out = pd.DataFrame({"iteration": _numeric(frame, "iteration", path, required=True)})
    for col in LOG_COLUMNS[1:]:
        if col in frame.columns:
            out[col] = _numeric(frame, col, path, required=False)
    return out


def find_runs(results_dir: Path) -> list[RunInfo]:
    runs_dir = results_dir / "runs"
    out = []
    for vdir in _visible(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        if not vdir.is_dir():
            continue
        for scale, sdir in scale_dirs(vdir):
            cfg_path, log_path = sdir / "config.yaml", sdir / "log.csv"
            env_path = sdir / "environment.json"
            run = RunInfo(vdir.name, scale, sdir, read_yaml(cfg_path) if cfg_path.is_file() else {},
                          read_log(log_path) if log_path.is_file() else None, (sdir / "final.pt").is_file(),
                          read_json(env_path) if env_path.is_file() else {})
            out.append(run)
    return out


def final_checkpoint_metadata(path: Path) -> dict:
    """The non-tensor metadata of a final.pt (variant, scale, preset, iterations...)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise DataError(f"{path}: cannot load checkpoint: {exc}") from None
    if not isinstance(ckpt, Mapping):
        return {}
    return {k: v for k, v in ckpt.items() if not hasattr(v, "shape") and k not in ("model", "state_dict")}


def resolved_variant_for(variant: str, run: RunInfo | None) -> tuple[dict | None, str]:
    """The resolved variant of a run, and where it came from.

    Preference: the run's config.yaml, then final.pt's metadata, then the variant file of that name
    (which may have changed since training: the source says so).
    """
    from ..errors import MsnlanError
    from ..variants import resolve_variant

    if run is not None:
        found = _resolved_variant_in(run.config)
        if found:
            return found, f"{run.path / 'config.yaml'}"
        if run.has_final:
            found = _resolved_variant_in(final_checkpoint_metadata(run.path / "final.pt"))
            if found:
                return found, f"{run.path / 'final.pt'}"
    try:
        return resolve_variant(variant), "variant file (current; not recorded by a run)"
    except MsnlanError:
        return None, "unknown"


def find_complexity(results_dir: Path) -> list[tuple[str, int, Path, dict]]:
    """Every complexity/<variant>/x<s>.json as (variant, scale, path, data)."""
    cdir = results_dir / "complexity"
    out = []
    for vdir in _visible(cdir.iterdir()) if cdir.is_dir() else []:
        if not vdir.is_dir():
            continue
        for path in _visible(vdir.glob("x*.json")):
            m = _SCALE_DIR.match(path.stem)
            if m:
                out.append((vdir.name, int(m.group(1)), path, read_json(path)))
    return sorted(out, key=lambda t: (t[1], t[0]))


def sr_image_path(results_dir: Path, method: str, scale: int, benchmark: str, image: str) -> Path:
    """Where evaluation saved an SR image (images/<method>/x<s>/<benchmark>/<image>.png)."""
    return results_dir / "images" / method / f"x{scale}" / benchmark / f"{image}.png"
