"""Training presets: YAML files of the training recipe, `--set key=value` overrides, validation.

A preset is a registered name (a file of msnlan/presets/) or a path to a YAML file. Every key is
checked against PRESET_SCHEMA; an unknown or ill-typed key raises ConfigError naming the file
and the key. `model` holds variant overrides, validated when the variant is resolved.
"""
from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..checks import validate_with_schema
from ..errors import ConfigError
from .preset_schema import PRESET_SCHEMA, STAGE_KEYS


def presets_dir() -> Path:
    """Folder of the registered presets (package data msnlan/presets)."""
    return Path(str(resources.files("msnlan").joinpath("presets")))


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def _locate(preset: str | os.PathLike) -> Path:
    ref = os.fspath(preset)
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or os.sep in ref:
        if not path.is_file():
            raise ConfigError(f"preset file {ref} does not exist")
        return path.resolve()
    registered = presets_dir() / f"{ref}.yaml"
    if registered.is_file():
        return registered
    raise ConfigError(f"unknown preset {ref!r} (registered: {', '.join(list_presets())}; "
                      "or pass a path to a YAML file)")


def parse_value(text: str) -> Any:
    """A --set value: YAML (lists, booleans, null), with '2e-4'-style numbers read as floats."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set value {text!r} is not valid YAML: {exc}") from None
    if isinstance(value, str):
        # YAML 1.1 reads 2e-4 (no dot) as a string; users mean a number.
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


def parse_set_items(items: Iterable[str]) -> dict[str, Any]:
    """['lr=1e-4', 'model.n_feats=32'] -> {'lr': 1e-4, 'model.n_feats': 32}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        out[key] = parse_value(text)
    return out


def apply_overrides(settings: dict, overrides: Mapping[str, Any], source: str) -> dict:
    """Copy of `settings` with dotted-key overrides applied; unknown keys raise ConfigError."""
    settings = copy.deepcopy(settings)
    known = [k for k in PRESET_SCHEMA["properties"] if k != "description"]
    for key, value in overrides.items():
        top, _, rest = key.partition(".")
        if top not in known or top == "description":
            raise ConfigError(f"--set: unknown preset key {key!r} (known: {', '.join(sorted(known))})")
        if rest and top == "stages":
            _set_stage_key(settings, key, rest, value)
        elif rest:
            if top != "model" or "." in rest:
                raise ConfigError(f"--set: key {key!r}: only model.<setting> and stages.<n>.<key> take a dotted name")
            settings.setdefault("model", {})[rest] = copy.deepcopy(value)
        else:
            settings[top] = copy.deepcopy(value)
    validate_preset(settings, f"{source} with --set overrides")
    return settings


def _set_stage_key(settings: dict, key: str, rest: str, value: Any) -> None:
    """--set stages.<n>.<key>=value: one key of stage n (1-based) of a preset that has stages."""
    number, _, stage_key = rest.partition(".")
    stages = settings.get("stages")
    if not stages:
        raise ConfigError(f"--set: key {key!r}: this preset has no stages")
    if not number.isdigit() or not 1 <= int(number) <= len(stages):
        raise ConfigError(f"--set: key {key!r}: stages are numbered 1 to {len(stages)}")
    if stage_key not in STAGE_KEYS + ("name",):
        raise ConfigError(f"--set: key {key!r}: a stage sets only {', '.join(STAGE_KEYS + ('name',))}")
    stages[int(number) - 1][stage_key] = copy.deepcopy(value)


def validate_preset(data: Any, source: str) -> None:
    """Check preset content against the schema; raise ConfigError naming the source and key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a preset must be a mapping, got {type(data).__name__}")
    validate_with_schema(PRESET_SCHEMA, dict(data), source)


def load_preset(preset: str | os.PathLike = "paper", overrides: Mapping[str, Any] | Iterable[str] = ()) -> dict:
    """Resolved preset: {'name', 'source', 'settings': {...}} with overrides applied and validated.

    `overrides` is a mapping of dotted keys or a list of 'key=value' strings (the CLI's --set).
    """
    path = _locate(preset)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    validate_preset(data, str(path))
    settings = {k: v for k, v in data.items() if k != "description"}
    if not isinstance(overrides, Mapping):
        overrides = parse_set_items(overrides)
    if overrides:
        settings = apply_overrides(settings, overrides, str(path))
    return {"name": path.stem, "source": str(path), "description": data.get("description", ""),
            "settings": settings}


def trained_variant(variant: str | os.PathLike | Mapping[str, Any], preset: str | os.PathLike | Mapping = "paper",
                    overrides: Mapping[str, Any] | Iterable[str] = ()) -> dict:
    """The network a preset trains: `variant` resolved with the preset's model settings applied.

    `preset` is a preset name or path (loaded with `overrides`), or an already loaded preset.
    """
    from ..variants import resolve_variant

    loaded = preset if isinstance(preset, Mapping) else load_preset(preset, overrides)
    return resolve_variant(variant, **(loaded["settings"].get("model") or {}))
