"""A training run folder runs/<variant>/x<s>/ (runs/<variant>/x<s>/seed<k>/ with several training
seeds): config.yaml, environment.json, log.csv, final.pt.

config.yaml (written by `msnlan train` when the run starts, layout RUN_CONFIG_KEYS):
  variant: the resolved variant ({'name', 'description', 'source', 'model': {...}})
  scale, preset: {'name', 'source', 'description'}, training: the preset's settings
  data: {'train', 'val', 'train_fingerprint', 'val_fingerprint'}, init_from
  resumed_with (optional, appended by `msnlan train --resume-with`): optimizer changes made when continuing
data_files.tsv: set, file, sha256 of every training and validation file (the fingerprints' detail).
environment.json: versions, git commit, device of the latest session and `sessions` (all of them);
  optional `attention_form` (OPTIONAL_ENVIRONMENT_KEYS).
log.csv: LOG_COLUMNS, one row per logged iteration; val_psnr empty where not validated; iteration
  counts across the whole run, `stage` is the training stage (1-based; a log written before
  stages existed lacks the column and is one stage).
config.yaml of a preset with stages also has `stages`: each stage's number, name, first_iteration,
  seed and keys (msnlan.training.stages.stage_summary); the stage folders hold their .pt files.
final.pt: weights plus metadata (msnlan.training.checkpoint owns the .pt formats; read here
  through `final_metadata`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from ..errors import DataError
from ..io_utils import write_json_atomic, write_text_atomic, writing
from . import layout
from .files import numeric_column, read_csv_checked, read_json, read_yaml

if TYPE_CHECKING:
    import pandas as pd

RUN_CONFIG = "config.yaml"
ENVIRONMENT = "environment.json"
LOG = "log.csv"
RUN_CONFIG_KEYS = ("variant", "scale", "preset", "training", "data", "init_from")
#: optional config.yaml key: the optimizer changes of `msnlan train --resume-with`, in order
#: ([{'iteration', 'settings', 'date'}]; the run continued from last.pt at `iteration` with `settings`)
RESUMED_WITH = "resumed_with"
OPTIONAL_ENVIRONMENT_KEYS = {"attention_mode": str, "attention_form": str}
LOG_COLUMNS = ("iteration", "loss", "lr", "val_psnr", "seconds", "images_per_s", "stage")
LOG_HEADER = ",".join(LOG_COLUMNS) + "\n"
_LOG_HEADER_BEFORE_STAGES = ",".join(LOG_COLUMNS[:-1]) + "\n"


# ---- config.yaml ----

def write_run_config(run_dir: str | os.PathLike, config: Mapping) -> Path:
    path = Path(run_dir) / RUN_CONFIG
    write_text_atomic(path, "# resolved training configuration (variant + preset + overrides + data); written by "
                            "msnlan train\n" + yaml.safe_dump(dict(config), sort_keys=False))
    return path


def read_run_config(path: Path) -> dict:
    """A run's config.yaml; DataError naming the file and key if it lacks a RUN_CONFIG_KEYS entry."""
    data = read_yaml(path)
    missing = [k for k in RUN_CONFIG_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: not a run config: missing key(s) {', '.join(missing)}")
    for key in ("variant", "preset", "training"):
        if not isinstance(data[key], Mapping):
            raise DataError(f"{path}: key {key!r} must be a mapping, got {type(data[key]).__name__}")
    return data


# ---- data_files.tsv: the training and validation files the run read, with their sha256 ----

DATA_FILES = "data_files.tsv"


def write_data_files(run_dir: str | os.PathLike, sets: Mapping[str, Mapping[str, str]]) -> Path:
    """One row per file: set (train, val), file (relative to its dataset folder), sha256."""
    path = Path(run_dir) / DATA_FILES
    rows = ["set\tfile\tsha256"] + [f"{name}\t{f}\t{sha}" for name, files in sets.items()
                                     for f, sha in sorted(files.items())]
    write_text_atomic(path, "\n".join(rows) + "\n")
    return path


def read_data_files(path: Path) -> dict[str, dict[str, str]]:
    """{set: {file: sha256}} of a data_files.tsv (DataError naming the line if malformed)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    out: dict[str, dict[str, str]] = {}
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"{path}: line {i}: expected set, file, sha256 separated by tabs")
        out.setdefault(fields[0], {})[fields[1]] = fields[2]
    return out


# ---- environment.json ----

def write_environment(run_dir: str | os.PathLike, environment: Mapping) -> Path:
    for key, kind in OPTIONAL_ENVIRONMENT_KEYS.items():
        if environment.get(key) is not None and not isinstance(environment[key], kind):
            raise TypeError(f"environment key {key!r} must be {kind.__name__}, got {environment[key]!r}")
    path = Path(run_dir) / ENVIRONMENT
    write_json_atomic(path, dict(environment))
    return path


def read_environment(path: Path) -> dict:
    env = read_json(path)
    for key, kind in OPTIONAL_ENVIRONMENT_KEYS.items():
        if env.get(key) is not None and not isinstance(env[key], kind):
            raise DataError(f"{path}: key {key!r}: {env[key]!r} is not a {kind.__name__}")
    return env


# ---- log.csv ----

def format_log_row(iteration: int, loss: float, lr: float, val_psnr: float | None, seconds: float,
                   images_per_s: float, stage: int = 1) -> str:
    # repr keeps loss and lr exact, so resumed and uninterrupted logs can be compared bit for bit
    val = "" if val_psnr is None else repr(float(val_psnr))
    return f"{iteration},{float(loss)!r},{float(lr)!r},{val},{seconds:.3f},{images_per_s:.3f},{int(stage)}\n"


def truncate_log(path: str | os.PathLike, iteration: int) -> None:
    """Keep the header and the complete rows with iteration <= `iteration` (atomically).

    On resume this drops the rows (and any partly written last line) of the iterations that will
    be run again, so a resumed run's log has no duplicate rows. A log written before the `stage`
    column existed gets it (stage 1: such runs had one stage).
    """
    path = Path(path)
    kept = [LOG_HEADER]
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        before_stages = bool(lines) and lines[0] == _LOG_HEADER_BEFORE_STAGES
        for line in lines[1:]:
            if not line.endswith("\n"):
                break  # a row cut short by a kill
            if before_stages:
                line = line[:-1] + ",1\n"
            fields = line.rstrip("\n").split(",")
            try:
                row_iteration = int(fields[0])
            except ValueError:
                break
            if len(fields) != len(LOG_COLUMNS) or row_iteration > iteration:
                break
            kept.append(line)
    write_text_atomic(path, "".join(kept))


class LogWriter:
    """Appends rows to log.csv (created with its header if missing), flushed row by row."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            write_text_atomic(self.path, LOG_HEADER)
        with writing(self.path):
            self._file = open(self.path, "a", buffering=1)

    def write(self, *row) -> None:
        with writing(self.path):
            self._file.write(format_log_row(*row))
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_log(path: Path) -> pd.DataFrame:
    """log.csv as floats; iteration required, val_psnr NaN where not validated."""
    import pandas as pd  # here, not at the top: training jobs never read their log this way
    frame = read_csv_checked(path, ("iteration", "loss"))
    out = pd.DataFrame({"iteration": numeric_column(frame, "iteration", path, required=True)})
    for col in LOG_COLUMNS[1:]:
        if col in frame.columns:
            out[col] = numeric_column(frame, col, path, required=False)
    return out


# ---- final.pt ----

def final_metadata(path: Path) -> dict:
    """final.pt without its weights: variant, scale, preset, iterations..."""
    from ..errors import CheckpointError
    from ..training.checkpoint import read_weights

    try:
        record = read_weights(path)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    return {k: v for k, v in record.items() if k != "model"}


# ---- the run as the report sees it ----

@dataclass
class RunInfo:
    """One training run folder runs/<variant>/x<s>/[seed<k>/] (config empty if config.yaml is missing)."""

    variant: str
    scale: int
    path: Path
    config: dict = field(default_factory=dict)
    log: pd.DataFrame | None = None
    has_final: bool = False
    environment: dict = field(default_factory=dict)
    seed: int | None = None  # from the seed<k> folder; None in the one-seed layout

    def _training(self, key: str) -> Any:
        return (self.config.get("training") or {}).get(key)

    @property
    def device(self) -> str | None:
        value = self.environment.get("device")
        return None if value is None else str(value)

    @property
    def attention_form(self) -> str | None:
        return self.environment.get("attention_form")

    @property
    def preset(self) -> str | None:
        value = (self.config.get("preset") or {}).get("name")
        return None if value is None else str(value)

    @property
    def stages(self) -> list[dict]:
        """Each training stage as config.yaml records it (stage, name, first_iteration, iterations,
        batch_size, patch_size, lr, milestones, ...); a run recorded without `stages` is one stage."""
        recorded = self.config.get("stages")
        if isinstance(recorded, list) and recorded:
            return [dict(s) for s in recorded if isinstance(s, Mapping)]
        if not self.config.get("training"):
            return []
        return [{"stage": 1, "name": "stage 1", "first_iteration": 0,
                 **{k: self._training(k) for k in ("iterations", "batch_size", "patch_size", "lr", "milestones")}}]

    @property
    def stage_starts(self) -> list[int]:
        """Run iterations after which a later stage begins (the boundaries the curves mark)."""
        return [int(s["first_iteration"]) for s in self.stages[1:] if _is_number(s.get("first_iteration"))]

    @property
    def iterations(self) -> int | None:
        counts = [s.get("iterations") for s in self.stages]
        if not counts or not all(_is_number(v) for v in counts):
            return None
        return int(sum(counts))

    @property
    def patch_size(self) -> Any:
        return self._training("patch_size")

    @property
    def batch_size(self) -> Any:
        return self._training("batch_size")

    @property
    def resolved_variant(self) -> dict | None:
        return dict(self.config["variant"]) if self.config else None

    @property
    def iterations_done(self) -> int | None:
        if self.log is None or self.log.empty:
            return None
        return int(self.log["iteration"].max())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_run(variant: str, scale: int, path: Path, seed: int | None = None) -> RunInfo:
    cfg, log, env = path / RUN_CONFIG, path / LOG, path / ENVIRONMENT
    return RunInfo(variant, scale, path, read_run_config(cfg) if cfg.is_file() else {},
                   read_log(log) if log.is_file() else None, (path / "final.pt").is_file(),
                   read_environment(env) if env.is_file() else {}, seed)


def find_runs(results_dir: Path) -> list[RunInfo]:
    return [read_run(v, s, p, k) for v, s, k, p in layout.run_dirs(results_dir)]


def recorded_variant(variant: str, run: RunInfo | None) -> tuple[dict | None, str]:
    """The resolved variant a run trained, and where it came from.

    Preference: the run's config.yaml, then final.pt's metadata, then the variant file of that name
    (which may have changed since training: the source says so).
    """
    from ..errors import MsnlanError
    from ..variants import resolve_variant

    if run is not None:
        if run.config:
            return dict(run.config["variant"]), str(run.path / RUN_CONFIG)
        if run.has_final:
            return dict(final_metadata(run.path / "final.pt")["variant"]), str(run.path / "final.pt")
    try:
        return resolve_variant(variant), "variant file (current; not recorded by a run)"
    except MsnlanError:
        return None, "unknown"
