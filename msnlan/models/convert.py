"""The authors' released checkpoint (their key names) -> our paper-variant state_dict.

The mapping is explicit, key by key, over the key names of the authors' released checkpoints:
`sub_mean`/`add_mean`, `head.0`, `body.0-3` and `body.5-8` the residual groups (blocks
`body.<g>.body.<b>`: `branch1/2/3.0` the RMAB cascade convs, `fusion`, `CCA.conv_du.0/2`;
`body.<g>.body.9` the group's end conv), `body.4` the MSNLAB (`atten1/2/3` = patch 3/5/7 with
`down_sample.0/1`, `stoL.conv_match_1` (query), `stoL.conv_match_2` (key), `stoL.conv_assembly`
(value), each conv `.0` + PReLU `.1`; `fusion`, `CA.conv_du.0/2`), `body.9` the trunk end,
`fusion` the dense fusion, `fusion_list.<i>` the later skip fusions, `tail.0.0` (and
`tail.0.2` at x4) the upsampler, `tail.1` the final conv. `escape_NaN` buffers hold the
norm clamp (1e-4): checked and dropped.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch

from ..checks import check_scale
from ..errors import CheckpointError
from ..paper import PAPER_DESCRIPTION, PAPER_MODEL
from .msnlab import NORM_EPS

#: the paper model's layout, which the authors' checkpoints have
_GROUPS, _BLOCKS = PAPER_MODEL["n_resgroups"], PAPER_MODEL["n_resblocks"]
_BRANCHES = len(PAPER_MODEL["patch_sizes"])
_SKIP_FUSIONS = _GROUPS - _GROUPS // 2 - 1  # every group after the MSNLAB but the first


def _conv(authors: str, ours: str) -> list[tuple[str, str]]:
    return [(f"{authors}.weight", f"{ours}.weight"), (f"{authors}.bias", f"{ours}.bias")]


def authors_key_map(scale: int) -> "OrderedDict[str, str]":
    """{authors' key: our key} for every weight of the paper model at `scale` (escape_NaN excluded)."""
    scale = check_scale(scale, error=CheckpointError)
    pairs: list[tuple[str, str]] = []
    pairs += _conv("sub_mean", "sub_mean") + _conv("add_mean", "add_mean") + _conv("head.0", "head")
    for g in range(_GROUPS):
        authors_g = g if g < _GROUPS // 2 else g + 1  # body.4 is the MSNLAB
        for b in range(_BLOCKS):
            a, o = f"body.{authors_g}.body.{b}", f"groups.{g}.blocks.{b}"
            for i in (1, 2, 3):
                pairs += _conv(f"{a}.branch{i}.0", f"{o}.conv{i}")
            pairs += _conv(f"{a}.fusion", f"{o}.fusion")
            pairs += _conv(f"{a}.CCA.conv_du.0", f"{o}.attention.reduce")
            pairs += _conv(f"{a}.CCA.conv_du.2", f"{o}.attention.expand")
        pairs += _conv(f"body.{authors_g}.body.{_BLOCKS}", f"groups.{g}.end")
    m = f"body.{_GROUPS // 2}"
    for i in range(_BRANCHES):
        a, o = f"{m}.atten{i + 1}", f"msnlab.branches.{i}"
        pairs += _conv(f"{a}.down_sample.0", f"{o}.enlarge.conv")
        pairs.append((f"{a}.down_sample.1.weight", f"{o}.enlarge.act.weight"))
        for theirs, part in (("conv_match_1", "query"), ("conv_match_2", "key"), ("conv_assembly", "value")):
            pairs += _conv(f"{a}.stoL.{theirs}.0", f"{o}.{part}.conv")
            pairs.append((f"{a}.stoL.{theirs}.1.weight", f"{o}.{part}.act.weight"))
    pairs += _conv(f"{m}.fusion", "msnlab.fusion")
    pairs += _conv(f"{m}.CA.conv_du.0", "msnlab.attention.reduce")
    pairs += _conv(f"{m}.CA.conv_du.2", "msnlab.attention.expand")
    pairs += _conv(f"body.{_GROUPS + 1}", "trunk_end")
    pairs += _conv("fusion", "dense_fusion")
    for i in range(_SKIP_FUSIONS):
        pairs += _conv(f"fusion_list.{i}", f"skip_fusions.{i}")
    pairs += _conv("tail.0.0", "upsample.0")
    if scale == 4:
        pairs += _conv("tail.0.2", "upsample.2")
    pairs += _conv("tail.1", "to_rgb")
    return OrderedDict(pairs)


def _expected_shapes(scale: int) -> dict[str, torch.Size]:
    """Shapes of the paper model's state_dict, built on the meta device (no memory).

    Built from msnlan.paper, never from a variant file a user may have edited.
    """
    from .network import build_model

    with torch.device("meta"):
        model = build_model({"name": "msnlan", "description": PAPER_DESCRIPTION, "model": PAPER_MODEL}, scale)
    return {k: v.shape for k, v in model.state_dict().items()}


def unwrap_state_dict(checkpoint: Any) -> Mapping[str, Any]:
    """The state_dict inside common wrappers ({'state_dict': ...}, {'model': ...}), without a
    DataParallel 'module.' prefix."""
    state = checkpoint
    for _ in range(2):  # e.g. {'model': {'state_dict': ...}}
        if isinstance(state, Mapping) and not any(torch.is_tensor(v) for v in state.values()):
            inner = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), Mapping)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, Mapping):
        raise CheckpointError(f"not a state_dict: got {type(state).__name__}")
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def convert_authors_checkpoint(state_dict: Mapping[str, Any], scale: int) -> "OrderedDict[str, torch.Tensor]":
    """Our paper-variant state_dict (loads with strict=True) from the authors' checkpoint at `scale`.

    Accepts a raw state_dict, {'state_dict': ...} / {'model': ...} wrappers and 'module.'
    prefixes. Raises CheckpointError naming the first key that does not fit: unexpected
    (in the checkpoint's order), wrong shape, or missing (in the model's order).
    """
    state = unwrap_state_dict(state_dict)
    key_map = authors_key_map(scale)
    shapes = _expected_shapes(scale)
    hint = f" (is this an x{scale} checkpoint of the paper model?)"
    converted: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise CheckpointError(f"key {key!r} holds {type(value).__name__}, not a tensor")
        if isinstance(key, str) and key.endswith("escape_NaN"):
            if value.numel() != 1 or abs(float(value.reshape(-1)[0]) - NORM_EPS) > 1e-9:
                raise CheckpointError(f"key {key!r}: the norm clamp is {value.reshape(-1)[:4].tolist()}, "
                                      f"not {NORM_EPS} as this network assumes")
            continue
        ours = key_map.get(key)
        if ours is None:
            raise CheckpointError(f"unexpected key {key!r}{hint}")
        if value.shape != shapes[ours]:
            raise CheckpointError(f"key {key!r} has shape {'x'.join(map(str, value.shape)) or 'scalar'}, "
                                  f"expected {'x'.join(map(str, shapes[ours]))}{hint}")
        converted[ours] = value.detach().clone()
    for authors, ours in key_map.items():
        if ours not in converted:
            raise CheckpointError(f"missing key {authors!r}{hint}")
    # our module order, so that the result reads like model.state_dict()
    return OrderedDict((k, converted[k]) for k in shapes)


