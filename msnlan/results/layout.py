"""Where everything lives in a results folder (results/<config name>/).

```
data/<dataset>/dataset.json                 prepared dataset (manifest, cache, generated LR beside it)
demo/<set>/HR/*.png                         the embedded demo sets
runs/<variant>/x<s>/                        training run: config.yaml, environment.json, log.csv, *.pt
runs/<variant>/x<s>/stage<n>/               stage n of a preset with stages: last.pt, best.pt, final.pt
variants/<variant>.yaml                     the trained network as a complete variant file
eval/<method>/x<s>/<benchmark>.csv          per-image results, with <benchmark>.protocol.json beside it
images/<method>/x<s>/<benchmark>/<img>.png  saved SR outputs
complexity/<variant>/x<s>.json              parameters, MACs, runtime
tables/summary.csv, tables/per_image.csv    msnlan collect
report/index.html                           msnlan report
```
With several training seeds (the config's `seeds`), runs, evaluations and saved images of the
trained methods get a seed level after x<s>: runs/<variant>/x<s>/seed<k>/ (with its stage<n>/ folders),
eval/<method>/x<s>/seed<k>/<benchmark>.csv, images/<method>/x<s>/seed<k>/<benchmark>/. The path
functions take `seed` (None: no seed level, the one-seed layout); bicubic and complexity have none.

Every function takes the results folder and returns a Path; wildcard strings such as "{scale}"
pass through, so the workflow builds its patterns with the same functions.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

PathLike = str | os.PathLike
_SCALE_DIR = re.compile(r"^x([1-9][0-9]*)$")
_SEED_DIR = re.compile(r"^seed([0-9]+)$")


def seed_dir_name(seed) -> str:
    """"seed3" for seed 3 (or a wildcard string such as "{seed}")."""
    return f"seed{seed}"


def _seeded(path: Path, seed) -> Path:
    return path if seed is None else path / seed_dir_name(seed)


def dataset_dir(results: PathLike, dataset: str) -> Path:
    return Path(results) / "data" / dataset


def dataset_json(results: PathLike, dataset: str) -> Path:
    return dataset_dir(results, dataset) / "dataset.json"


def demo_dir(results: PathLike) -> Path:
    return Path(results) / "demo"


def run_dir(results: PathLike, variant: str, scale, seed=None) -> Path:
    return _seeded(Path(results) / "runs" / variant / f"x{scale}", seed)


def final_weights(results: PathLike, variant: str, scale, seed=None) -> Path:
    return run_dir(results, variant, scale, seed) / "final.pt"


def stage_folder(run: PathLike, stage) -> Path:
    """Stage `stage` (1-based) of the run folder `run`, for presets with stages."""
    return Path(run) / f"stage{stage}"


def stage_weights(results: PathLike, variant: str, scale, stage, seed=None) -> Path:
    """final.pt of one stage; the run's final.pt (final_weights) holds the last stage's weights.
    With a seed the stage folders lie in the seed's run folder: runs/<variant>/x<s>/seed<k>/stage<n>/."""
    return stage_folder(run_dir(results, variant, scale, seed), stage) / "final.pt"


def trained_variant_file(results: PathLike, variant: str) -> Path:
    return Path(results) / "variants" / f"{variant}.yaml"


def eval_csv(results: PathLike, method: str, scale, benchmark: str, seed=None) -> Path:
    return _seeded(Path(results) / "eval" / method / f"x{scale}", seed) / f"{benchmark}.csv"


def protocol_json(csv_path: PathLike) -> Path:
    """RESULTS.csv -> RESULTS.protocol.json beside it."""
    p = Path(csv_path)
    stem = p.name[:-4] if p.name.endswith(".csv") else p.name
    return p.with_name(f"{stem}.protocol.json")


def partial_eval(csv_path: PathLike) -> Path:
    """RESULTS.csv -> .RESULTS.partial.jsonl beside it: the rows of an unfinished evaluation
    (hidden: readers of the results folder skip names starting with ".")."""
    p = Path(csv_path)
    stem = p.name[:-4] if p.name.endswith(".csv") else p.name
    return p.with_name(f".{stem}.partial.jsonl")


