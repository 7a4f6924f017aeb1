"""The ablation table: component check marks, PSNR per benchmark, and the paired difference to the
full model with a bootstrap CI over images (msnlan.report.stats); with several training seeds, a
two-level bootstrap CI over seeds and images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..results.summary import mean_psnr
from ..variants import component_columns, components
from .main_table import PSNR_DECIMALS, scale_label
from .stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, paired_difference, paired_seed_difference
from .tables import MISSING, Cell, format_number, Column, Footnotes, Row, RowGroup, Section, Table

DELTA_DECIMALS = 3
CHECK, NO = "✓", MISSING
FEW_IMAGES = 10
#: below this many seeds the seed draws take few distinct values (3 seeds: 10 multisets)
FEW_SEEDS = 5


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
    seeded = "seed" in per_image.columns
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
                if seeded:
                    psnr, res, n_text, few = _seeded_delta(mine, theirs, v == ref, settings)
                else:
                    psnr, n_text, few = mean_psnr(mine.psnr), f"n={len(mine)}", None
                row.cells[f"{b}/psnr"] = Cell.number(psnr, PSNR_DECIMALS, title=n_text)
                if v == ref:
                    row.cells[f"{b}/delta"] = Cell("(reference)")
                    continue
                if theirs.empty:
                    row.cells[f"{b}/delta"] = Cell(title=f"{ref} not evaluated on {b} at x{s}")
                    continue
                if not seeded:
                    res, used = paired_difference(dict(zip(mine.image, mine.psnr)),
                                                  dict(zip(theirs.image, theirs.psnr)),
                                                  resamples=settings.resamples, seed=settings.seed,
                                                  level=settings.level)
                    few = res.n < max(len(mine), len(theirs))
                cell = _delta_cell(res)
                if few:
                    cell.notes.append(notes.marker(
                        f"paired over the images both were evaluated on with finite PSNR (n shown on hover); "
                        f"{ref} and this variant do not share every image"
                        + (" and seed" if seeded else "")))
                if 0 < res.n < FEW_IMAGES:
                    cell.notes.append(notes.marker(
                        f"fewer than {FEW_IMAGES} images: the bootstrap interval is rough (n shown on hover)"))
                if seeded and 1 < res.n_seeds < FEW_SEEDS:
                    cell.notes.append(notes.marker(
                        f"fewer than {FEW_SEEDS} seeds: resampling so few seeds gives a rough interval "
                        "(n shown on hover)"))
                row.cells[f"{b}/delta"] = cell
                tidy.append({"scale": s, "benchmark": b, "variant": v, "reference": ref,
                             "psnr": psnr,
                             "delta": res.mean, "ci_low": res.low, "ci_high": res.high, "n_pairs": res.n,
                             **({"n_seeds": res.n_seeds} if seeded else {}),
                             "level": settings.level, "resamples": settings.resamples, "seed": settings.seed,
                             "ci_excludes_zero": res.excludes_zero})
            rows.append(row)
        if rows:
            sections.append(Section(scale_label(s), [RowGroup("", rows)]))
    table = Table("ablation", "Ablation", "Variant", columns, sections)
    table.caption = f"Ablation: PSNR (dB) and the paired difference Δ to {ref}."
    boot_note = (f"Δ: mean over images of the per-image PSNR difference (variant − {ref}) on the same images; "
                 f"{level_pct} percentile bootstrap CI over images ({settings.resamples:,} resamples, seed "
                 f"{settings.seed}). * and shading: the CI excludes 0, a difference resampling the test images "
                 "does not explain. With fewer than 2 images no CI is given (–).")
    if seeded:
        seed_list = ", ".join(str(int(k)) for k in sorted(set(single.seed.dropna())))
        table.caption = (f"Ablation: PSNR (dB) per benchmark, mean over training seeds, and the paired difference "
                         f"to {ref} (variant − {ref}) with a {level_pct} two-level bootstrap CI: seeds with "
                         "replacement, then images with replacement, paired by seed and image.")
        boot_note = (f"PSNR: mean over the training seeds ({seed_list}) of the mean over images. Δ: mean over "
                     "seeds and images of "
                     f"the PSNR difference (variant − {ref}), paired by training seed (each variant's seed-k "
                     f"network against {ref}'s seed-k network) and by image; {level_pct} percentile CI of a "
                     f"two-level bootstrap ({settings.resamples:,} resamples, seed {settings.seed}): each "
                     "resample draws the seeds with replacement, then the images with replacement (one draw "
                     "for all seeds, which share the test images). * and shading: the CI excludes 0, a "
                     "difference that neither retraining with another seed nor resampling the test images "
                     "explains. n on hover: seeds × images.")
    table.footnotes = [
        ("", boot_note),
        ("", f"{CHECK}: component present; {NO}: absent. Components from the run's recorded variant "
             "(runs/<variant>/x<s>/config.yaml or final.pt), else the variant file."),
    ] + notes.items()
    frame = pd.DataFrame(tidy, columns=["scale", "benchmark", "variant", "reference", "psnr", "delta", "ci_low",
                                        "ci_high", "n_pairs", *(["n_seeds"] if seeded else []), "level",
                                        "resamples", "seed", "ci_excludes_zero"])
    return table, frame


def n_label(n_seeds: int | None, n_images: int) -> str:
    """How many numbers a value rests on: "n=3 seeds × 6 images", or "n=6 images" without seeds."""
    if n_seeds is None:
        return f"n={n_images} images"
    return f"n={n_seeds} seed{'s' if n_seeds != 1 else ''} × {n_images} images"


def _by_seed(frame: pd.DataFrame) -> dict:
    """seed -> {image -> PSNR} of one method's per-image rows."""
    return {(None if pd.isna(k) else int(k)): dict(zip(g.image, g.psnr))
            for k, g in frame.groupby("seed", dropna=False, sort=True)}


def _seeded_delta(mine: pd.DataFrame, theirs: pd.DataFrame, is_ref: bool, settings: AblationSettings):
    """(mean PSNR over seeds, the two-level result or None, its n text, whether pairs were lost)."""
    mine_seeds = _by_seed(mine)
    psnr = float(sum(mean_psnr(v.values()) for v in mine_seeds.values()) / len(mine_seeds))
    n_images = max(len(v) for v in mine_seeds.values())
    psnr_n = n_label(len(mine_seeds) if None not in mine_seeds else None, n_images)
    if is_ref or theirs.empty:
        return psnr, None, psnr_n, False
    theirs_seeds = _by_seed(theirs)
    res, seeds, used = paired_seed_difference(mine_seeds, theirs_seeds, resamples=settings.resamples,
                                              seed=settings.seed, level=settings.level)
    lost = len(seeds) < max(len(mine_seeds), len(theirs_seeds)) or len(used) < n_images
    return psnr, res, psnr_n, lost


def _delta_cell(res) -> Cell:
    mean = format_number(res.mean, DELTA_DECIMALS, signed=True)
    n_text = n_label(res.n_seeds, res.n) if res.n_seeds > 1 else f"n={res.n} images"
    if res.low is None:
        return Cell(mean, res.mean, detail="[–]", title=f"{n_text}: too few images for a CI")
    low, high = (format_number(x, DELTA_DECIMALS, signed=True) for x in (res.low, res.high))
    cell = Cell(mean, res.mean, detail=f"[{low}, {high}]", title=n_text)
    if res.excludes_zero:
        cell.text += "*"
        cell.css = "sig"
    return cell
