"""Training: presets, the resumable training loop, checkpoints and GPU leasing.

`train(...)` (msnlan.training.engine) and `load_model(path, device)` (msnlan.training.checkpoint)
are imported lazily, so that light users (gpu_lease, presets) do not import torch.
"""
from importlib import import_module

_PUBLIC = {
    "train": "msnlan.training.engine",
    "TrainingDiverged": "msnlan.training.engine",
    "load_model": "msnlan.training.checkpoint",
    "load_preset": "msnlan.training.presets",
    "list_presets": "msnlan.training.presets",
    "claim_device": "msnlan.training.gpu_lease",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'msnlan.training' has no attribute {name!r}")
    return getattr(import_module(module), name)
