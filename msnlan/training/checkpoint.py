"""Checkpoints: the full training state (last.pt, best.pt) and the weights file (final.pt).

Everything is stored as tensors and plain Python types so that it loads with
torch.load(weights_only=True); files are written to a temp file, fsynced and renamed.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..io_utils import atomic_path

TRAIN_STATE_FORMAT = "msnlan-train-state"
WEIGHTS_FORMAT = "msnlan-weights"
FORMAT_VERSION = 1


def save(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """torch.save through a temp file beside `path`, flushed to disk before the rename.

    The bytes are made in memory first: torch's zip writer reports a full disk as an unexplained
    RuntimeError, whereas a plain write raises the OSError that names the reason (WriteError).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())


def load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """torch.load(weights_only=True); an unreadable (truncated, foreign) file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {load_failure_reason(exc)}. {ACCEPTED}") from None


#: what `load` reads, for error messages
ACCEPTED = ("Accepted are files written by torch.save holding only tensors and plain Python values: msnlan's "
            "final.pt, last.pt or best.pt, the authors' released checkpoints, or a state_dict")


def load_failure_reason(exc: BaseException) -> str:
    """The reason torch.load failed, without torch's advice to load with weights_only=False (which
    would run whatever code the file holds)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    marker = "WeightsUnpickler error:"
    if marker in text:  # weights-only refusal: the reason follows torch's two paragraphs of advice
        text = text.split(marker, 1)[1]
        text = re.split(r"\.\s+Please use|\n", text.strip(), maxsplit=1)[0]
        return f"it holds a Python object that a weights-only load does not run ({text.strip().rstrip('.')})"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_train_state(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A full training state written by `train`; anything else raises CheckpointError naming it."""
    state = load(path, map_location)
    if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} is not an msnlan training state (format {found!r}, "
                              f"expected {TRAIN_STATE_FORMAT!r})")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {state.get('version')!r} is not "
                              f"{FORMAT_VERSION}")
    missing = [k for k in ("iteration", "config", "model", "optimizer", "scheduler", "sampler", "rng")
               if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks key(s) {', '.join(missing)}")
    return state


# --- random number generator states, as tensors ---------------------------------------------

def rng_state(device: Any = None) -> dict:
    """Python, NumPy, torch and (on a CUDA `device`) that device's RNG states, weights-only-loadable.

    Only the training device's CUDA state is taken: asking every GPU would open a CUDA context
    on each of them, in each of the concurrent training processes.
    """
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        state["cuda"] = [torch.cuda.get_rng_state(device)]
    return state


def set_rng_state(state: Mapping[str, Any], device: Any = None) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    device = torch.device(device) if device is not None else None
    if state.get("cuda") and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"][0].cpu(), device)


# --- weights ----------------------------------------------------------------------------------

def cpu_state_dict(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def weights_record(model: nn.Module, variant: Mapping, scale: int, preset: str, iterations: int,
                   **extra: Any) -> dict:
    """What final.pt holds: the weights plus what is needed to rebuild the network."""
    return {"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION, "model": cpu_state_dict(model),
            "variant": dict(variant), "scale": int(scale), "preset": preset,
            "iterations": int(iterations), **extra}


def read_weights(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """{'model', 'variant', 'scale', ...} from final.pt or a training state; CheckpointError otherwise."""
    obj = load(path, map_location)
    if isinstance(obj, dict) and obj.get("format") == TRAIN_STATE_FORMAT:
        obj = load_train_state(path, map_location)
        return {"model": obj["model"], "variant": obj["config"]["variant"], "scale": obj["config"]["scale"],
                "preset": obj["config"]["preset"]["name"], "iterations": obj["iteration"]}
    if not isinstance(obj, dict) or obj.get("format") != WEIGHTS_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} is not an msnlan weights file (format {found!r}, expected "
                              f"{WEIGHTS_FORMAT!r} or {TRAIN_STATE_FORMAT!r})")
    missing = [k for k in ("model", "variant", "scale") if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks key(s) {', '.join(missing)}")
    return obj


def build_network(variant: Mapping, scale: int) -> nn.Module:
    """msnlan.models.network.build_model from a resolved variant dict (as stored in checkpoints)."""
    from ..models.network import build_model

    return build_model(dict(variant), int(scale))


def load_model(path: str | os.PathLike, device: Any = "cpu") -> nn.Module:
    """The network stored in final.pt (or last.pt/best.pt), built and loaded, in eval mode on `device`.

    The returned module carries `.checkpoint_info` (path, preset, iterations, variant name).
    """
    record = read_weights(path)
    model = build_network(record["variant"], record["scale"])
    try:
        model.load_state_dict(record["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: weights do not fit variant "
                              f"{record['variant'].get('name')!r} at x{record['scale']}: {str(exc)[:500]}") from None
    model.checkpoint_info = {"path": str(path), "preset": record.get("preset"),
                             "iterations": record.get("iterations"), "variant": record["variant"].get("name"),
                             "scale": int(record["scale"])}
    return model.to(torch.device(device)).eval()


# --- x3/x4 from x2 ----------------------------------------------------------------------------

def upsampler_prefixes(model: nn.Module) -> set[str]:
    """Names of the modules that hold a PixelShuffle: the scale-specific upsampler."""
    prefixes = set()
    for name, module in model.named_modules():
        if any(isinstance(child, nn.PixelShuffle) for child in module.children()):
            prefixes.add(name)
    return prefixes


def load_pretrained(model: nn.Module, path: str | os.PathLike, variant: Mapping | None = None) -> dict:
    """Initialise `model` from another scale's checkpoint: every weight except the upsampler's
    and those whose shapes differ. Returns {'loaded': [...], 'skipped': {key: reason}}."""
    try:
        record = read_weights(path)
        source_state, source_variant = record["model"], record["variant"]
    except CheckpointError:
        raw = load(path)
        if not (isinstance(raw, dict) and raw and all(torch.is_tensor(v) for v in raw.values())):
            raise
        source_state, source_variant = raw, None  # a plain state_dict (e.g. converted weights)
    if variant is not None and source_variant is not None:
        differ = sorted(k for k in set(variant["model"]) | set(source_variant["model"])
                        if variant["model"].get(k) != source_variant["model"].get(k))
        if differ:
            raise CheckpointError(f"--init-from {path}: its variant {source_variant.get('name')!r} differs from "
                                  f"{variant.get('name')!r} in model.{', model.'.join(differ)}")
    target = model.state_dict()
    prefixes = upsampler_prefixes(model)
    loaded, skipped, new_state = [], {}, {}
    for key, value in source_state.items():
        if any(key == p or key.startswith(p + ".") for p in prefixes if p):
            skipped[key] = "upsampler"
        elif key not in target:
            skipped[key] = "not in this network"
        elif tuple(value.shape) != tuple(target[key].shape):
            skipped[key] = f"shape {tuple(value.shape)} != {tuple(target[key].shape)}"
        else:
            new_state[key] = value
            loaded.append(key)
    if not loaded:
        raise CheckpointError(f"--init-from {path}: no weight fits this network (foreign checkpoint?)")
    model.load_state_dict(new_state, strict=False)
    left_fresh = sorted(k for k in target if k not in new_state)
    return {"loaded": loaded, "skipped": skipped, "initialised_fresh": left_fresh}
