"""The registry of per-image quality metrics: what evaluation measures and the report shows.

A metric is one registered function (SR image, HR image, scale -> float) with its name (the CSV
column), its table label, its direction (higher or lower is better) and its display precision.
Evaluation writes one CSV column per registered metric, the summaries average each, the main
table shows and ranks each, and the visual comparison's crops show each. PSNR and SSIM (msnlan.metrics) are registered on import; adding a
metric is one `register_metric` call:

    register_metric(Metric("mae", "MAE", higher_is_better=False, decimals=3, compute=mae))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .errors import ConfigError

#: eval CSV columns that are not metrics (a metric may not take these names)
RESERVED_NAMES = ("image", "seconds", "peak_memory_mb", "n_images", "n_infinite_psnr", "method", "variant",
                  "self_ensemble", "scale", "benchmark")


def plain_mean(values: Iterable[float]) -> float:
    arr = np.asarray(list(values), dtype=float)
    return float(arr.mean()) if arr.size else math.nan


@dataclass(frozen=True)
class Metric:
    name: str                      # CSV column and summary key
    label: str                     # table header
    higher_is_better: bool
    decimals: int                  # digits shown in tables
    compute: Callable              # (sr uint8, hr uint8, scale, crop_border=None) -> float; the border
                                   # shaved is the scale unless crop_border says otherwise (crops: 0)
    csv_digits: int = 8            # digits written to the eval CSV
    low: float = -math.inf         # a stored per-image value must lie in [low, high]
    high: float = math.inf
    mean: Callable[[Iterable[float]], float] = plain_mean   # the dataset summary of the per-image values
    description: str = ""


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric (after those registered before it); its name must be new and not reserved."""
    if metric.name in RESERVED_NAMES or metric.name in _REGISTRY or not metric.name.isidentifier():
        raise ConfigError(f"cannot register metric {metric.name!r}: the name is taken, reserved or not an identifier")
    _REGISTRY[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered_metrics() -> tuple[Metric, ...]:
    """Every metric, in registration order (PSNR and SSIM first)."""
    from . import metrics  # noqa: F401  (registers PSNR and SSIM)

    return tuple(_REGISTRY.values())


def metric_names() -> tuple[str, ...]:
    return tuple(m.name for m in registered_metrics())


def get_metric(name: str) -> Metric:
    for m in registered_metrics():
        if m.name == name:
            return m
    raise ConfigError(f"unknown metric {name!r} (registered: {', '.join(metric_names())})")
