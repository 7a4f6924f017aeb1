"""MAC counting with fvcore: handles, top-level breakdown, uncounted operators.

`fvcore_count` traces a model once (fvcore runs it through torch.jit.trace) with the MAC
handles of `handles.py` plus element-count handles for non-MAC ops, and splits the result
into MACs (by module and by operator) and what stays uncounted.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from . import handles as H

#: container types whose children are listed separately in the top-level breakdown (lists of
#: parts such as the residual groups; a Sequential, e.g. the upsampler, is one part)
_CONTAINERS = (nn.ModuleList, nn.ModuleDict)
TOP_LEVEL_REST = "(top-level forward)"


@dataclass
class FvcoreResult:
    """MACs of one trace: totals, per module (MAC operators only), and what was not counted."""

    total: int
    by_module: dict            # every module name ('' is the model) -> MACs
    by_operator: dict          # MAC operator -> MACs
    uncounted: dict            # op -> calls (estimate-handled and unsupported alike)
    elements: dict             # op -> elements touched (estimate-handled ops only)
    unsupported: dict = field(default_factory=dict)  # op -> calls with no handle at all


def make_analysis(model: nn.Module, inputs) -> "H.FlopCountAnalysis":
    """fvcore FlopCountAnalysis with our MAC and estimate handles, warnings silenced."""
    fa = H.FlopCountAnalysis(model, inputs)
    fa.set_op_handle(**H.estimate_handles())
    fa.set_op_handle(**H.MAC_HANDLES)  # MAC handles win over an estimate of the same op
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    fa.tracer_warnings("none")
    return fa


def fvcore_count(model: nn.Module, inputs) -> FvcoreResult:
    """Trace `model` on `inputs` (a tensor or tuple) once and split MACs from the rest."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = make_analysis(model, inputs)
            per_module = fa.by_module_and_operator()
            unsupported = dict(fa.unsupported_ops())
    finally:
        model.train(was_training)
    by_module = {name: int(sum(v for k, v in ops.items() if H.is_mac_key(k)))
                 for name, ops in per_module.items()}
    root = per_module[""]
    by_operator = {k: int(v) for k, v in root.items() if H.is_mac_key(k)}
    uncounted = {k[len(H.CALLS):]: int(v) for k, v in root.items() if k.startswith(H.CALLS)}
    elements = {k[len(H.ELEMENTS):]: int(v) for k, v in root.items() if k.startswith(H.ELEMENTS)}
    for op, calls in unsupported.items():
        uncounted[op] = uncounted.get(op, 0) + int(calls)
    return FvcoreResult(total=by_module[""], by_module=by_module, by_operator=by_operator,
                        uncounted=dict(sorted(uncounted.items())), elements=elements,
                        unsupported={k: int(v) for k, v in unsupported.items()})


def top_level_names(model: nn.Module) -> list[str]:
    """The model's children, with ModuleList/ModuleDict children opened one level."""
    names = []
    for name, child in model.named_children():
        if type(child) in _CONTAINERS and len(child):
            names += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            names.append(name)
    return names


#: readable names of the MSNLAN network's parts (msnlan.models.network attribute names)
_LABELS = {
    "sub_mean": "mean subtraction (fixed 1x1 conv)",
    "head": "head conv",
    "msnlab": "MSNLAB",
    "dense_fusion": "dense fusion into the MSNLAB (1x1, n_before*C -> C)",
    "trunk_end": "trunk-end conv",
    "upsample": "upsampler",
    "to_rgb": "final conv (C -> 3)",
    "add_mean": "mean addition (fixed 1x1 conv)",
}


def part_labels(model: nn.Module, names: Iterable[str]) -> dict:
    """Name -> readable label for the top-level parts (RG1.., dense fusions, MSNLAB, tail)."""
    n_before = getattr(model, "n_before", None)
    labels = {}
    for name in names:
        base, _, index = name.partition(".")
        if base == "groups" and index.isdigit():
            labels[name] = f"RG{int(index) + 1}"
        elif base == "skip_fusions" and index.isdigit() and n_before is not None:
            labels[name] = f"dense fusion before RG{n_before + int(index) + 2} (1x1, 2C -> C)"
        else:
            labels[name] = _LABELS.get(name, name)
    return labels


def top_level_breakdown(by_module: dict, names: Iterable[str], total: int) -> dict:
    """MACs of the listed modules; work done directly in the model's forward goes under one key.

    The values always sum to `total`.
    """
    out = {name: int(by_module.get(name, 0)) for name in names}
    rest = total - sum(out.values())
    if rest:
        out[TOP_LEVEL_REST] = rest
    return out


def uncounted_estimates(result: FvcoreResult, mac_total: int, extra_elements: dict | None = None) -> dict:
    """For every uncounted op: calls, elements touched where known, and that as a share of the MACs.

    The share is an order-of-magnitude figure: about one arithmetic operation per element for
    elementwise ops and reductions; data movement (im2col, pixel shuffle, padding) does no
    arithmetic and gets no share.
    """
    extra_elements = extra_elements or {}
    out = {}
    for op, calls in result.uncounted.items():
        kind = H.op_kind(op)
        elements = result.elements.get(op)
        if op in extra_elements:
            elements = (elements or 0) + extra_elements[op]
        entry = {"calls": calls, "kind": kind, "elements": elements}
        if kind == "elementwise" and elements is not None and mac_total:
            entry["share_of_macs"] = round(elements / mac_total, 6)
        else:
            entry["share_of_macs"] = None
        out[op] = entry
    for op, elements in extra_elements.items():  # computed, not traced: additions and exponentials
        if op not in out:
            out[op] = {"calls": None, "kind": "elementwise", "elements": elements,
                       "share_of_macs": round(elements / mac_total, 6) if mac_total else None}
    return out
