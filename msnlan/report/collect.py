"""`msnlan collect`: the tidy summary and per-image tables of a results folder.

Every number is computed from the per-image evaluation CSVs; the summary in each protocol.json is
only used as a cross-check (a mismatch means a stale file and is reported as a warning).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..metric_registry import metric_names
from ..results.collected import per_image_columns, summary_columns, write_collected_tables
from ..results.evaluations import EvalResult, find_eval_results
from ..results.runs import RunInfo, find_runs
from ..results.summary import same_value, summarize

# protocol.json summaries may be rounded by their writer; differences below this are not staleness
_SUMMARY_TOLERANCE = 5e-4


def format_tiling(tiling) -> str:
    """protocol.json's tiling record as one short string, e.g. 'chop(min_pixels=4000, overlap=10)'."""
    if tiling is None:
        return ""
    if isinstance(tiling, str):
        return tiling
    if isinstance(tiling, dict):
        mode = str(tiling.get("mode", "none"))
        if mode == "none":
            return "none"
        extra = ", ".join(f"{k}={v}" for k, v in tiling.items() if k != "mode" and v is not None)
        return f"{mode}({extra})" if extra else mode
    return str(tiling)


@dataclass
class Collected:
    """Everything `collect` gathered: the two tidy tables plus what the report needs besides."""

    summary: pd.DataFrame
    per_image: pd.DataFrame
    evals: list[EvalResult]
    runs: list[RunInfo]
    warnings: list[str] = field(default_factory=list)

    def run(self, variant: str, scale: int) -> RunInfo | None:
        for r in self.runs:
            if r.variant == variant and r.scale == scale:
                return r
        return None


def collect(results_dir: str | os.PathLike) -> Collected:
    """Read eval/ and runs/ of a results folder into the summary and per-image tables."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"results folder {results_dir} does not exist")
    evals = find_eval_results(results_dir)
    if not evals:
        raise DataError(f"{results_dir}: no evaluation results (expected eval/<method>/x<s>/<benchmark>.csv)")
    runs = find_runs(results_dir)
    warnings: list[str] = []
    summary_rows, image_frames = [], []
    run_of = {(r.variant, r.scale): r for r in runs}
    for ev in evals:
        stats = summarize(**{name: ev.rows[name] for name in metric_names()})
        _check_protocol_summary(ev, stats, warnings)
        if ev.method.endswith("+") != ev.self_ensemble:
            warnings.append(f"{ev.protocol_path}: self_ensemble is {ev.self_ensemble} but the method name "
                            f"{ev.method!r} {'lacks' if ev.self_ensemble else 'has'} the '+' suffix")
        pre = ev.pretrained
        variant = pre["variant"] if pre else ev.variant
        run = None if pre else run_of.get((ev.variant, ev.scale))  # not trained here: no run of ours
        p = ev.protocol
        summary_rows.append({
            "method": ev.method, "variant": variant, "self_ensemble": ev.self_ensemble,
            "scale": ev.scale, "benchmark": ev.benchmark, **stats,
            "lr_source": p.get("lr_source", ""), "tiling": format_tiling(p.get("tiling")),
            "shave": p.get("shave", ""), "color_space": p.get("color_space", ""),
            "checkpoint": p.get("checkpoint") or "",
            "training_preset": (run.preset or "") if run else "",
            "training_iterations": (run.iterations if run and run.iterations is not None else ""),
            "label": (pre["label"] + ("+" if ev.self_ensemble else "")) if pre else "",
            "weights_source": pre["source"] if pre else "",
        })
        frame = ev.rows.copy()
        frame.insert(0, "method", ev.method)
        frame.insert(1, "variant", variant)
        frame.insert(2, "self_ensemble", ev.self_ensemble)
        frame.insert(3, "scale", ev.scale)
        frame.insert(4, "benchmark", ev.benchmark)
        image_frames.append(frame)
    summary = pd.DataFrame(summary_rows, columns=list(summary_columns()))
    summary = summary.sort_values(["scale", "benchmark", "method"], kind="stable").reset_index(drop=True)
    per_image = pd.concat(image_frames, ignore_index=True)[list(per_image_columns())]
    per_image = per_image.sort_values(["scale", "benchmark", "method", "image"], kind="stable")
    return Collected(summary, per_image.reset_index(drop=True), evals, runs, warnings)


def _check_protocol_summary(ev: EvalResult, stats: dict, warnings: list[str]) -> None:
    recorded = ev.protocol.get("summary")
    if not isinstance(recorded, dict):
        warnings.append(f"{ev.protocol_path}: no 'summary' to cross-check")
        return
    for key in ("n_images", "n_infinite_psnr"):
        if key in recorded and int(recorded[key]) != stats[key]:
            warnings.append(f"{ev.protocol_path}: summary {key} = {recorded[key]} but {ev.csv_path.name} "
                            f"has {stats[key]} (stale protocol file?)")
    for key in metric_names():
        if key in recorded and recorded[key] is not None:
            try:
                value = float(recorded[key])
            except (TypeError, ValueError):
                warnings.append(f"{ev.protocol_path}: summary {key} = {recorded[key]!r} is not a number")
                continue
            if not same_value(value, stats[key], _SUMMARY_TOLERANCE):
                warnings.append(f"{ev.protocol_path}: summary {key} = {recorded[key]} but the mean of "
                                f"{ev.csv_path.name} is {stats[key]:.6f} (stale protocol file?)")


def write_collected(collected: Collected, results_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write tables/summary.csv and tables/per_image.csv atomically; returns their paths."""
    return write_collected_tables(results_dir, collected.summary, collected.per_image)