def is_authors_layout(state: Mapping[str, Any], scale: int) -> bool:
    """Whether an (unwrapped) state_dict is in the authors' key layout rather than ours: more of its
    keys are the authors' names (or their escape_NaN buffers) than names of our paper model."""
    key_map = authors_key_map(scale)
    ours = set(key_map.values())
    theirs = sum(1 for k in state if k in key_map or (isinstance(k, str) and k.endswith("escape_NaN")))
    return theirs > sum(1 for k in state if k in ours)


def first_mismatch(state: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """The first way `state` does not fit a model whose state_dict is `expected` (key -> tensor or
    shape), as a short phrase naming the key: an unexpected key (in the checkpoint's order), a wrong
    shape, or a missing key (in the model's order); None when it fits."""
    def shape_text(shape) -> str:
        return "x".join(map(str, shape)) or "scalar"

    for key, value in state.items():
        if key not in expected:
            return f"unexpected key {key!r}"
        want = expected[key].shape if torch.is_tensor(expected[key]) else torch.Size(expected[key])
        if not torch.is_tensor(value):
            return f"key {key!r} holds {type(value).__name__}, not a tensor"
        if value.shape != want:
            return f"key {key!r} has shape {shape_text(value.shape)}, expected {shape_text(want)}"
    for key in expected:
        if key not in state:
            return f"missing key {key!r}"
    return None
