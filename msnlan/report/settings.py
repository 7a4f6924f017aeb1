"""What `msnlan report` reads from the workflow config (CONFIG.yaml).

Used keys of the workflow config: `name`, `benchmarks` (name -> path; its order is the tables'
column order), `scales`, `variants` (row order), `seeds` (the first one's SR images make the visual
comparison), `ablations_dir`, and the optional `report:` section:

```yaml
report:
  published: null            # CSV of cited numbers (default: msnlan/resources/published_results.csv)
  compete: [all]             # rows ranked for bold/underline: all | measured | published | method names
  reference: msnlan          # the ablation table's full model
  bootstrap: {resamples: 10000, seed: 0, level: 0.95}
  visual_images: []          # "Benchmark/image" or "image"; empty = defaults (see crops.py)
  visual_scales: []          # empty = the largest scale evaluated
  crop_size: null            # HR px; null = about a quarter of the short side (32..96)
  crop_boxes: {}             # "Benchmark/image": [top, left, size] in HR px; others are automatic
  latex:                     # layout of tables/*.tex (msnlan.report.tables.LatexOptions)
    fit: shrink              # shrink (only tables wider than the line) | resize (always) | natural
    split_by_scale: auto     # one float per scale: true | false | auto (tables too long for a page)
    float: auto              # auto (table* where wider than one column) | table | table*
```
The whole config is checked against the one config schema (msnlan.config); the other keys belong
to the workflow and are not used here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from ..errors import ConfigError
from ..config import validate_config
from .crops import CropBox
from .tables import LatexOptions
from .stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED



@dataclass
class ReportSettings:
    path: Path | None
    raw: dict
    name: str = ""
    benchmarks: list[str] = field(default_factory=list)
    scales: list[int] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)   # the config's training seeds (the first: visual comparison)
    ablations_dir: Path | None = None
    published: str | None = None
    compete: list[str] | None = None
    reference: str = "msnlan"
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = DEFAULT_LEVEL
    visual_images: list[str] = field(default_factory=list)
    visual_scales: list[int] = field(default_factory=list)
    crop_size: int | None = None
    crop_boxes: dict[str, CropBox] = field(default_factory=dict)
    latex: LatexOptions = field(default_factory=LatexOptions)


def parse_settings(data: Mapping | None, source: str = "<config>", path: Path | None = None) -> ReportSettings:
    """The report's settings from a workflow config, checked against the one config schema
    (msnlan.config; only the keys present); errors name the file and the key."""
    data = validate_config(data or {}, source, partial=True)
    s = ReportSettings(path=path, raw=data, name=str(data.get("name", "")))
    s.benchmarks = list(data.get("benchmarks") or {})
    s.scales = list(data.get("scales") or [])
    s.variants = list(data.get("variants") or [])
    s.seeds = list(data.get("seeds") or [])
    if data.get("ablations_dir"):
        s.ablations_dir = Path(data["ablations_dir"])
    rep = data.get("report") or {}
    s.published = rep.get("published")
    s.compete = rep.get("compete") or None
    s.reference = rep.get("reference", s.reference)
    boot = rep.get("bootstrap") or {}
    s.resamples = boot.get("resamples", s.resamples)
    s.seed = boot.get("seed", s.seed)
    s.level = float(boot.get("level", s.level))
    s.visual_images = list(rep.get("visual_images") or [])
    s.visual_scales = list(rep.get("visual_scales") or [])
    s.crop_size = rep.get("crop_size")
    s.crop_boxes = {name: CropBox(*box) for name, box in (rep.get("crop_boxes") or {}).items()}
    s.latex = LatexOptions(**(rep.get("latex") or {}))  # keys and values checked by the schema
    return s


def load_settings(path: str | os.PathLike | None) -> ReportSettings:
    """Read CONFIG.yaml (None: no config; the tables then follow the results folder's own order)."""
    if path is None:
        return parse_settings({}, "<no config>")
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_settings(data, str(path), path)
