"""Variant files: loading, base inheritance and schema validation.

A variant file names its base (`_base_`) and lists only what differs, as in detectron2's
configs. `resolve_variant` returns the full, validated model settings.

A name resolves, in this order, to: a file beside the referring file; a file of the user's folder
($MSNLAN_ABLATIONS, else the checkout's ablations/); one of the five standard variants shipped in
msnlan/standard_variants; the built-in base "paper" (msnlan.paper.PAPER_MODEL). So an installed
package knows the standard variants, and a user's file of the same name overrides one.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from .checks import schema_error_message, validate_with_schema
from .errors import ConfigError

#: every setting of the generic network; a resolved variant has all of them
MODEL_KEYS = (
    "n_feats", "n_resgroups", "n_resblocks", "block", "msnlab", "patch_sizes", "dense_skips",
    "softmax_scale", "res_scale", "reduction", "rgb_mean", "rgb_range",
)


#: the built-in base of the standard variants: the paper model's settings (msnlan.paper)
PAPER_BASE = "paper"


def user_variants_dir() -> Path | None:
    """The user's variant folder: $MSNLAN_ABLATIONS, else the checkout's ablations/ (None if absent).

    Its files override the standard variants of the same name and add new ones.
    """
    env = os.environ.get("MSNLAN_ABLATIONS")
    if env:
        if not Path(env).is_dir():
            raise ConfigError(f"MSNLAN_ABLATIONS: variant folder {env} does not exist")
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "ablations"
    return checkout if checkout.is_dir() else None


def standard_variants_dir() -> Path:
    """The five standard variants shipped with the package (msnlan/standard_variants)."""
    return Path(str(resources.files("msnlan").joinpath("standard_variants")))


def _named_files() -> dict[str, Path]:
    """Variant name -> file: the standard variants, overridden and extended by the user's folder."""
    files = {p.stem: p for p in standard_variants_dir().glob("*.yaml")}
    user = user_variants_dir()
    if user is not None:
        files.update({p.stem: p for p in user.glob("*.yaml")})
    return files


def list_variants() -> list[str]:
    """Names of the registered variants: the standard ones and those of the user's folder."""
    return sorted(_named_files())


@lru_cache(maxsize=None)
def _schema_file() -> dict:
    return json.loads(resources.files("msnlan").joinpath("schemas/variant.schema.json").read_text())


def _schema() -> dict:
    """The variant schema with the block settings taken from the block registries: `block` is one
    of the registered trunk blocks, and each registered attention block has its on/off setting."""
    from .models.registry import ATTENTION_BLOCKS, TRUNK_BLOCKS

    schema = copy.deepcopy(_schema_file())
    model = schema["properties"]["model"]["properties"]
    model["block"] = {"enum": sorted(TRUNK_BLOCKS)}
    for name in ATTENTION_BLOCKS:
        model[name] = {"type": "boolean"}
    return schema


def _variant_wording(err) -> str:
    if err.validator == "not" and "patch_sizes" in [str(p) for p in err.absolute_path]:
        key = ".".join(str(p) for p in err.absolute_path)
        return f"key {key!r}: patch size {err.instance!r} must be odd"
    return schema_error_message(err)


