"""JSON schema (draft 2020-12) of a training preset file (msnlan/presets/*.yaml).

Kept as a Python mapping so that it ships with the package code; `model` is checked against the
variant schema separately (it holds variant overrides).

`stages` (optional, two or more): the run trains them in order, each from the previous stage's
final weights with a fresh optimiser and lr schedule. A stage sets any of STAGE_KEYS; the keys it
leaves out are the preset's top-level values (msnlan.training.stages resolves them).
"""
from __future__ import annotations

from ..attention_modes import ATTENTION_MODES

_POS_INT = {"type": "integer", "minimum": 1}
_MILESTONES = {"type": "array", "items": _POS_INT, "uniqueItems": True,
               "description": "iterations (counted from the stage's start) after which lr is multiplied by gamma"}

#: what a stage may set; the rest of the recipe is shared by every stage
STAGE_KEYS = ("iterations", "batch_size", "patch_size", "lr", "milestones", "val_interval", "checkpoint_interval",
              "log_interval")

STAGE_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "a label for logs and the report"},
        "iterations": {**_POS_INT, "description": "optimizer steps in this stage"},
        "batch_size": _POS_INT,
        "patch_size": {**_POS_INT, "description": "LR patch side in this stage"},
        "lr": {"type": "number", "exclusiveMinimum": 0, "description": "initial lr of this stage"},
        "milestones": _MILESTONES,
        "val_interval": _POS_INT,
        "checkpoint_interval": _POS_INT,
        "log_interval": _POS_INT,
    },
}

PRESET_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://msnlan.invalid/schemas/preset.schema.json",
    "title": "MSNLAN training preset",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "iterations", "batch_size", "patch_size", "augment", "loss", "lr", "milestones", "gamma",
        "betas", "eps", "weight_decay", "val_interval", "val_max_images", "checkpoint_interval",
        "log_interval", "seed", "num_workers", "deterministic", "amp", "channels_last", "model",
    ],
    "properties": {
        "description": {"type": "string"},
        "iterations": {**_POS_INT, "description": "optimizer steps (of each stage that does not set its own)"},
        "batch_size": {**_POS_INT, "description": "patch pairs per step"},
        "patch_size": {**_POS_INT, "description": "LR patch side; the HR patch is scale x this"},
        "augment": {"type": "boolean", "description": "random flips/transpose (8 variants)"},
        "loss": {"enum": ["l1"]},
        "lr": {"type": "number", "exclusiveMinimum": 0},
        "milestones": _MILESTONES,
        "gamma": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "betas": {"type": "array", "minItems": 2, "maxItems": 2,
                  "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
        "eps": {"type": "number", "exclusiveMinimum": 0},
        "weight_decay": {"type": "number", "minimum": 0},
        "val_interval": {**_POS_INT, "description": "validate every N iterations (and at the end)"},
        "val_max_images": {"oneOf": [{"type": "null"}, _POS_INT],
                           "description": "validate on the first N images only (null: all)"},
        "checkpoint_interval": {**_POS_INT, "description": "write last.pt every N iterations"},
        "log_interval": {**_POS_INT, "description": "one log.csv row per N iterations"},
        "seed": {"type": "integer", "minimum": 0},
        "num_workers": {"type": "integer", "minimum": 0,
                        "description": "0: batches made in the training loop; >0: one background "
                                       "thread keeps this many batches ready"},
        "deterministic": {"type": "boolean",
                          "description": "torch.use_deterministic_algorithms; off allows cudnn.benchmark"},
        "amp": {"enum": ["none", "bf16"], "description": "autocast the forward pass to bfloat16"},
        "attention_mode": {"enum": list(ATTENTION_MODES),
                           "description": "MSNLAB attention form: auto (the faster form measured for the device), "
                                          "fast or direct; environment.json records the form that ran"},
        "channels_last": {"enum": [True, False, "auto"],
                          "description": "train in channels_last memory format; auto: on CUDA only (there it made "
                                         "the paper model's fp32 training step 1.18-1.27x faster, on the CPU "
                                         "slower); environment.json records what ran (memory_format)"},
        "cuda_graphs": {"enum": [True, False, "auto"],
                        "description": "replay the training step's forward and backward passes as CUDA graphs "
                                       "(msnlan.training.cuda_graphs): true needs a CUDA device, auto captures on "
                                       "CUDA only; absent: false. The same arithmetic: environment.json records "
                                       "what ran (cuda_graphs)"},
        "model": {"type": "object", "description": "variant overrides (model settings)"},
        "stages": {"oneOf": [{"type": "null"}, {"type": "array", "minItems": 2, "items": STAGE_SCHEMA}],
                   "description": "training stages in order (null or absent: one stage, the top-level keys)"},
    },
}
