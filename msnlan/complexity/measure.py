"""`measure_complexity`: parameters, MACs at two input sizes (both attention forms), runtime.

What is traced and what is computed, per input size (fvcore always traces on the CPU):

* If the MSNLAB attention is small enough to run (its direct-form MACs at most
  `trace_limit`), fvcore traces the whole model: every number, the MSNLAB's fast attention
  included, is fvcore's count of what executes. The direct form is counted by tracing each
  MSNLAB alone with its direct reference form switched on. The closed-form formula is checked
  against both traces.
* Otherwise (the 720p sizes: N = H*W is ~10^5, the attention is O(N^2)) fvcore traces the
  model with each MSNLAB replaced by a pass-through, and each MSNLAB is counted with the
  closed-form formula (msnlan.complexity.formula), both forms. The formula is cross-checked by
  FlopCounterMode running the real MSNLAB on the meta device (no memory, no arithmetic) where
  its tile loop is short enough.

The fast form splits its queries into tiles whose halos are recomputed, and the tiling depends
on the device type (CPU prefers cache-sized tiles), so "as executed" is stated for one device
type: the runtime device's. Where that is not the CPU the trace, which ran on the CPU, checks
the formula, and the formula gives the MSNLAB's as-executed count for that device.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import time
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..checks import check_scale
from .counting import (fvcore_count, part_labels, top_level_breakdown, top_level_names,
                       uncounted_estimates)
from .formula import UNTILED, msnlab_macs
from .msnlab_hooks import (chunk_budgets, direct_form, find_msnlabs, flop_counter_macs,
                           msnlabs_passed_through)

SELF_ENSEMBLE_FACTOR = 8
#: largest direct-form MSNLAB attention (MACs) that is traced for real rather than computed
TRACE_LIMIT = 1e11
#: the meta-device cross-check walks the fast form's Python tile loop (3-9 ms per tile on the
#: 2-core machine used here): skipped above this many tiles, so that it adds seconds, not minutes, to
#: a complexity job (the paper model at 720p has 74,640 tiles at x2, 4,816 at x3; the demo's
#: single-branch variant 1,380 at x2 took 12 s). Tests check the formula at sizes with fewer tiles.
META_CHECK_TILE_LIMIT = 1000
SIZE_720P = "720p"
SIZE_48 = "48x48"

MAC_CONVENTION = (
    "MACs: one multiply-accumulate = 1 (fvcore's 'flop'; FLOPs in the 2-per-MAC sense are twice "
    "these). Counted: convolutions (weights x output positions, bias not counted), matrix products "
    "(bmm, matmul, mm, addmm, baddbmm, einsum, scaled_dot_product_attention: both products), and "
    "fvcore's defaults (norm layers, adaptive_avg_pool2d at one per input element). Not counted: "
    "activations, softmax, additions, means/stds, fold/unfold, pixel shuffle (see 'uncounted').")


def lr_size_720p(scale: int) -> tuple[int, int]:
    """LR (height, width) whose SR output is 1280x720, floored where 1280 or 720 is not a multiple."""
    return 720 // scale, 1280 // scale


def lr_rounding_note(scale: int) -> str:
    h, w = lr_size_720p(scale)
    exact = (h * scale, w * scale) == (720, 1280)
    return (f"LR {w}x{h} (WxH) -> SR {w * scale}x{h * scale}"
            + ("" if exact else ": 1280x720 is not a multiple of the scale; LR size floored "
                                "(as cropping the HR to a multiple of the scale would)"))


def parse_size(text: str, what: str = "--runtime-size") -> tuple[int, int]:
    """'HxW' (e.g. '64x64', '360x640') -> (h, w); ConfigError naming the value otherwise."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected HxW with two positive integers, e.g. 64x64") from None
    if h < 1 or w < 1:
        raise ConfigError(f"{what} {text!r}: height and width must be positive")
    return h, w


def count_params(model: nn.Module) -> dict:
    """count_parameters plus the buffers (not parameters, not in total) and the MSNLABs' share."""
    from ..models.network import count_parameters

    msnlab = sum(p.numel() for _, m in find_msnlabs(model) for p in m.parameters())
    return {**count_parameters(model),
            "buffers": sum(b.numel() for b in model.buffers()), "msnlab": msnlab,
            "method": "numel summed over model.parameters(); fixed = requires_grad False; "
                      "buffers (not parameters) listed apart and not in total"}


