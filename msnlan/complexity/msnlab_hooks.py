"""Finding the MSNLABs in a model, swapping their forms, and counting them off-line.

* `find_msnlabs`: every MSNLAB module with its qualified name.
* `msnlabs_passed_through`: replaces each MSNLAB by a shape-preserving pass-through while the
  rest of a large model is traced (its attention is O((HW)^2) and cannot run at 720p here);
  the MSNLAB is then counted with the closed-form formula.
* `direct_form`: switches an MSNLAB's branches to the direct reference attention.
* `flop_counter_macs`: MACs of a module from torch.utils.flop_counter.FlopCounterMode (2 flops
  per MAC), run on the "meta" device so that no memory is allocated and nothing is computed:
  the MSNLAB at 720p runs its real code (tile loop included) in seconds. The fast form tiles
  by device type, so on meta it tiles as on a GPU, not as on the CPU.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn


def _is_msnlab(module: nn.Module) -> bool:
    # by the block's declared property (msnlan.models.registry), not by its class
    from ..models.registry import is_quadratic_attention

    return is_quadratic_attention(module)


def find_msnlabs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every MSNLAB, outermost only."""
    found = []
    for name, module in model.named_modules():
        if _is_msnlab(module) and not any(name.startswith(f"{n}.") for n, _ in found):
            found.append((name, module))
    return found


class PassThrough(nn.Module):
    """Stands in for an MSNLAB while the rest of the network is traced: returns its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, (nn.Sequential, nn.ModuleList)):
        parent[int(leaf)] = module
    else:
        setattr(parent, leaf, module)


@contextlib.contextmanager
def msnlabs_passed_through(model: nn.Module) -> Iterator[list[str]]:
    """Within the block, every MSNLAB of `model` is a PassThrough; restored afterwards."""
    found = find_msnlabs(model)
    try:
        for name, _ in found:
            _set_submodule(model, name, PassThrough())
        yield [name for name, _ in found]
    finally:
        for name, module in found:
            _set_submodule(model, name, module)


def _branches(module: nn.Module) -> list[nn.Module]:
    """The non-local branches inside `module` (they carry the attention_mode switch)."""
    return [m for m in module.modules() if hasattr(m, "attention_mode")]


def has_direct_switch(module: nn.Module) -> bool:
    """Whether the MSNLAB lets us select its direct reference form."""
    return bool(_branches(module))


def chunk_budgets(module: nn.Module) -> dict:
    """Patch size -> the fast form's working-buffer budget (None: the implementation default)."""
    return {b.patch_size: getattr(b, "max_chunk_elements", None) for b in _branches(module)
            if hasattr(b, "patch_size")}


@contextlib.contextmanager
def direct_form(module: nn.Module) -> Iterator[bool]:
    """Switch every branch of one MSNLAB to the direct form; yields False where it cannot.

    Uses the branches' `attention_mode` ("fast" | "direct", msnlan.models.msnlab); restores
    each branch's previous mode afterwards.
    """
    branches = _branches(module)
    previous = [b.attention_mode for b in branches]
    try:
        for b in branches:
            b.attention_mode = "direct"
        yield bool(branches)
    finally:
        for b, mode in zip(branches, previous):
            b.attention_mode = mode


def flop_counter_macs(module: nn.Module, input_shape, *, meta: bool = True) -> dict:
    """MACs by operator of one forward of `module` under FlopCounterMode (flops / 2).

    With `meta` the module is copied to the meta device: shapes only, no memory, no arithmetic.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("meta") if meta else next(module.parameters()).device
    mod = copy.deepcopy(module).to(device) if meta else module
    x = torch.empty(*input_shape, device=device) if meta else torch.rand(*input_shape, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        mod(x)
    by_op = {str(op).replace("aten.", "aten::", 1): int(n) // 2
             for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"total": int(counter.get_total_flops()) // 2, "by_operator": by_op}
