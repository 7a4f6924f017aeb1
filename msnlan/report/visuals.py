"""The visual comparison: for chosen images, the HR image with the crop box and the same crop from
HR, bicubic and every method whose SR output was saved (images/<method>/x<s>/<benchmark>/<image>.png;
with several training seeds, the trained methods' outputs of one seed: images/<method>/x<s>/seed<k>/...)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, MsnlanError
from .crops import (FINE_STRUCTURE_IMAGES, CropBox, check_box, choose_crop, crop, crop_margin, crop_metrics,
                    default_crop_size, overview_with_box, png_data_uri, zoom_factor, zoom_nearest)
from ..metric_registry import registered_metrics
from ..results.evaluations import EvalResult
from .tables import format_number
from ..results.layout import dataset_dir, sr_image


@dataclass
class Tile:
    label: str
    uri: str
    metrics_text: str = ""        # "value / value" in registry order (for HR: the metric labels)
    note: str = ""


@dataclass
class Visual:
    benchmark: str
    image: str
    scale: int
    box: CropBox
    reason: str
    zoom: int
    overview_uri: str
    hr_size: tuple[int, int]
    tiles: list[Tile] = field(default_factory=list)


def select_images(per_image: pd.DataFrame, benchmarks: Sequence[str], requested: Sequence[str]) -> list[tuple[str, str]]:
    """(benchmark, image) pairs to show: the requested ones, else known fine-structure images that
    were evaluated, else the first image (sorted by name) of each benchmark."""
    evaluated = {(b, i) for b, i in zip(per_image.benchmark, per_image.image)}
    order = list(benchmarks) + sorted(set(per_image.benchmark) - set(benchmarks))
    if requested:
        out = []
        for name in requested:
            if "/" in name:
                b, i = name.split("/", 1)
                if (b, i) not in evaluated:
                    raise ConfigError(f"visual image {name!r} was not evaluated (no per-image row for "
                                      f"benchmark {b!r}, image {i!r})")
                out.append((b, i))
            else:
                hits = [(b, name) for b in order if (b, name) in evaluated]
                if not hits:
                    raise ConfigError(f"visual image {name!r} was not evaluated in any benchmark "
                                      f"({', '.join(order)})")
                out += hits
        return list(dict.fromkeys(out))
    fine = [(b, i) for b in order for i in FINE_STRUCTURE_IMAGES.get(b, ()) if (b, i) in evaluated]
    if fine:
        return fine
    return [(b, sorted(i for bb, i in evaluated if bb == b)[0]) for b in order
            if any(bb == b for bb, _ in evaluated)]


def _dataset_path(results_dir: Path, evals: Sequence[EvalResult], benchmark: str, scale: int) -> Path | None:
    """Where the evaluated dataset lives: the protocol's record, else the results folder's data/<benchmark>."""
    for ev in evals:
        if ev.benchmark == benchmark and ev.scale == scale and ev.protocol.get("dataset"):
            p = Path(str(ev.protocol["dataset"]))
            if p.exists():
                return p
    local = dataset_dir(results_dir, benchmark)
    return local if local.exists() else None


def build_visuals(results_dir: Path, evals: Sequence[EvalResult], per_image: pd.DataFrame,
                  images: Sequence[tuple[str, str]], scales: Sequence[int], methods: Sequence[str],
                  crop_boxes: dict[str, CropBox], crop_size: int | None,
                  seed: int | None = None, labels: dict[str, str] | None = None) -> tuple[list[Visual], list[str]]:
    """Build every (image, scale) comparison; problems become warnings, not failures.

    `seed`: the training seed whose SR outputs are shown (None: the one-seed layout). `labels`: the
    display names of methods shown under another name (rows of weights not trained here)."""
    from ..data.datasets import load_dataset
    from ..data.imresize import imresize
    from ..data.images import read_image

    visuals, warnings = [], []
    by_bench: dict[str, list[str]] = {}
    for b, i in images:
        by_bench.setdefault(b, []).append(i)
    for s in scales:
        for bench, names in by_bench.items():
            path = _dataset_path(results_dir, evals, bench, s)
            if path is None:
                warnings.append(f"visual comparison: dataset of {bench} not found (no protocol 'dataset' that "
                                f"exists, no {results_dir / 'data' / bench})")
                continue
            try:
                ds = load_dataset(path, s)
            except MsnlanError as exc:
                warnings.append(f"visual comparison: cannot load {bench} at x{s} from {path}: {exc}")
                continue
            pairs = {p.name: p for p in ds.items}
            for name in names:
                if name not in pairs:
                    warnings.append(f"visual comparison: {bench}/{name} not in the dataset {path}")
                    continue
                try:
                    v = _one_visual(results_dir, pairs[name], bench, s, per_image, methods, crop_boxes,
                                    crop_size, read_image, imresize, warnings, seed, labels or {})
                except MsnlanError as exc:
                    warnings.append(f"visual comparison of {bench}/{name} x{s}: {exc}")
                    continue
                if v is not None:
                    visuals.append(v)
    return visuals, warnings


def _one_visual(results_dir, pair, bench, s, per_image, methods, crop_boxes, crop_size, read_image, imresize,
                warnings, seed=None, labels=None) -> Visual | None:
    hr = pair.hr
    here = per_image[(per_image.scale == s) & (per_image.benchmark == bench) & (per_image.image == pair.name)]
    shown = [m for m in methods if m in set(here.method)]
    labels = labels or {}
    # only trained methods have a seed level; bicubic and pretrained rows are evaluated once
    per_seed = set(here.method[here.seed.notna()]) if "seed" in here.columns else set()
    srs: dict[str, tuple[np.ndarray, str]] = {}
    for m in shown:
        p = sr_image(results_dir, m, s, bench, pair.name, seed if m in per_seed else None)
        if p.is_file():
            img = read_image(p)
            if img.shape != hr.shape:
                warnings.append(f"{p}: shape {img.shape} differs from the HR image's {hr.shape}; not shown")
                continue
            srs[m] = (img, "")
        elif m == "bicubic":
            srs[m] = (imresize(pair.lr, s), "computed here from the LR image (not saved by evaluation)")
        else:
            warnings.append(f"visual comparison: {p} not found (evaluate with --save-images); {m} not shown")
    if not srs:
        return None
    bicubic = srs.get("bicubic", (None, ""))[0]
    variants = [img for m, (img, _) in srs.items() if m != "bicubic"]
    key = f"{bench}/{pair.name}"
    if key in crop_boxes:
        box, reason = check_box(crop_boxes[key], hr.shape, f"report.crop_boxes.{key}"), "configured"
    else:
        size = crop_size or default_crop_size(hr.shape, s)
        box, reason = choose_crop(hr, bicubic, variants, size, crop_margin(s))
    z = zoom_factor(box.size)
    hr_crop = crop(hr, box)
    vis = Visual(bench, pair.name, s, box, reason, z, png_data_uri(overview_with_box(hr, box)),
                 (int(hr.shape[1]), int(hr.shape[0])))
    metrics = registered_metrics()
    vis.tiles.append(Tile("HR", png_data_uri(zoom_nearest(hr_crop, z)), " / ".join(m.label for m in metrics),
                          note="ground truth"))
    for method, (img, note) in srs.items():
        c = crop(img, box)
        values = crop_metrics(c, hr_crop, s)
        text = " / ".join(format_number(values[m.name], m.decimals) for m in metrics)
        vis.tiles.append(Tile("Bicubic" if method == "bicubic" else labels.get(method, method),
                              png_data_uri(zoom_nearest(c, z)),
                              text, note))
    return vis