def _msnlab_formula(cfg: Mapping[str, Any], module: nn.Module, h: int, w: int, form: str, *,
                    chunk_elements=None, device_type: str = "cpu"):
    """Closed-form MACs of one MSNLAB of this variant (the module's own chunk budgets by default)."""
    return msnlab_macs(h, w, cfg["n_feats"], cfg["patch_sizes"], reduction=cfg["reduction"],
                       form=form, pool_counted=_pools_adaptively(module), device_type=device_type,
                       chunk_elements=chunk_budgets(module) if chunk_elements is None else chunk_elements)


def _pools_adaptively(module: nn.Module) -> bool:
    """fvcore counts adaptive_avg_pool2d (one per element) but not a plain mean."""
    return any(isinstance(m, nn.AdaptiveAvgPool2d) for m in module.modules())


def _check(counted: int, expected: int) -> str:
    return "match" if counted == expected else f"MISMATCH ({counted - expected:+d})"


def _meta_check(module: nn.Module, cfg: Mapping, h: int, w: int, form: str,
                tile_limit: int = META_CHECK_TILE_LIMIT) -> dict:
    """FlopCounterMode run of one MSNLAB on the meta device against the formula for that device."""
    expected = _msnlab_formula(cfg, module, h, w, form, device_type="meta")
    tiles = sum(expected.tiles.values())
    if form == "fast" and tiles > tile_limit:
        return {"status": f"skipped: {tiles} attention tiles on the meta device (limit {tile_limit}); the "
                          "formula is checked against the module at sizes with fewer tiles "
                          "(tests/test_complexity.py)"}
    try:
        with (direct_form(module) if form == "direct" else contextlib.nullcontext(True)) as switched:
            if not switched:
                return {"status": "skipped: the MSNLAB has no direct-form switch"}
            counted = flop_counter_macs(module, (1, cfg["n_feats"], h, w))["total"]
    except Exception as exc:  # an op without a meta kernel: report it, do not fail the count
        return {"status": f"skipped: FlopCounterMode on meta failed ({type(exc).__name__}: {exc})"}
    # FlopCounterMode does not count pooling; the meta device tiles as a GPU would
    expected_total = expected.total - expected.conv_parts.get("channel_attention_pool", 0)
    return {"status": _check(counted, expected_total), "flop_counter_macs": counted,
            "formula_macs": expected_total, "tiles": tiles,
            "tool": f"torch.utils.flop_counter.FlopCounterMode on the meta device (flops / 2), "
                    f"torch {torch.__version__}; the formula evaluated with the meta device's tiling"}


def _traced_rows(result, msnlabs, formulas, cfg, h, w, device_type) -> dict:
    """MSNLAB rows where fvcore traced the fast form (on the CPU) and each MSNLAB alone in direct form."""
    rows = {}
    for name, mod in msnlabs:
        fast, direct = formulas[name]["fast"], formulas[name]["direct"]
        traced = result.by_module[name]
        cpu_fast = fast if device_type == "cpu" else _msnlab_formula(cfg, mod, h, w, "fast")
        row = {"traced_fast_cpu": traced, "formula_fast_cpu_check": _check(traced, cpu_fast.total)}
        if device_type == "cpu":
            row.update(as_executed=traced, as_executed_method="fvcore trace (part of the whole-model trace)")
        else:
            row.update(as_executed=fast.total, as_executed_method=(
                f"closed-form formula with the {device_type} tiling (the CPU trace checks the formula "
                "with the CPU tiling)"))
        with direct_form(mod) as switched:
            if switched:
                d = fvcore_count(mod, torch.rand(1, cfg["n_feats"], h, w)).total
                row.update(direct_form=d, direct_form_method="fvcore trace of the MSNLAB alone, direct form switched on",
                           formula_direct_check=_check(d, direct.total))
            else:
                row.update(direct_form=direct.total,
                           direct_form_method="closed-form formula (the module has no direct-form switch)")
        rows[name] = row
    return rows


