"""The run directory's identity: config.yaml (variant + preset + overrides + data), and what to do
with an existing folder: resume it, refuse a changed config, or move it aside (--restart)."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError, DataError
from ..results.runs import ENVIRONMENT, LOG, RUN_CONFIG, read_run_config, write_run_config

RUN_FILES = (RUN_CONFIG, "last.pt", "best.pt", "final.pt", LOG, ENVIRONMENT)
#: where these differ the run is still the same run (descriptions, file locations of the same settings)
IGNORED_KEYS = ("variant.source", "variant.description", "preset.source", "preset.description")


def build_config(variant: Mapping, scale: int, preset: Mapping, train_data, val_data, init_from) -> dict:
    """Everything that decides the trained weights, as plain YAML-able data."""
    def absolute(p):
        return None if p is None else str(Path(p).resolve())

    config = {
        "variant": dict(variant),
        "scale": int(scale),
        "preset": {"name": preset["name"], "source": preset["source"], "description": preset.get("description", "")},
        "training": dict(preset["settings"]),
        "data": {"train": absolute(train_data), "val": absolute(val_data)},
        "init_from": absolute(init_from),
    }
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
    os.replace(run_dir, target)
    return target


def prepare_run_dir(run_dir: str | os.PathLike, config: Mapping, restart: bool = False, say=print) -> str:
    """Make RUN_DIR ready for `config`; returns 'new', 'resume' or 'finished'.

    An existing run with another config is refused (ConfigError naming the differing keys) unless
    `restart`, which moves it aside first; so does an existing folder with run files but no config.
    """
    run_dir = Path(run_dir)
    has_config = (run_dir / RUN_CONFIG).is_file()
    if has_config and not restart:
        diffs = config_differences(read_config(run_dir), config)
        if diffs:
            raise ConfigError(f"{run_dir / RUN_CONFIG} was written for another configuration; differing "
                              f"key(s): {'; '.join(diffs)}. Use --restart to move the old run aside and "
                              "start again, or choose another --out")
    elif not has_config and run_dir.is_dir() and not restart:
        leftovers = [n for n in RUN_FILES if (run_dir / n).exists()]
        if leftovers:
            raise ConfigError(f"{run_dir} holds run files ({', '.join(leftovers)}) but no {RUN_CONFIG}; "
                              "use --restart to move it aside")
    if restart and run_dir.is_dir() and any(run_dir.iterdir()):
        say(f"--restart: moved the previous run to {move_aside(run_dir)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / RUN_CONFIG).is_file():
        if (run_dir / "final.pt").is_file():
            return "finished"
        return "resume" if (run_dir / "last.pt").is_file() else "new"
    write_run_config(run_dir, config)
    return "new"
