"""CUDA graphs for the training step's forward and backward passes (the preset key `cuda_graphs`).

Why: on CUDA the paper model's training step is bound by kernel launches, not by the GPU. On an
H200 (batch 16 of 48 x 48, profiled 2026-11-30) the GPU was busy 96 ms of a 179-ms fp32 step, and
under bf16 autocast the step issued about 2,400 casts and took longer than in fp32 (CPU time
446 ms under the profiler against 82 ms of GPU time). A CUDA graph replays all kernels of the
forward pass with one launch, and those of the backward pass with another
(torch.cuda.make_graphed_callables); the loss, Adam and the lr schedule stay eager.

What it changes: nothing in the arithmetic (the graphs replay the kernels an eager step would
launch), so a run may resume with or without graphs (run_dir.IGNORED_KEYS). Constraints, checked
or guaranteed here: every training batch has the shape of the first (the patch sampler's batches
do; another shape raises), the model has no hooks and no buffers that need gradients, and the
autocast cache is off (the graph holds its own casts). Evaluation (model.eval()) runs the eager
forward pass: torch runs the graph only in the training mode it was captured in.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, MsnlanError

#: the preset key's values: off, on (a CUDA device required), on where the run's device is CUDA
SETTINGS = (False, True, "auto")


def use_cuda_graphs(setting: Any, device: torch.device, source: str = "cuda_graphs") -> bool:
    """Whether a run on `device` captures its passes: `auto` on CUDA only; `true` needs CUDA."""
    if setting not in SETTINGS:
        raise ConfigError(f"{source}: {setting!r} is not one of true, false, auto")
    if setting == "auto":
        return device.type == "cuda"
    if setting and device.type != "cuda":
        raise ConfigError(f"{source}: CUDA graphs need a CUDA device, but this run trains on {device} "
                          "(cuda_graphs: auto captures on CUDA devices only)")
    return bool(setting)


def capture_training_passes(model: torch.nn.Module, sample: torch.Tensor) -> None:
    """Replace `model`'s training-mode forward (and its backward) with CUDA graph replays.

    `sample`: a batch like every later one (shape, dtype, memory format); call it under the step's
    autocast context, created with cache_enabled=False. The warm-up passes torch runs before the
    capture compute gradients with torch.autograd.grad, so neither the weights nor their .grad
    change, and no random numbers are drawn: capturing leaves the run's state as it was."""
    if not model.training:
        raise MsnlanError("capture_training_passes: the model must be in training mode")
    if sample.requires_grad:
        raise MsnlanError("capture_training_passes: the input batch must not require gradients")
    shape = tuple(sample.shape)
    # allow_unused_input: a parameter the forward pass does not use keeps no gradient, as in an eager step
    torch.cuda.make_graphed_callables(model, (sample.detach(),), allow_unused_input=True)
    replay = model.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        # the graph copies each batch into its captured input: another shape would fail there, or
        # (a batch of one) broadcast silently
        if model.training and tuple(x.shape) != shape:
            raise MsnlanError(f"a training batch of shape {tuple(x.shape)} reached a model captured in a CUDA "
                              f"graph for batches of shape {shape} (cuda_graphs needs one batch shape per stage)")
        return replay(x)

    model.forward = forward