def _analytic_rows(msnlabs, formulas, cfg, h, w, device_type) -> dict:
    """MSNLAB rows from the closed-form formula, cross-checked on the meta device."""
    rows = {}
    for name, mod in msnlabs:
        fast, direct = formulas[name]["fast"], formulas[name]["direct"]
        rows[name] = {
            "as_executed": fast.total,
            "as_executed_method": f"closed-form formula, fast form with the {device_type} tiling",
            "direct_form": direct.total, "direct_form_method": "closed-form formula, direct form",
            "flop_counter_check_fast": _meta_check(mod, cfg, h, w, "fast"),
            "flop_counter_check_direct": _meta_check(mod, cfg, h, w, "direct"),
        }
    return rows


def count_size(model: nn.Module, cfg: Mapping[str, Any], lr_size, *, trace_limit: float = TRACE_LIMIT,
               device_type: str = "cpu") -> dict:
    """MACs of one forward at LR size (h, w): totals for both attention forms, breakdown, uncounted.

    `device_type`: the device whose fast-form tiling "as executed" refers to.
    """
    h, w = lr_size
    msnlabs = find_msnlabs(model)
    formulas = {name: {form: _msnlab_formula(cfg, mod, h, w, form, device_type=device_type)
                       for form in ("fast", "direct")} for name, mod in msnlabs}
    traced = sum(f["direct"].attention for f in formulas.values()) <= trace_limit
    x = torch.rand(1, 3, h, w) * 255
    extra_elements: dict = {}
    if traced:
        result = fvcore_count(model, x)
        rows = _traced_rows(result, msnlabs, formulas, cfg, h, w, device_type)
        for name, row in rows.items():  # off the CPU the MSNLAB's count is the formula's
            delta = row["as_executed"] - row["traced_fast_cpu"]
            result.by_module[name] += delta
            result.total += delta
            if delta:
                result.by_operator[f"MSNLAB {device_type} tiling vs CPU trace (formula)"] = delta
        method = "fvcore trace of the whole model on the CPU, MSNLAB attention included"
    else:
        with msnlabs_passed_through(model):
            result = fvcore_count(model, x)
        rows = _analytic_rows(msnlabs, formulas, cfg, h, w, device_type)
        for name in rows:  # the pass-through counted nothing: the MSNLAB's work comes from the formula
            fast = formulas[name]["fast"]
            result.by_module[name] = result.by_module.get(name, 0) + fast.total
            result.total += fast.total
            for op, n in (("MSNLAB convolutions (formula)", fast.convs),
                          ("MSNLAB attention products (formula)", fast.attention)):
                result.by_operator[op] = result.by_operator.get(op, 0) + n
            for branch in fast.elements.values():
                for op, n in branch.items():
                    key = f"MSNLAB attention {op} (formula)"
                    extra_elements[key] = extra_elements.get(key, 0) + n
        method = ("fvcore trace of the model on the CPU with each MSNLAB replaced by a pass-through (its "
                  "input returned), plus each MSNLAB (convolutions and attention) from the closed-form "
                  "formula in msnlan.complexity.formula, cross-checked with FlopCounterMode on the meta device")
    for name, row in rows.items():
        f = formulas[name]
        row["parts_fast"], row["parts_direct"] = f["fast"].as_dict(), f["direct"].as_dict()
        row["fast_form_untiled"] = _msnlab_formula(cfg, dict(msnlabs)[name], h, w, "fast",
                                                   chunk_elements=UNTILED).total
        row["fast_form_untiled_note"] = ("the fast form if each image were one query tile (no halo "
                                         "recomputation); as executed, tiles recompute their halos")
    total = result.total
    names = top_level_names(model)
    by_module = top_level_breakdown(result.by_module, names, total)
    by_module_direct = dict(by_module)
    for name, row in rows.items():
        by_module_direct[name] += row["direct_form"] - row["as_executed"]
    total_direct = total + sum(row["direct_form"] - row["as_executed"] for row in rows.values())
    return {
        "lr_size": [h, w],
        "total": total,
        "total_plus": SELF_ENSEMBLE_FACTOR * total,
        "by_module": by_module,
        "module_labels": part_labels(model, names),
        "by_operator": result.by_operator,
        "uncounted": result.uncounted,
        "as_executed": {"total": total, "total_plus": SELF_ENSEMBLE_FACTOR * total, "device_type": device_type,
                        "what": "MACs of what this implementation runs on this device type (fast MSNLAB "
                                "attention: pixel-score products, band sums, aggregation products, per "
                                "query tile with halos)"},
        "direct_form": {"total": total_direct, "total_plus": SELF_ENSEMBLE_FACTOR * total_direct,
                        "by_module": by_module_direct,
                        "what": "the same network with the MSNLAB attention counted in its direct form "
                                "(unfold + the two big matrix products), as papers count it"},
        "msnlab": rows,
        "uncounted_estimates": uncounted_estimates(result, total, extra_elements),
        "uncounted_note": ("op -> calls in the trace; " + ("" if traced else
                           "the MSNLABs were not traced at this size: their non-MAC work (softmax, band "
                           "sums) is estimated by formula under uncounted_estimates; ")
                           + "an element count is about one arithmetic operation per element"),
        "method": method,
        "traced_attention": traced,
    }


