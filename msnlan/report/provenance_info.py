"""The report's provenance section: protocols, training budgets, the software that made the report."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from .. import provenance
from .collect import format_tiling
from ..results.evaluations import EvalResult
from ..results.runs import RunInfo
from .tables import MISSING

PROTOCOL_FIELDS = ("lr_source", "tiling", "self_ensemble", "shave", "color_space", "ssim", "device",
                   "git_commit", "random_init")
DEMO_LABEL = "DEMO — not the paper's setting"


def _text(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, dict) and "mode" in value:
        return format_tiling(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def protocol_rows(evals: Sequence[EvalResult]) -> list[dict]:
    """One row per evaluation with the protocol fields that decide its numbers."""
    rows = []
    for ev in sorted(evals, key=lambda e: (e.scale, e.benchmark, e.method, -1 if e.seed is None else e.seed)):
        p = ev.protocol
        versions = p.get("versions") if isinstance(p.get("versions"), dict) else {}
        rows.append({
            "method": ev.method, "scale": ev.scale, "benchmark": ev.benchmark,
            "seed": MISSING if ev.seed is None else ev.seed,
            **{k: _text(p.get(k)) for k in PROTOCOL_FIELDS},
            "checkpoint": _text(p.get("checkpoint")), "variant_hash": _text(p.get("variant_hash")),
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v),
            "date": _text(p.get("date")),
        })
    return rows


def protocol_overview(rows: list[dict]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Per protocol field, its distinct values with how many evaluations used each."""
    out = []
    for key in PROTOCOL_FIELDS + ("versions",):
        counts = Counter(r[key] for r in rows)
        out.append((key, counts.most_common()))
    return out


def _per_stage(stages: list[dict], key: str):
    """One value, or the stages' values joined by arrows where they differ (48 → 64)."""
    values = [s.get(key) for s in stages]
    if not values or any(v is None for v in values):
        return MISSING
    return values[0] if len(set(map(str, values))) == 1 else " → ".join(map(str, values))


def stage_text(stage: dict) -> str:
    """'2 (name): 250000 it from 1000000, batch 16, LR patch 64, lr 0.0001, halved at 100000, 200000'."""
    parts = [f"{stage.get('iterations', MISSING)} it"]
    if stage.get("first_iteration"):
        parts[0] += f" from {stage['first_iteration']}"
    parts += [f"batch {stage.get('batch_size', MISSING)}", f"LR patch {stage.get('patch_size', MISSING)}",
              f"lr {stage.get('lr', MISSING):g}" if isinstance(stage.get("lr"), (int, float)) else f"lr {MISSING}"]
    if stage.get("milestones"):
        parts.append("milestones " + ", ".join(map(str, stage["milestones"])))
    name = f" ({stage['name']})" if stage.get("name") else ""
    return f"{stage.get('stage', '?')}{name}: " + ", ".join(parts)


def run_rows(runs: Sequence[RunInfo]) -> list[dict]:
    return [{
        "variant": r.variant, "scale": r.scale, "seed": MISSING if r.seed is None else r.seed,
        "preset": r.preset or MISSING,
        "iterations": r.iterations if r.iterations is not None else MISSING,
        "iterations_logged": r.iterations_done if r.iterations_done is not None else MISSING,
        "patch_size": _per_stage(r.stages, "patch_size"),
        "batch_size": _per_stage(r.stages, "batch_size"),
        "stages": [stage_text(st) for st in r.stages],
        "finished": "yes" if r.has_final else "no (no final.pt)",
        "device": r.device or MISSING,
        "path": str(r.path),
    } for r in sorted(runs, key=lambda r: (r.scale, r.variant, -1 if r.seed is None else r.seed))]


def demo_banner(runs: Sequence[RunInfo]) -> tuple[str, str] | None:
    """(headline, detail) when any run used a preset other than "paper", or when none is recorded."""
    if not runs:
        return ("Training budget unknown",
                "No run folders (runs/<variant>/x<s>/) were found: the networks' training budget is not "
                "recorded in this results folder, so their numbers may not reflect the paper's setting.")
    off = sorted({(r.preset or "not recorded") for r in runs} - {"paper"})
    if not off:
        return None
    which = ", ".join(dict.fromkeys(f"{r.variant} ×{r.scale}" for r in runs
                                    if (r.preset or "not recorded") != "paper"))
    return (DEMO_LABEL, f"Training preset(s) {', '.join(off)} instead of \"paper\" ({which}). These numbers "
                        "show the pipeline works; they are not comparable with the paper's or the published rows.")


def demo_split(results_dir, config: dict | None = None) -> list[dict]:
    """The embedded demo sets of a results folder (demo/demo_data.json), one entry per set with its
    role in `config` (training, validation, benchmark), its images and their sources: the sets hold
    crops of different photographs."""
    from ..data.demo import read_demo_record
    from ..results.layout import demo_dir

    record = read_demo_record(demo_dir(results_dir))
    if record is None:
        return []
    config = config or {}
    roles: dict[str, list[str]] = {}
    for role, src in [("training", (config.get("train_data") or {}).get("path")),
                      ("validation", (config.get("val_data") or {}).get("path"))] + \
            [("test (benchmark)", p) for p in (config.get("benchmarks") or {}).values()]:
        if isinstance(src, str) and src.startswith("demo:"):
            roles.setdefault(src[len("demo:"):], []).append(role)
    return [{"set": name, "n": len(entries), "role": ", ".join(roles.get(name, ["not used"])) if config else MISSING,
             "images": ", ".join(f"{e['name']} ({e['source_file'].rsplit('/', 1)[-1]}, {e['width']}×{e['height']})"
                                 for e in entries)}
            for name, entries in record["sets"].items()]


def report_environment() -> dict:
    env = provenance.environment()
    return {"date": env["date"], "git_commit": env["git_commit"] or "not a git checkout",
            "platform": env["platform"],
            "versions": ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)}
