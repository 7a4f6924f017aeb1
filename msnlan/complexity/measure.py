"""`measure_complexity`: parameters, MACs at two input sizes (both attention forms), runtime.

What is traced and what is computed, per input size:

* If the MSNLAB attention is small enough to run (its direct-form MACs at most
  `trace_limit`), fvcore traces the whole model: every number, the MSNLAB's fast attention
  included, is fvcore's count of what executes. The direct form is then counted by tracing each
  MSNLAB alone with its direct reference form switched on (if the module has the switch), else
  by the closed-form formula. The formula is checked against the traced MSNLAB.
* Otherwise (the 720p sizes: N = H*W is ~10^5, the attention is O(N^2)) fvcore traces the
  model with each MSNLAB replaced by a pass-through, and each MSNLAB is counted with the
  closed-form formula (msnlan.complexity.formula), both forms. The formula is cross-checked by
  FlopCounterMode running the real MSNLAB on the meta device (no memory, no arithmetic).
"""
from __future__ import annotations

import datetime as _dt
import time
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from .counting import fvcore_count, top_level_breakdown, top_level_names, uncounted_estimates
from .formula import msnlab_macs
from .msnlab_hooks import (chunk_budgets, direct_form, find_msnlabs, flop_counter_macs,
                           msnlabs_passed_through)

