"""Checks of values that many modules accept from users: scales, devices and schema-checked files.

Each check lives here once so that every entry point (API, CLI, workflow) words its error the same.
"""
from __future__ import annotations

import os
import re
from numbers import Number
from typing import Any, Iterable, Mapping

from .errors import ConfigError

#: the scales the network (and the authors' checkpoints) support
SCALES = (2, 3, 4)
#: device requests accepted everywhere (--device, the workflow's `device` key)
DEVICE_PATTERN = r"auto|cpu|cuda|cuda:[0-9]+"
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def check_scale(scale: Any, *, supported: Iterable[int] | None = SCALES, error: type[Exception] = ConfigError,
                what: str = "scale") -> int:
    """`scale` as an int: a positive integer and, unless `supported` is None, one of `supported`.

    `error` is the exception class raised (the caller's domain); `what` names the value in the
    message (e.g. '--scale').
    """
    if isinstance(scale, bool):
        ok = False
    elif supported is None:
        ok = hasattr(scale, "__index__") and int(scale) >= 1  # int and numpy integers
    else:
        supported = tuple(supported)
        ok = isinstance(scale, Number) and scale in supported  # 2.0 is scale 2
    if ok:
        return int(scale)
    if supported is None:
        raise error(f"{what} must be a positive integer, got {scale!r}")
    raise error(f"{what} {scale!r} is not one of {', '.join(map(str, supported))}")


def check_paired(lead_flag: str, lead: list, others: Mapping[str, list | None]) -> None:
    """Options given as parallel lists (e.g. `--dataset A B --out A.csv B.csv`): each of `others`
    (flag -> values, None when not given) has one value per value of `lead`, and no value of any of
    them appears twice. ConfigError naming the flag or the value otherwise."""
    for flag, values in others.items():
        if values is not None and len(values) != len(lead):
            raise ConfigError(f"{flag} names {len(values)} value(s) for {len(lead)} {lead_flag} value(s): give "
                              f"one per {lead_flag} value, in the same order")
    for flag, values in {lead_flag: lead, **others}.items():
        repeated = [v for i, v in enumerate(values or ()) if v in (values or ())[:i]]
        if repeated:
            raise ConfigError(f"{flag}: {repeated[0]} is named twice")


def resolve_device(device: Any = "auto", *, present: bool = True):
    """A torch.device for a device request: 'auto' (or None) is cuda when available, else cpu.

    With `present`, a CUDA request must name a device this machine has; without it only the form
    is checked (e.g. to know which device type a plan refers to). Anything but cpu/cuda is refused:
    the suite runs on nothing else.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str) and re.fullmatch(DEVICE_PATTERN, device.strip().lower()):
        dev = torch.device(device.strip().lower())
    else:
        raise ConfigError(f"device {device!r} is not supported (use {DEVICE_CHOICES})")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported (use {DEVICE_CHOICES})")
    if present and dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine (use cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def _dotted(path: Iterable) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_error_message(err) -> str:
    """One jsonschema ValidationError as a message naming the key: 'unknown key ...', 'key ...: ...'."""
    key = _dotted(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        if extra:
            return (f"unknown key {_dotted(list(err.absolute_path) + [extra[0]])!r}"
                    + (f" (allowed here: {', '.join(known)})" if known else ""))
    if err.validator == "required" and isinstance(err.instance, Mapping):
        missing = [k for k in err.validator_value if k not in err.instance]
        prefix = f"{key}." if err.absolute_path else ""
        return f"missing key(s) {', '.join(repr(prefix + k) for k in missing)}"
    if err.validator == "enum":
        return f"key {key!r}: {err.instance!r} is not one of {err.validator_value}"
    return f"key {key!r}: {err.message}"


def schema_errors(schema: Mapping, data: Any) -> list:
    """The schema's complaints about `data`, outermost key first (the one a user fixes first)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return sorted(validator.iter_errors(data),
                  key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))


def validate_with_schema(schema: Mapping, data: Any, source: str, *, error: type[Exception] = ConfigError,
                         wording=schema_error_message) -> None:
    """Raise `error` as '<source>: <message>' for the first schema complaint about `data`."""
    errors = schema_errors(schema, data)
    if errors:
        raise error(f"{source}: {wording(errors[0])}")


def _real(path) -> str:
    return os.path.realpath(os.fspath(path))


def is_inside(path, folder) -> bool:
    """Whether `path` is `folder` or lies below it (symbolic links resolved)."""
    path, folder = _real(path), _real(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_path(output, inputs: Mapping[str, Any], what: str = "output") -> None:
    """Refuse an output that is, or lies inside, something the command reads.

    `inputs` maps a description ("dataset folder", "--checkpoint") to a path (None is skipped); a
    folder protects everything below it, a file itself. Raises ConfigError naming both, before
    anything is written, so that no command can overwrite its own input (e.g. SR images saved
    over the ground truth).
    """
    for label, source in inputs.items():
        if source is None or not os.path.exists(source):
            continue
        if is_inside(output, source):
            kind = "is" if _real(output) == _real(source) else "lies inside"
            raise ConfigError(f"{what} {output} {kind} the {label} {source}, which this command reads; "
                              "choose an output outside its input (nothing was written)")
