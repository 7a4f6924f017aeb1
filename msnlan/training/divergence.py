"""Divergence: a checkpoint is written only from a finite state, and the stop message says what
exists and how to go on.

A state is finite when every weight and every optimizer tensor (Adam's moments) is finite and the
loss the next step would start from is finite: the loss of the weights about to be saved, on the
batch just used. Without that last check a checkpoint written between an overflowing step and
the NaN it causes holds weights that have already diverged, and resuming from it meets the NaN again.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MsnlanError

#: the optimizer settings `msnlan train --resume-with` may change when continuing a run
RESUMABLE_KEYS = ("lr", "betas", "eps", "weight_decay", "milestones", "gamma")


class TrainingDiverged(MsnlanError):
    """The loss, the weights or the optimizer state became NaN or Inf."""


def nonfinite_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[str]:
    """Names of the weights (and 'optimizer state of <weight>') holding a NaN or Inf."""
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for param, state in optimizer.state.items():
            for value in state.values():
                if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                    bad.append(f"optimizer state of {names.get(id(param), '?')}")
                    break
    return bad


def probe_loss(model: torch.nn.Module, lr_t: torch.Tensor, hr_t: torch.Tensor, autocast=None) -> float:
    """The L1 loss of the current weights on a batch, without gradients or any state change."""
    with torch.no_grad(), (autocast if autocast is not None else contextlib.nullcontext()):
        sr = model(lr_t)
    return float(F.l1_loss(sr.float(), hr_t))


def check_finite_state(model, optimizer, lr_t, hr_t, autocast, iteration: int, run_dir: Path,
                       resume_hint: str) -> None:
    """Raise TrainingDiverged (with `stop_message`) unless the state after `iteration` is finite."""
    bad = nonfinite_tensors(model, optimizer)
    if bad:
        what = f"{len(bad)} tensor(s) are not finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
    else:
        loss = probe_loss(model, lr_t, hr_t, autocast)
        if math.isfinite(loss):
            return
        what = f"the weights give a loss of {loss} on the last batch"
    raise TrainingDiverged(stop_message(run_dir, f"after iteration {iteration} {what}", resume_hint))


def stop_message(run_dir: Path, what: str, resume_hint: str) -> str:
    """'<what> (<run_dir>); stopped.' plus the checkpoints that exist and how to go on from them."""
    from .checkpoint import CheckpointError, load_train_state

    found = []
    for name in ("last.pt", "best.pt"):
        path = run_dir / name
        if path.is_file():
            try:
                found.append(f"{path} (iteration {load_train_state(path)['iteration']})")
            except CheckpointError as exc:
                found.append(f"{path} (unreadable: {exc})")
    head = f"training diverged: {what} ({run_dir}); stopped, nothing of this state was saved."
    if not found:
        return (f"{head} No checkpoint had been written yet, so there is nothing to resume: start again "
                f"with a lower learning rate, e.g. --restart --set lr=<smaller>.")
    return (f"{head} Kept, written from a finite state: {'; '.join(found)}. To continue from last.pt with "
            f"changed optimizer settings, run the same command with {resume_hint} (recorded in config.yaml); "
            "resuming unchanged is likely to diverge again. Or start afresh with --restart --set lr=<smaller>.")
