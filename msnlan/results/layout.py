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


def dataset_dir(results: PathLike, dataset: str) -> Path:
    return Path(results) / "data" / dataset


def dataset_json(results: PathLike, dataset: str) -> Path:
    return dataset_dir(results, dataset) / "dataset.json"


def demo_dir(results: PathLike) -> Path:
    return Path(results) / "demo"


def run_dir(results: PathLike, variant: str, scale) -> Path:
    return Path(results) / "runs" / variant / f"x{scale}"


def final_weights(results: PathLike, variant: str, scale) -> Path:
    return run_dir(results, variant, scale) / "final.pt"


def stage_folder(run: PathLike, stage) -> Path:
    """Stage `stage` (1-based) of the run folder `run`, for presets with stages."""
    return Path(run) / f"stage{stage}"


def stage_weights(results: PathLike, variant: str, scale, stage) -> Path:
    """final.pt of one stage; the run's final.pt (final_weights) holds the last stage's weights."""
    return stage_folder(run_dir(results, variant, scale), stage) / "final.pt"


def trained_variant_file(results: PathLike, variant: str) -> Path:
    return Path(results) / "variants" / f"{variant}.yaml"


def eval_csv(results: PathLike, method: str, scale, benchmark: str) -> Path:
    return Path(results) / "eval" / method / f"x{scale}" / f"{benchmark}.csv"


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


def sr_images_dir(results: PathLike, method: str, scale, benchmark: str) -> Path:
    return Path(results) / "images" / method / f"x{scale}" / benchmark


def sr_image(results: PathLike, method: str, scale, benchmark: str, image: str) -> Path:
    return sr_images_dir(results, method, scale, benchmark) / f"{image}.png"


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


def subdirs(parent: Path) -> list[Path]:
    return [p for p in visible(parent.iterdir()) if p.is_dir()] if parent.is_dir() else []


def eval_csvs(results: PathLike) -> list[tuple[str, int, Path]]:
    """Every eval/<method>/x<s>/<benchmark>.csv as (method, scale, path)."""
    return [(m.name, s, p) for m in subdirs(Path(results) / "eval") for s, d in scale_dirs(m)
            for p in visible(d.glob("*.csv"))]


def run_dirs(results: PathLike) -> list[tuple[str, int, Path]]:
    """Every runs/<variant>/x<s>/ as (variant, scale, path)."""
    return [(v.name, s, d) for v in subdirs(Path(results) / "runs") for s, d in scale_dirs(v)]


def complexity_jsons(results: PathLike) -> list[tuple[str, int, Path]]:
    """Every complexity/<variant>/x<s>.json as (variant, scale, path)."""
    out = [(v.name, scale_of(p.stem), p) for v in subdirs(Path(results) / "complexity")
           for p in visible(v.glob("x*.json"))]
    return [t for t in out if t[1] is not None]
