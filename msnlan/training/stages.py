"""Training stages: a preset's `stages` list resolved into complete per-stage recipes.

A run trains its stages in order. Stage 1 starts from a fresh network (or --init-from), every
later stage from the previous stage's final weights; each stage has a fresh Adam optimiser and
MultiStepLR schedule (its milestones count from the stage's own start) and a fresh patch sampler
seeded with `seed + n - 1`, so that starting a stage depends only on the previous stage's
final.pt and a killed run restarts a stage exactly. A preset without `stages` is one stage: the
top-level keys, trained in the run folder itself (the layout of msnlan.results.layout.run_dir).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from .preset_schema import STAGE_KEYS


def is_staged(settings: Mapping[str, Any]) -> bool:
    """Whether the preset settings list stages (then every stage trains in its own subfolder)."""
    return bool(settings.get("stages"))


def resolve_stages(settings: Mapping[str, Any]) -> list[dict]:
    """[{'stage': n, 'name', 'first_iteration', **complete settings}, ...] in training order.

    `first_iteration` is the run iteration before the stage's first step (0 for stage 1): the log
    numbers iterations across the whole run. `seed` is the preset's seed plus n - 1.
    """
    shared = {k: copy.deepcopy(v) for k, v in settings.items() if k != "stages"}
    entries = settings.get("stages") or [{}]
    stages, done = [], 0
    for n, entry in enumerate(entries, start=1):
        stage = copy.deepcopy(shared)
        stage.update({k: copy.deepcopy(v) for k, v in entry.items() if k in STAGE_KEYS})
        stage["seed"] = shared["seed"] + n - 1
        name = entry.get("name") or f"stage {n}"
        stages.append({"stage": n, "name": name, "first_iteration": done, **stage})
        done += stage["iterations"]
    return stages


def stage_summary(stages: list[dict]) -> list[dict]:
    """What config.yaml records of each stage: number, name, where it starts and its own keys."""
    return [{"stage": s["stage"], "name": s["name"], "first_iteration": s["first_iteration"],
             "seed": s["seed"], **{k: s[k] for k in STAGE_KEYS}} for s in stages]


def total_iterations(settings: Mapping[str, Any]) -> int:
    return sum(s["iterations"] for s in resolve_stages(settings))