def validate_variant_dict(data: Any, source: str) -> None:
    """Check one variant file's content against the schema; raise ConfigError naming file and key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a variant file must be a mapping, got {type(data).__name__}")
    validate_with_schema(_schema(), data, source, wording=_variant_wording)


def _locate(ref: str, relative_to: Path | None) -> Path | str:
    """A variant reference: a file beside the referring one, a path, a registered name, or the
    built-in base "paper" (returned as that string)."""
    candidates = []
    if relative_to is not None:
        candidates += [relative_to / ref, relative_to / f"{ref}.yaml"]
    candidates.append(Path(ref))
    is_name = not ref.endswith((".yaml", ".yml")) and "/" not in ref
    if is_name and ref in _named_files():
        candidates.append(_named_files()[ref])
    for c in candidates:
        if c.is_file():
            return c.resolve()
    if ref == PAPER_BASE:
        return PAPER_BASE
    known = ", ".join(list_variants()) if Path(ref).suffix == "" else ""
    raise ConfigError(f"unknown variant {ref!r}" + (f" (registered: {known})" if known else ""))


def _locate_base(ref: str, relative_to: Path | None, source: str) -> Path | str:
    """`_locate` for a `_base_` value: an unknown base names the file that refers to it and the key."""
    try:
        return _locate(ref, relative_to)
    except ConfigError as exc:
        raise ConfigError(f"{source}: key '_base_': {exc}") from None


def _load(ref: Path | str, chain: tuple) -> dict:
    if ref == PAPER_BASE:
        from .paper import PAPER_DESCRIPTION, PAPER_MODEL

        return {"description": PAPER_DESCRIPTION, "model": copy.deepcopy(PAPER_MODEL)}
    return _load_file(ref, chain)


def _load_file(path: Path, chain: tuple[Path, ...]) -> dict:
    if path in chain:
        cycle = " -> ".join(str(p) for p in chain + (path,))
        raise ConfigError(f"{path}: _base_ cycle: {cycle}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    validate_variant_dict(data, str(path))
    model: dict = {}
    if "_base_" in data:
        base = _load(_locate_base(data["_base_"], path.parent, str(path)), chain + (path,))
        model = base["model"]
    model.update(copy.deepcopy(data.get("model", {})))
    return {"description": data.get("description", ""), "model": model}


def _check_complete(model: dict, source: str) -> None:
    missing = [k for k in MODEL_KEYS if k not in model]
    if missing:
        raise ConfigError(f"{source}: resolved variant lacks key(s) {', '.join('model.' + k for k in missing)} "
                          "(name a complete base with _base_)")
    if model["msnlab"] and not model["patch_sizes"]:
        raise ConfigError(f"{source}: key 'model.patch_sizes' must list at least one size when msnlab is on")
    if model["reduction"] > model["n_feats"]:
        raise ConfigError(f"{source}: key 'model.reduction' ({model['reduction']}) exceeds n_feats ({model['n_feats']})")


def resolve_variant(variant: str | os.PathLike | Mapping[str, Any], **overrides: Any) -> dict:
    """Full settings of a variant: {'name', 'description', 'source', 'model': {...}}.

    `variant` is a registered name (``"msnlan"``), a path to a YAML file, or a mapping with the
    same structure as a file (or a flat mapping of model settings). `overrides` replace model settings.
    """
    if isinstance(variant, Mapping):
        data = dict(variant)
        if "model" not in data and "_base_" not in data and "description" not in data:
            data = {"model": data}
        validate_variant_dict(data, "<mapping>")
        model: dict = {}
        if "_base_" in data:
            model = _load(_locate_base(data["_base_"], None, "<mapping>"), ())["model"]
        model.update(copy.deepcopy(data.get("model", {})))
        resolved = {"name": data.get("name", "custom"), "description": data.get("description", ""),
                    "source": "<mapping>", "model": model}
    else:
        path = _locate(os.fspath(variant), None)
        loaded = _load(path, ())
        name = path.stem if isinstance(path, Path) else PAPER_BASE
        resolved = {"name": name, "description": loaded["description"], "source": str(path),
                    "model": loaded["model"]}
    if overrides:
        validate_variant_dict({"model": overrides}, f"{resolved['source']} (overrides)")
        resolved["model"].update(copy.deepcopy(overrides))
    _check_complete(resolved["model"], resolved["source"])
    return resolved


def write_variant_file(path: str | os.PathLike, resolved: Mapping[str, Any], header: str = "") -> None:
    """A complete variant file (no _base_): resolving it gives `resolved`'s description and model."""
    from .io_utils import write_text_atomic

    body = yaml.safe_dump({"description": resolved["description"], "model": dict(resolved["model"])},
                          sort_keys=False)
    write_text_atomic(path, header + body)


def variant_hash(resolved: Mapping[str, Any]) -> str:
    """Stable hash of a resolved variant's model settings (what decides the network)."""
    blob = json.dumps(resolved["model"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def component_columns() -> list[tuple[str, str]]:
    """(key, label) of the ablation table's component columns, from the block registries."""
    from .models.registry import ATTENTION_BLOCKS

    cols = []
    for block in ATTENTION_BLOCKS.values():
        cols.append((block.name, block.label))
        if block.multi_scale is not None:
            cols.append(("multi_scale", "Multi-scale"))
    return cols + [("dense_skips", "Dense skips"), ("block", "Block")]


def components(model: Mapping[str, Any]) -> dict:
    """The ablation table's marks, derived from the settings: True/False per component column,
    and the trunk block's label under "block"."""
    from .models.registry import ATTENTION_BLOCKS, TRUNK_BLOCKS

    out: dict[str, Any] = {}
    for block in ATTENTION_BLOCKS.values():
        on = bool(model.get(block.name))
        out[block.name] = on
        if block.multi_scale is not None:
            out["multi_scale"] = on and block.multi_scale(model)
    out["dense_skips"] = bool(model["dense_skips"])
    block = TRUNK_BLOCKS.get(model["block"])
    out["block"] = block.label if block else str(model["block"]).upper()
    return out