SELF_ENSEMBLE_FACTOR = 8
#: largest direct-form MSNLAB attention (MACs) that is traced for real rather than computed
TRACE_LIMIT = 1e11
#: the meta-device cross-check walks the fast form's Python tile loop (~3 ms per tile here):
#: skipped above this many tiles (the paper model at x2 720p has 74,640: ~4 minutes; x3 4,816)
META_CHECK_TILE_LIMIT = 6000
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
    """Parameter counts: trainable (requires_grad) and fixed (e.g. the mean shifts); buffers apart."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    msnlab = sum(p.numel() for _, m in find_msnlabs(model) for p in m.parameters())
    return {"total": trainable + fixed, "trainable": trainable, "fixed": fixed,
            "buffers": sum(b.numel() for b in model.buffers()), "msnlab": msnlab,
            "method": "numel summed over model.parameters(); fixed = requires_grad False; "
                      "buffers (not parameters) listed apart and not in total"}


def _msnlab_formula(cfg: Mapping[str, Any], module: nn.Module, h: int, w: int, form: str):
    return msnlab_macs(h, w, cfg["n_feats"], cfg["patch_sizes"], reduction=cfg["reduction"],
                       form=form, pool_counted=_pools_adaptively(module),
                       chunk_elements=chunk_budgets(module))


def _pools_adaptively(module: nn.Module) -> bool:
    """fvcore counts adaptive_avg_pool2d (one per element) but not a plain mean."""
    return any(isinstance(m, nn.AdaptiveAvgPool2d) for m in module.modules())


def _meta_check(module: nn.Module, cfg: Mapping, h: int, w: int, formula, form: str,
                tile_limit: int = META_CHECK_TILE_LIMIT) -> dict:
    """FlopCounterMode (meta device) count of one MSNLAB against the formula."""
    tiles = sum(formula.tiles.values())
    if form == "fast" and tiles > tile_limit:
        return {"status": f"skipped: {tiles} attention tiles (limit {tile_limit}); the formula is checked "
                          "against the module at sizes with fewer tiles (tests/test_complexity.py)"}
    try:
        if form == "direct":
            with direct_form(module) as switched:
                if not switched:
                    return {"status": "skipped: the MSNLAB has no direct-form switch"}
                counted = flop_counter_macs(module, (1, cfg["n_feats"], h, w))
        else:
            counted = flop_counter_macs(module, (1, cfg["n_feats"], h, w))
    except Exception as exc:  # a kernel without a meta implementation: report, do not fail
        return {"status": f"skipped: FlopCounterMode on meta failed ({type(exc).__name__}: {exc})"}
    expected = formula.total - formula.conv_parts.get("channel_attention_pool", 0)  # not counted there
    return {"status": "match" if counted["total"] == expected else "MISMATCH",
            "flop_counter_macs": counted["total"], "formula_macs_without_pooling": expected,
            "tool": f"torch.utils.flop_counter.FlopCounterMode on the meta device (flops / 2), torch {torch.__version__}"}


def count_size(model: nn.Module, cfg: Mapping[str, Any], lr_size, *, trace_limit: float = TRACE_LIMIT) -> dict:
    """MACs of one forward at LR size (h, w): totals for both attention forms, breakdown, uncounted."""
    h, w = lr_size
    msnlabs = find_msnlabs(model)
    formulas = {name: {form: _msnlab_formula(cfg, mod, h, w, form) for form in ("fast", "direct")}
                for name, mod in msnlabs}
    direct_attention = sum(f["direct"].attention for f in formulas.values())
    traced = direct_attention <= trace_limit
    x = torch.rand(1, 3, h, w) * 255
    msnlab_rows: dict = {}
    extra_elements: dict = {}
    if traced:
        result = fvcore_count(model, x)
        for name, mod in msnlabs:
            fast = formulas[name]["fast"]
            counted = result.by_module[name]
            row = {"as_executed": counted, "as_executed_method": "fvcore trace",
                   "formula_fast": fast.total,
                   "formula_check": "match" if counted == fast.total else "MISMATCH"}
            with direct_form(mod) as switched:
                if switched:
                    d = fvcore_count(mod, torch.rand(1, cfg["n_feats"], h, w)).total
                    row.update(direct_form=d, direct_form_method="fvcore trace of the MSNLAB alone, direct form switched on")
                else:
                    row.update(direct_form=formulas[name]["direct"].total,
                               direct_form_method="closed-form formula (the module has no direct-form switch)")
            row["formula_direct"] = formulas[name]["direct"].total
            msnlab_rows[name] = row
        method = "fvcore trace of the whole model, MSNLAB attention included (as executed)"
    else:
        with msnlabs_passed_through(model):
            result = fvcore_count(model, x)
        for name, mod in msnlabs:
            fast, direct = formulas[name]["fast"], formulas[name]["direct"]
            msnlab_rows[name] = {
                "as_executed": fast.total, "as_executed_method": "closed-form formula (fast form)",
                "direct_form": direct.total, "direct_form_method": "closed-form formula (direct form)",
                "formula_fast": fast.total, "formula_direct": direct.total,
                "flop_counter_check_fast": _meta_check(mod, cfg, h, w, fast, "fast"),
                "flop_counter_check_direct": _meta_check(mod, cfg, h, w, direct, "direct"),
                "parts_fast": fast.as_dict(), "parts_direct": direct.as_dict(),
            }
            for branch in fast.elements.values():  # the attention's non-MAC work, not traced
                for op, n in branch.items():
                    key = f"MSNLAB attention {op} (formula)"
                    extra_elements[key] = extra_elements.get(key, 0) + n
        method = ("fvcore trace of the model with each MSNLAB replaced by a pass-through, plus each "
                  "MSNLAB (convs and attention) from the closed-form formula; formula cross-checked "
                  "with FlopCounterMode on the meta device")
    by_module = top_level_breakdown(result.by_module, top_level_names(model), result.total)
    total = result.total
    total_direct = total
    by_module_direct = dict(by_module)
    for name, row in msnlab_rows.items():
        if not traced:  # the pass-through counted nothing: add the MSNLAB itself
            total += row["as_executed"]
            by_module[name] = by_module.get(name, 0) + row["as_executed"]
        total_direct = total_direct - (row["as_executed"] if traced else 0) + row["direct_form"]
        by_module_direct[name] = by_module_direct.get(name, 0) - (row["as_executed"] if traced else 0) + row["direct_form"]
    return {
        "lr_size": [h, w], "hr_size": None,  # filled by the caller, which knows the scale
        "total": total,
        "total_plus": SELF_ENSEMBLE_FACTOR * total,
        "by_module": by_module,
        "by_operator": result.by_operator,
        "uncounted": result.uncounted,
        "as_executed": {"total": total, "total_plus": SELF_ENSEMBLE_FACTOR * total,
                        "what": "MACs of what this implementation runs (fast MSNLAB attention: pixel-score "
                                "product + band sums + pixel aggregation product)"},
        "direct_form": {"total": total_direct, "total_plus": SELF_ENSEMBLE_FACTOR * total_direct,
                        "by_module": by_module_direct,
                        "what": "the same network with the MSNLAB attention counted in its direct form "
                                "(unfold + the two big matrix products), as papers count it"},
        "msnlab": msnlab_rows,
        "uncounted_estimates": uncounted_estimates(result, total, extra_elements),
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
    from .runtime import measure_runtime, resolve_device

    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}")
    resolved = resolve_variant(variant, **overrides)
    if runtime:
        resolve_device(device)
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
        entry = count_size(model, resolved["model"], lr, trace_limit=trace_limit)
        entry["hr_size"] = [lr[0] * scale, lr[1] * scale]
        if size == SIZE_720P:
            entry["lr_rounding"] = lr_rounding_note(scale)
        out["macs"][size] = entry
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
