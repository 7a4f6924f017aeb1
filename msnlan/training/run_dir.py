"""The run directory's identity: config.yaml (variant + preset + overrides + data), and what to do
with an existing folder: resume it, refuse a changed config, or move it aside (--restart)."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError, DataError
from ..io_utils import ensure_writable_dir, writing
from ..results.runs import (DATA_FILES, ENVIRONMENT, LOG, RESUMED_WITH, RUN_CONFIG, read_data_files, read_run_config,
                            write_data_files, write_run_config)
from .stages import is_staged, resolve_stages, stage_summary

RUN_FILES = (RUN_CONFIG, "last.pt", "best.pt", "final.pt", LOG, ENVIRONMENT)
#: where these differ the run is still the same run (descriptions, file locations of the same settings;
#: `resumed_with`, the optimizer changes made when continuing it, is its history, not its identity)
#: keys that do not decide the trained weights. training.channels_last is a memory layout (the same
#: arithmetic up to float rounding, like the device, which is not part of the config either): a run
#: may resume under another layout, e.g. one started before the presets' `auto`; environment.json
#: records each session's memory_format. training.cuda_graphs replays the kernels an eager step
#: launches, so a run may resume with or without them (environment.json: cuda_graphs).
IGNORED_KEYS = ("variant.source", "variant.description", "preset.source", "preset.description", RESUMED_WITH,
                "training.channels_last", "training.cuda_graphs")
#: config keys holding each data set's fingerprint (msnlan.data.datasets.files_fingerprint)
FINGERPRINT_KEYS = {"train": "data.train_fingerprint", "val": "data.val_fingerprint"}


def build_config(variant: Mapping, scale: int, preset: Mapping, train_data, val_data, init_from,
                 fingerprints: Mapping[str, str] | None = None) -> dict:
    """Everything that decides the trained weights, as plain YAML-able data.

    `fingerprints` ({'train': ..., 'val': ...}) record what the data sets contain, so that a resume
    notices replaced images."""
    def absolute(p):
        return None if p is None else str(Path(p).resolve())

    config = {
        "variant": dict(variant),
        "scale": int(scale),
        "preset": {"name": preset["name"], "source": preset["source"], "description": preset.get("description", "")},
        "training": dict(preset["settings"]),
        "data": {"train": absolute(train_data), "val": absolute(val_data),
                 **{f"{k}_fingerprint": v for k, v in (fingerprints or {}).items()}},
        "init_from": absolute(init_from),
    }
    if is_staged(preset["settings"]):
        config["stages"] = stage_summary(resolve_stages(preset["settings"]))
    return normalize(config)


def normalize(config: Mapping) -> dict:
    """Round trip through YAML, so tuples/lists and number types compare as they will be read back."""
    return yaml.safe_load(yaml.safe_dump(dict(config), sort_keys=False))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def config_differences(old: Mapping, new: Mapping) -> list[str]:
    """Dotted keys whose values differ ("key: old -> new"), ignoring IGNORED_KEYS."""
    a, b = _flatten(normalize(old)), _flatten(normalize(new))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in IGNORED_KEYS or a.get(key, "<absent>") == b.get(key, "<absent>"):
            continue
        diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs


def read_config(run_dir: Path) -> dict:
    try:
        return read_run_config(run_dir / RUN_CONFIG)
    except DataError as exc:
        raise ConfigError(f"{exc}; use --restart to start the run afresh") from None


def move_aside(run_dir: Path) -> Path:
    """Rename RUN_DIR to RUN_DIR.old-<timestamp>[-n] (never deleting anything)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    with writing(target):
        os.replace(run_dir, target)
    return target


def _data_changes(run_dir: Path, config: Mapping, data_files: Mapping | None, diffs: list[str]) -> str:
    """For a changed data fingerprint: which files changed, from the run's data_files.tsv."""
    changed = [s for s, key in FINGERPRINT_KEYS.items() if any(d.startswith(key + ":") for d in diffs)]
    if not changed or data_files is None or not (run_dir / DATA_FILES).is_file():
        return ""
    from ..data.datasets import changed_files

    recorded = read_data_files(run_dir / DATA_FILES)
    parts = [f"{s} data {config['data'][s]}: {changed_files(recorded.get(s, {}), data_files.get(s, {}))}"
             for s in changed]
    return (" The data changed since the run started (" + "; ".join(parts) + "): restore the files it "
            "trained on, or use --restart.")


def check_run_dir(run_dir: str | os.PathLike, config: Mapping, restart: bool = False,
                  data_files: Mapping | None = None) -> str:
    """What `prepare_run_dir` will find, without changing anything: 'new', 'resume' or 'finished'.

    An existing run with another config is refused (ConfigError naming the differing keys, and the
    changed files where the data changed) unless `restart`; so is a folder with run files but no config.
    """
    run_dir = Path(run_dir)
    has_config = (run_dir / RUN_CONFIG).is_file()
    if has_config and not restart:
        diffs = config_differences(read_config(run_dir), config)
        if diffs:
            raise ConfigError(f"{run_dir / RUN_CONFIG} was written for another configuration; differing "
                              f"key(s): {'; '.join(diffs)}.{_data_changes(run_dir, config, data_files, diffs)} "
                              "Use --restart to move the old run aside and start again, or choose another --out")
    elif not has_config and run_dir.is_dir() and not restart:
        # stage folders count only with checkpoints in them (Snakemake makes the empty folder of a job's output)
        leftovers = [n for n in RUN_FILES if (run_dir / n).exists()]
        leftovers += sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("stage*/*.pt"))
        if leftovers:
            raise ConfigError(f"{run_dir} holds run files ({', '.join(leftovers)}) but no {RUN_CONFIG}; "
                              "use --restart to move it aside")
    if restart or not has_config:
        return "new"
    if (run_dir / "final.pt").is_file():
        return "finished"
    started = (run_dir / "last.pt").is_file() or any(run_dir.glob("stage*/*.pt"))
    return "resume" if started else "new"


def record_resume_with(run_dir: Path, iteration: int, settings: Mapping[str, Any]) -> dict:
    """Append {'iteration', 'settings', 'date'} to config.yaml's `resumed_with` list; returns the entry."""
    config = read_config(run_dir)
    entry = {"iteration": int(iteration), "settings": normalize(settings),
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    config[RESUMED_WITH] = list(config.get(RESUMED_WITH) or []) + [entry]
    write_run_config(run_dir, config)
    return entry


def prepare_run_dir(run_dir: str | os.PathLike, config: Mapping, restart: bool = False, say=print,
                    data_files: Mapping | None = None) -> str:
    """Make RUN_DIR ready for `config`; returns 'new', 'resume' or 'finished'.

    Checks as `check_run_dir`; `restart` moves an existing run aside first. A new run gets its
    config.yaml and, given `data_files` ({set: {file: sha256}}), its data_files.tsv.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config, restart, data_files)
    if restart and run_dir.is_dir() and any(run_dir.iterdir()):
        say(f"--restart: moved the previous run to {move_aside(run_dir)}")
    ensure_writable_dir(run_dir)
    if (run_dir / RUN_CONFIG).is_file():
        if (run_dir / "final.pt").is_file():
            return "finished"
        started = (run_dir / "last.pt").is_file() or any(run_dir.glob("stage*/*.pt"))
        return "resume" if started else "new"
    if data_files is not None:
        write_data_files(run_dir, data_files)
    write_run_config(run_dir, config)
    return "new"
