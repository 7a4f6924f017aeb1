"""What `msnlan report` reads from the workflow config (CONFIG.yaml).

Used keys of the workflow config: `name`, `benchmarks` (name -> path; its order is the tables'
column order), `scales`, `variants` (row order), `ablations_dir`, and the optional `report:` section:

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
```
Other top-level keys belong to the workflow and are ignored here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError
from .crops import CropBox, parse_box
from .stats import DEFAULT_RESAMPLES, DEFAULT_SEED

REPORT_KEYS = ("published", "compete", "reference", "bootstrap", "visual_images", "visual_scales",
               "crop_size", "crop_boxes")
BOOTSTRAP_KEYS = ("resamples", "seed", "level")


@dataclass
class ReportSettings:
    path: Path | None
    raw: dict
    name: str = ""
    benchmarks: list[str] = field(default_factory=list)
    scales: list[int] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    ablations_dir: Path | None = None
    published: str | None = None
    compete: list[str] | None = None
    reference: str = "msnlan"
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = 0.95
    visual_images: list[str] = field(default_factory=list)
    visual_scales: list[int] = field(default_factory=list)
    crop_size: int | None = None
    crop_boxes: dict[str, CropBox] = field(default_factory=dict)


def _str_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                              for v in value):
        raise ConfigError(f"{where}: key {key!r} must be a list of names, got {value!r}")
    return [str(v) for v in value]


def _int(value: Any, key: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: key {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _int_list(value: Any, key: str, where: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: key {key!r} must be a list of integers, got {value!r}")
    return [_int(v, key, where, 1) for v in value]


def parse_settings(data: Mapping | None, source: str = "<config>", path: Path | None = None) -> ReportSettings:
    """Validate the keys the report uses; errors name the file and the key."""
    data = dict(data or {})
    s = ReportSettings(path=path, raw=data, name=str(data.get("name", "")))
    bench = data.get("benchmarks")
    if isinstance(bench, Mapping):
        s.benchmarks = [str(b) for b in bench]
    elif bench is not None:
        s.benchmarks = _str_list(bench, "benchmarks", source)
    s.scales = _int_list(data.get("scales"), "scales", source)
    s.variants = _str_list(data.get("variants"), "variants", source)
    if data.get("ablations_dir"):
        s.ablations_dir = Path(str(data["ablations_dir"]))
    rep = data.get("report") or {}
    if not isinstance(rep, Mapping):
        raise ConfigError(f"{source}: key 'report' must be a mapping, got {type(rep).__name__}")
    unknown = sorted(set(rep) - set(REPORT_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key 'report.{unknown[0]}' (known: {', '.join(REPORT_KEYS)})")
    if rep.get("published") is not None:
        s.published = str(rep["published"])
    if rep.get("compete"):
        s.compete = _str_list(rep["compete"], "report.compete", source)
    if rep.get("reference") is not None:
        s.reference = str(rep["reference"])
    boot = rep.get("bootstrap") or {}
    if not isinstance(boot, Mapping):
        raise ConfigError(f"{source}: key 'report.bootstrap' must be a mapping")
    unknown = sorted(set(boot) - set(BOOTSTRAP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key 'report.bootstrap.{unknown[0]}' (known: {', '.join(BOOTSTRAP_KEYS)})")
    if "resamples" in boot:
        s.resamples = _int(boot["resamples"], "report.bootstrap.resamples", source, 100)
    if "seed" in boot:
        s.seed = _int(boot["seed"], "report.bootstrap.seed", source, 0)
    if "level" in boot:
        lvl = boot["level"]
        if isinstance(lvl, bool) or not isinstance(lvl, (int, float)) or not 0.5 <= lvl < 1:
            raise ConfigError(f"{source}: key 'report.bootstrap.level' must be in [0.5, 1), got {lvl!r}")
        s.level = float(lvl)
    s.visual_images = _str_list(rep.get("visual_images"), "report.visual_images", source)
    s.visual_scales = _int_list(rep.get("visual_scales"), "report.visual_scales", source)
    if rep.get("crop_size") is not None:
        s.crop_size = _int(rep["crop_size"], "report.crop_size", source, 12)
    boxes = rep.get("crop_boxes") or {}
    if not isinstance(boxes, Mapping):
        raise ConfigError(f"{source}: key 'report.crop_boxes' must map 'Benchmark/image' to [top, left, size]")
    for name, spec in boxes.items():
        if "/" not in str(name):
            raise ConfigError(f"{source}: key 'report.crop_boxes.{name}': name it as 'Benchmark/image'")
        s.crop_boxes[str(name)] = parse_box(spec, f"{source}: key 'report.crop_boxes.{name}'")
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
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config file must be a mapping, got {type(data).__name__}")
    return parse_settings(data, str(path), path)
