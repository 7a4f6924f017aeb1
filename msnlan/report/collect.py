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
from ..results.summary import same_value, summarize, summarize_over_seeds

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

    def run(self, variant: str, scale: int, seed: int | None = None) -> RunInfo | None:
        """The run of a variant at a scale: of `seed`, else the one with the smallest seed."""
        found = [r for r in self.runs if r.variant == variant and r.scale == scale]
        exact = [r for r in found if r.seed == seed]
        found = exact or sorted(found, key=lambda r: -1 if r.seed is None else r.seed)
        return found[0] if found else None

    @property
    def seeded(self) -> bool:
        """Whether the results come from several training seeds (seed<k> folders)."""
        return any(ev.seed is not None for ev in self.evals)

    def seeds(self) -> list[int]:
        """The training seeds found, sorted."""
        return sorted({ev.seed for ev in self.evals if ev.seed is not None})


def _variant(ev: EvalResult) -> str:
    """The network an evaluation measured: a pretrained row's variant, else the method's."""
    return ev.pretrained["variant"] if ev.pretrained else ev.variant


def _provenance(ev: EvalResult, run: RunInfo | None) -> dict:
    p, pre = ev.protocol, ev.pretrained
    return {"lr_source": p.get("lr_source", ""), "tiling": format_tiling(p.get("tiling")),
            "shave": p.get("shave", ""), "color_space": p.get("color_space", ""),
            "checkpoint": p.get("checkpoint") or "",
            "training_preset": (run.preset or "") if run else "",
            "training_iterations": (run.iterations if run and run.iterations is not None else ""),
            "label": (pre["label"] + ("+" if ev.self_ensemble else "")) if pre else "",
            "weights_source": pre["source"] if pre else ""}


def _joined(values) -> str:
    """Distinct values of one provenance column over seeds, "; "-joined."""
    return "; ".join(str(v) for v in dict.fromkeys(values) if str(v) != "")


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
    seeded = any(ev.seed is not None for ev in evals)
    groups: dict[tuple, list[EvalResult]] = {}
    for ev in evals:
        groups.setdefault((ev.method, ev.scale, ev.benchmark), []).append(ev)
    if seeded:  # a results folder switched to several seeds may keep its one-seed files
        for key, group in groups.items():
            stale = [ev for ev in group if ev.seed is None]
            if len(stale) < len(group):
                warnings += [f"{ev.csv_path}: left out: {ev.method} also has seed<k>/ evaluations at x{ev.scale}"
                             for ev in stale]
                groups[key] = [ev for ev in group if ev.seed is not None]
    evals = [ev for group in groups.values() for ev in group]
    summary_rows, image_frames = [], []
    run_of = {(r.variant, r.scale, r.seed): r for r in runs}
    for (method, scale, benchmark), group in groups.items():
        per_seed, provenance = {}, []
        for ev in sorted(group, key=lambda e: -1 if e.seed is None else e.seed):
            stats = summarize(**{name: ev.rows[name] for name in metric_names()})
            _check_protocol_summary(ev, stats, warnings)
            if ev.method.endswith("+") != ev.self_ensemble:
                warnings.append(f"{ev.protocol_path}: self_ensemble is {ev.self_ensemble} but the method name "
                                f"{ev.method!r} {'lacks' if ev.self_ensemble else 'has'} the '+' suffix")
            per_seed[ev.seed] = stats
            run = None if ev.pretrained else run_of.get((ev.variant, ev.scale, ev.seed))  # not trained here
            provenance.append(_provenance(ev, run))
            frame = ev.rows.copy()
            for i, (col, value) in enumerate((("method", ev.method), ("variant", _variant(ev)),
                                              ("self_ensemble", ev.self_ensemble), ("scale", ev.scale),
                                              ("benchmark", ev.benchmark))):
                frame.insert(i, col, value)
            if seeded:
                frame.insert(5, "seed", pd.array([ev.seed] * len(frame), dtype="Int64"))
            image_frames.append(frame)
        first = group[0]
        key = {"method": method, "variant": _variant(first), "self_ensemble": first.self_ensemble,
               "scale": scale, "benchmark": benchmark}
        if not seeded:
            stats = per_seed[None]
        elif None in per_seed:  # bicubic and pretrained rows: not trained here, no seeds
            stats = {**per_seed[None], "n_seeds": None}
        else:
            try:
                stats = summarize_over_seeds(per_seed)
            except DataError as exc:
                raise DataError(f"{results_dir}: {method} x{scale} {benchmark}: {exc}") from None
        summary_rows.append({**key, **stats,
                             **{k: _joined(p[k] for p in provenance) if len(provenance) > 1 else provenance[0][k]
                                for k in provenance[0]}})
    summary = pd.DataFrame(summary_rows, columns=list(summary_columns(seeded)))
    if seeded:
        summary["n_seeds"] = pd.array(summary["n_seeds"], dtype="Int64")
    summary = summary.sort_values(["scale", "benchmark", "method"], kind="stable").reset_index(drop=True)
    per_image = pd.concat(image_frames, ignore_index=True)[list(per_image_columns(seeded))]
    order = ["scale", "benchmark", "method"] + (["seed"] if seeded else []) + ["image"]
    per_image = per_image.sort_values(order, kind="stable")
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