def _variant_mapping(resolved: Mapping[str, Any]) -> dict:
    """What build_model accepts to rebuild exactly this variant (e.g. in a subprocess)."""
    return {"description": resolved.get("description", ""), "model": dict(resolved["model"])}


def measure_complexity(variant, scale: int, *, device: str = "auto", runs: int = 3, warmup: int = 1,
                       runtime: bool = True, runtime_size=None, sizes=(SIZE_720P, SIZE_48),
                       trace_limit: float = TRACE_LIMIT, runtime_timeout: float | None = None,
                       **overrides) -> dict:
    """Complexity record of one variant at one scale (the complexity/<variant>/x<s>.json content).

    `variant`: registered name, YAML path or mapping (as msnlan.variants.resolve_variant).
    `runtime_size`: LR (h, w) or 'HxW' for the runtime/memory measurement; default the 720p size.
    """
    from ..models.network import build_model
    from ..provenance import git_commit, package_versions
    from ..variants import resolve_variant, variant_hash
    from ..checks import resolve_device
    from .runtime import measure_runtime

    scale = check_scale(scale, supported=None)
    resolved = resolve_variant(variant, **overrides)
    # the device type whose tiling "as executed" refers to; timing needs the device to exist
    device_type = resolve_device(device, present=runtime).type
    started = time.perf_counter()
    mapping = _variant_mapping(resolved)
    model = build_model(mapping, scale).eval()
    out: dict = {
        "variant": resolved["name"], "variant_source": resolved["source"],
        "variant_hash": variant_hash(resolved), "scale": scale,
        "model": resolved["model"],
        "params": count_params(model),
        "self_ensemble_factor": SELF_ENSEMBLE_FACTOR,
        "mac_convention": MAC_CONVENTION,
        "macs": {},
    }
    for size in sizes:
        if size == SIZE_720P:
            lr = lr_size_720p(scale)
        elif size == SIZE_48:
            lr = (48, 48)
        else:
            lr = parse_size(size, "size")
        entry = count_size(model, resolved["model"], lr, trace_limit=trace_limit, device_type=device_type)
        entry = {"lr_size": entry.pop("lr_size"), "hr_size": [lr[0] * scale, lr[1] * scale], **entry}
        if size == SIZE_720P:
            entry["lr_rounding"] = lr_rounding_note(scale)
        out["macs"][size] = entry
    out["macs_plus"] = {size: entry["total_plus"] for size, entry in out["macs"].items()}
    out["counting_seconds"] = round(time.perf_counter() - started, 2)
    if runtime:
        rsize = lr_size_720p(scale) if runtime_size is None else (
            parse_size(runtime_size) if isinstance(runtime_size, str) else tuple(runtime_size))
        out["runtime"] = measure_runtime(mapping, scale, rsize, device=device, runs=runs, warmup=warmup,
                                         timeout=runtime_timeout)
    else:
        out["runtime"] = {"skipped": True, "reason": "runtime not measured (--no-runtime)", "device": None,
                          "median_ms": None, "runs": 0, "peak_memory_mb": None}
    versions = package_versions()
    out["tool"] = {"fvcore": versions.get("fvcore"), "torch": torch.__version__}
    out["versions"] = versions
    out["git_commit"] = git_commit()
    out["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out
