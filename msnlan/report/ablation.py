"""The ablation table: component check marks, PSNR per benchmark, and the paired difference to the
full model with a bootstrap CI over images (msnlan.report.stats)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..results.summary import mean_psnr
from ..variants import component_columns, components
from .main_table import PSNR_DECIMALS, scale_label
from .stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference
from .tables import MISSING, Cell, format_number, Column, Footnotes, Row, RowGroup, Section, Table

DELTA_DECIMALS = 3
CHECK, NO = "✓", MISSING
FEW_IMAGES = 10


@dataclass
class AblationSettings:
    reference: str = "msnlan"
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = DEFAULT_LEVEL


def _component_cells(resolved: Mapping | None) -> dict[str, Cell]:
    """The variant's description (so that variants with the same marks can be told apart) and marks."""
    if resolved is None:
        unknown = {k: Cell("?", title="variant settings not found") for k, _ in component_columns()}
        return {"description": Cell("?", title="variant settings not found"), **unknown}
    return {"description": Cell(str(resolved.get("description") or MISSING)),
            **{k: Cell(v) if isinstance(v, str) else Cell(CHECK if v else NO)
               for k, v in components(resolved["model"]).items()}}


def build_ablation_table(per_image: pd.DataFrame, benchmarks: Sequence[str], scales: Sequence[int],
                         variant_order: Sequence[str], resolve: Callable[[str, int], tuple[dict | None, str]],
                         settings: AblationSettings = AblationSettings()) -> tuple[Table, pd.DataFrame]:
    """One row per variant (single-model evaluations only) and scale; returns the table and a tidy frame.

    `resolve(variant, scale)` gives the resolved variant (for the check marks) and where it came from.
    """
    notes = Footnotes()
    ref = settings.reference
    single = per_image[~per_image.self_ensemble.astype(bool) & (per_image.method != "bicubic")]
    columns = [Column("description", "Description", align="l", latex_note=True)]
    columns += [Column(k, label, align="c") for k, label in component_columns()]
    level_pct = f"{settings.level:.0%}"
    for b in benchmarks:
        columns.append(Column(f"{b}/psnr", "PSNR", group=b))
        columns.append(Column(f"{b}/delta", f"Δ [{level_pct} CI]", group=b))
    sections, tidy = [], []
    for s in scales:
        at_scale = single[single.scale == s]
        present = list(dict.fromkeys(at_scale.method))
        order = [v for v in variant_order if v in present] + sorted(set(present) - set(variant_order))
        if ref in order:  # the full model first: every other row is read against it
            order.remove(ref)
            order.insert(0, ref)
        rows = []
        for v in order:
            resolved, _src = resolve(v, s)
            row = Row(v, v, _component_cells(resolved))
            for b in benchmarks:
                mine = at_scale[(at_scale.method == v) & (at_scale.benchmark == b)]
                theirs = at_scale[(at_scale.method == ref) & (at_scale.benchmark == b)]
                if mine.empty:
                    row.cells[f"{b}/psnr"], row.cells[f"{b}/delta"] = Cell(), Cell()
                    continue
                psnr = mean_psnr(mine.psnr)
                row.cells[f"{b}/psnr"] = Cell.number(psnr,
                                                     PSNR_DECIMALS, title=f"n={len(mine)}")
                if v == ref:
                    row.cells[f"{b}/delta"] = Cell("(reference)")
                    continue
                if theirs.empty:
                    row.cells[f"{b}/delta"] = Cell(title=f"{ref} not evaluated on {b} at x{s}")
                    continue
                res, used = paired_difference(dict(zip(mine.image, mine.psnr)), dict(zip(theirs.image, theirs.psnr)),
                                              resamples=settings.resamples, seed=settings.seed,
                                              level=settings.level)
                cell = _delta_cell(res)
                if res.n < max(len(mine), len(theirs)):
                    cell.notes.append(notes.marker(
                        f"paired over the images both were evaluated on with finite PSNR (n shown on hover); "
                        f"{ref} and this variant do not share every image"))
                if 0 < res.n < FEW_IMAGES:
                    cell.notes.append(notes.marker(
                        f"fewer than {FEW_IMAGES} images: the bootstrap interval is rough (n shown on hover)"))
                row.cells[f"{b}/delta"] = cell
                tidy.append({"scale": s, "benchmark": b, "variant": v, "reference": ref,
                             "psnr": psnr,
                             "delta": res.mean, "ci_low": res.low, "ci_high": res.high, "n_pairs": res.n,
                             "level": settings.level, "resamples": settings.resamples, "seed": settings.seed,
                             "ci_excludes_zero": res.excludes_zero})
            rows.append(row)
        if rows:
            sections.append(Section(scale_label(s), [RowGroup("", rows)]))
    table = Table("ablation", "Ablation", "Variant", columns, sections)
    table.caption = f"Ablation: PSNR (dB) and the paired difference Δ to {ref}."
    table.footnotes = [
        ("", f"Δ: mean over images of the per-image PSNR difference (variant − {ref}) on the same images; "
             f"{level_pct} percentile bootstrap CI over images ({settings.resamples:,} resamples, seed "
             f"{settings.seed}). * and shading: the CI excludes 0, a difference resampling the test images "
             "does not explain. With fewer than 2 images no CI is given (–)."),
        ("", f"{CHECK}: component present; {NO}: absent. Components from the run's recorded variant "
             "(runs/<variant>/x<s>/config.yaml or final.pt), else the variant file."),
    ] + notes.items()
    frame = pd.DataFrame(tidy, columns=["scale", "benchmark", "variant", "reference", "psnr", "delta", "ci_low",
                                        "ci_high", "n_pairs", "level", "resamples", "seed", "ci_excludes_zero"])
    return table, frame


def _delta_cell(res) -> Cell:
    mean = format_number(res.mean, DELTA_DECIMALS, signed=True)
    if res.low is None:
        return Cell(mean, res.mean, detail="[–]", title=f"n={res.n}: too few images for a CI")
    low, high = (format_number(x, DELTA_DECIMALS, signed=True) for x in (res.low, res.high))
    cell = Cell(mean, res.mean, detail=f"[{low}, {high}]", title=f"n={res.n} images")
    if res.excludes_zero:
        cell.text += "*"
        cell.css = "sig"
    return cell
