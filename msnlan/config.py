"""The workflow config: one schema (msnlan/schemas/config.schema.yaml) for the workflow and the report.

`validate_config` checks a whole config and fills in the schema's defaults (what the Snakefile
runs before planning); with `partial=True` it checks only the keys present (what `msnlan report`
does with a config that may hold just a `report:` section). Errors name the source and the key.
"""
from __future__ import annotations

import copy
import os
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import yaml

from .checks import validate_with_schema
from .errors import ConfigError
from .io_utils import write_text_atomic


@lru_cache(maxsize=None)
def config_schema() -> dict:
    return yaml.safe_load(resources.files("msnlan").joinpath("schemas/config.schema.yaml").read_text())


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    """A subschema with a local $ref ("#/$defs/name") merged in (siblings of $ref win)."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    target: Any = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


def fill_defaults(data: dict, schema: Mapping | None = None, root: Mapping | None = None) -> dict:
    """Set every absent key that has a schema default, depth first (in place; returns `data`)."""
    root = root or config_schema()
    schema = _resolve(root if schema is None else schema, root)
    for key, sub in (schema.get("properties") or {}).items():
        sub = _resolve(sub, root)
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if isinstance(data.get(key), dict):
            fill_defaults(data[key], sub, root)
    return data


def write_config(path: str | os.PathLike, cfg: Mapping[str, Any], sources: str) -> None:
    """The workflow config in force (defaults filled in), as YAML; `msnlan report` reads it back."""
    write_text_atomic(path, f"# workflow config in force (defaults filled in); from: {sources}\n"
                            + yaml.safe_dump(dict(cfg), sort_keys=False))


def validate_config(data: Any, source: str, *, partial: bool = False) -> dict:
    """A checked copy of a workflow config; defaults filled unless `partial`.

    `partial`: only the keys present are checked (no required keys, no defaults).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config file must be a mapping, got {type(data).__name__}")
    data = copy.deepcopy(dict(data))
    schema = config_schema()
    if partial:
        schema = {k: v for k, v in schema.items() if k != "required"}
    validate_with_schema(schema, data, source)
    return data if partial else fill_defaults(data)
