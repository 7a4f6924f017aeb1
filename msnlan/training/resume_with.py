"""`msnlan train --resume-with KEY=VALUE`: continue a run from last.pt with changed optimizer settings.

The run keeps its identity (config.yaml's `training` is what it started with, so the plain command
still resumes it); each change is appended to config.yaml's `resumed_with` list with the iteration
it starts from, and last.pt records the changes it has absorbed. A change recorded but not yet in a
checkpoint (the session stopped before its first save) is applied again on the next resume.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..results.runs import RESUMED_WITH, RUN_CONFIG, read_run_config
from .divergence import RESUMABLE_KEYS
from .presets import apply_overrides, parse_set_items


def resume_changes(items: Mapping[str, Any] | Iterable[str], settings: Mapping, source: str) -> dict:
    """--resume-with items as a checked {key: value}: only RESUMABLE_KEYS, values valid for the preset."""
    changes = dict(items) if isinstance(items, Mapping) else parse_set_items(items)
    unknown = [k for k in changes if k not in RESUMABLE_KEYS]
    if unknown:
        raise ConfigError(f"--resume-with: {', '.join(map(repr, unknown))} cannot change when continuing a run "
                          f"(possible: {', '.join(RESUMABLE_KEYS)}); other settings need --restart")
    if changes:
        apply_overrides(dict(settings), changes, f"{source} with --resume-with")  # schema check of the values
    return changes


def apply_changes(optimizer, scheduler, settings: Mapping[str, Any]) -> None:
    """Set the Adam and MultiStepLR settings in place (the loaded state keeps everything else)."""
    for group in optimizer.param_groups:
        if "lr" in settings:
            group["lr"] = float(settings["lr"])
        if "betas" in settings:
            group["betas"] = tuple(float(b) for b in settings["betas"])
        if "eps" in settings:
            group["eps"] = float(settings["eps"])
        if "weight_decay" in settings:
            group["weight_decay"] = float(settings["weight_decay"])
    if "lr" in settings:  # later milestones multiply the new rate
        scheduler.base_lrs = [float(settings["lr"])] * len(optimizer.param_groups)
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    if "milestones" in settings:
        scheduler.milestones = Counter(sorted(int(m) for m in settings["milestones"]))
    if "gamma" in settings:
        scheduler.gamma = float(settings["gamma"])


def pending_changes(run_dir: Path, state: Mapping, optimizer, scheduler, say) -> list:
    """Apply config.yaml's `resumed_with` entries that the loaded last.pt has not absorbed yet;
    returns every entry (what the next checkpoint records as absorbed)."""
    recorded = list(read_run_config(Path(run_dir) / RUN_CONFIG).get(RESUMED_WITH) or [])
    absorbed = list(state.get("resumed_with") or [])
    if recorded[:len(absorbed)] != absorbed:
        raise ConfigError(f"{Path(run_dir) / RUN_CONFIG}: its {RESUMED_WITH!r} list does not begin with the "
                          f"changes last.pt records ({absorbed}); was config.yaml edited? Use --restart")
    for entry in recorded[len(absorbed):]:
        apply_changes(optimizer, scheduler, entry["settings"])
        say(f"optimizer settings from iteration {entry['iteration']} on: "
            + ", ".join(f"{k}={v}" for k, v in entry["settings"].items()))
    return recorded