def partial_images(csv_path: PathLike) -> Path:
    """RESULTS.csv -> .RESULTS.partial-images/ beside it: SR images of an unfinished evaluation."""
    p = Path(csv_path)
    stem = p.name[:-4] if p.name.endswith(".csv") else p.name
    return p.with_name(f".{stem}.partial-images")


def sr_images_dir(results: PathLike, method: str, scale, benchmark: str, seed=None) -> Path:
    return _seeded(Path(results) / "images" / method / f"x{scale}", seed) / benchmark


def sr_image(results: PathLike, method: str, scale, benchmark: str, image: str, seed=None) -> Path:
    return sr_images_dir(results, method, scale, benchmark, seed) / f"{image}.png"


def complexity_json(results: PathLike, variant: str, scale) -> Path:
    return Path(results) / "complexity" / variant / f"x{scale}.json"


def tables_dir(results: PathLike) -> Path:
    return Path(results) / "tables"


def report_index(results: PathLike) -> Path:
    return Path(results) / "report" / "index.html"


def workflow_config(results: PathLike) -> Path:
    return Path(results) / "workflow_config.yaml"


# ---- walking a results folder ----

def visible(paths: Iterable[Path]) -> list[Path]:
    """Sorted, without names starting with "." (temporary files of atomic writes in progress)."""
    return sorted(p for p in paths if not p.name.startswith("."))


def scale_of(name: str) -> int | None:
    """3 for "x3" (a scale folder or file stem), else None."""
    m = _SCALE_DIR.match(name)
    return int(m.group(1)) if m else None


def scale_dirs(parent: Path) -> list[tuple[int, Path]]:
    """The x<s> sub-folders of `parent`, as (s, path), sorted by scale."""
    out = []
    for p in visible(parent.iterdir()) if parent.is_dir() else []:
        s = scale_of(p.name)
        if p.is_dir() and s is not None:
            out.append((s, p))
    return sorted(out)


def seed_of(name: str) -> int | None:
    """3 for "seed3" (a seed folder), else None."""
    m = _SEED_DIR.match(name)
    return int(m.group(1)) if m else None


def seed_dirs(parent: Path) -> list[tuple[int, Path]]:
    """The seed<k> sub-folders of `parent`, as (k, path), sorted by seed."""
    out = []
    for p in visible(parent.iterdir()) if parent.is_dir() else []:
        k = seed_of(p.name)
        if p.is_dir() and k is not None:
            out.append((k, p))
    return sorted(out)


def subdirs(parent: Path) -> list[Path]:
    return [p for p in visible(parent.iterdir()) if p.is_dir()] if parent.is_dir() else []


def eval_csvs(results: PathLike) -> list[tuple[str, int, int | None, Path]]:
    """Every eval/<method>/x<s>/<benchmark>.csv and eval/<method>/x<s>/seed<k>/<benchmark>.csv as
    (method, scale, seed, path); seed None for the one-seed layout."""
    out = []
    for m in subdirs(Path(results) / "eval"):
        for s, d in scale_dirs(m):
            out += [(m.name, s, None, p) for p in visible(d.glob("*.csv"))]
            out += [(m.name, s, k, p) for k, sd in seed_dirs(d) for p in visible(sd.glob("*.csv"))]
    return out


def run_dirs(results: PathLike) -> list[tuple[str, int, int | None, Path]]:
    """Every runs/<variant>/x<s>/ (or its seed<k>/ sub-folders) as (variant, scale, seed, path)."""
    out = []
    for v in subdirs(Path(results) / "runs"):
        for s, d in scale_dirs(v):
            seeds = seed_dirs(d)
            out += [(v.name, s, k, sd) for k, sd in seeds] if seeds else [(v.name, s, None, d)]
    return out


def complexity_jsons(results: PathLike) -> list[tuple[str, int, Path]]:
    """Every complexity/<variant>/x<s>.json as (variant, scale, path)."""
    out = [(v.name, scale_of(p.stem), p) for v in subdirs(Path(results) / "complexity")
           for p in visible(v.glob("x*.json"))]
    return [t for t in out if t[1] is not None]
