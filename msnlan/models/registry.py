"""Registries of the network's building blocks, read by the network, the variant schema, the
ablation table and the complexity counting.

* Trunk blocks: the block repeated inside every residual group (RMAB, RCAB). A variant's
  `model.block` names one; the schema's enum is the registered names.
* Attention blocks: the block between the first and second half of the groups (the MSNLAB).
  Each is switched on by a boolean model setting of its own name; the ablation table shows one
  component column per block. `quadratic` declares that its cost grows with the square of the
  image size: complexity counting then never traces it at large sizes but uses its formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn


@dataclass(frozen=True)
class TrunkBlock:
    name: str
    label: str                                   # the ablation table's "Block" column
    build: Callable[[int, int], nn.Module]       # (n_feats, reduction) -> block


@dataclass(frozen=True)
class AttentionBlock:
    name: str                                    # also its on/off model setting and its module name
    label: str                                   # the ablation table's component column
    build: Callable[[Mapping[str, Any]], nn.Module]   # model settings -> block
    quadratic: bool = False
    multi_scale: Callable[[Mapping[str, Any]], bool] | None = None   # "Multi-scale" component, if any


TRUNK_BLOCKS: dict[str, TrunkBlock] = {}
ATTENTION_BLOCKS: dict[str, AttentionBlock] = {}


def register_trunk_block(block: TrunkBlock) -> TrunkBlock:
    TRUNK_BLOCKS[block.name] = block
    return block


def register_attention_block(block: AttentionBlock) -> AttentionBlock:
    ATTENTION_BLOCKS[block.name] = block
    return block


def is_quadratic_attention(module: nn.Module) -> bool:
    """Whether `module` was built as an attention block registered as quadratic."""
    spec = ATTENTION_BLOCKS.get(getattr(module, "registered_attention", None))
    return spec is not None and spec.quadratic


def build_attention(settings: Mapping[str, Any]) -> tuple[str, nn.Module | None]:
    """(module name, block) of the attention block switched on in `settings` (None if none is)."""
    on = [name for name in ATTENTION_BLOCKS if settings.get(name)]
    if len(on) > 1:
        raise ValueError(f"model settings switch on more than one attention block: {', '.join(on)}")
    if not on:
        return next(iter(ATTENTION_BLOCKS)), None
    module = ATTENTION_BLOCKS[on[0]].build(settings)
    module.registered_attention = on[0]  # the declared properties travel with the module
    return on[0], module


def _register_builtin_blocks() -> None:
    from .blocks import RCAB, RMAB
    from .msnlab import MSNLAB

    register_trunk_block(TrunkBlock("rmab", "RMAB", RMAB))
    register_trunk_block(TrunkBlock("rcab", "RCAB", RCAB))
    register_attention_block(AttentionBlock(
        "msnlab", "MSNLAB",
        lambda s: MSNLAB(s["n_feats"], s["patch_sizes"], s["softmax_scale"], s["res_scale"], s["reduction"]),
        quadratic=True, multi_scale=lambda s: len(s["patch_sizes"]) > 1))


_register_builtin_blocks()
