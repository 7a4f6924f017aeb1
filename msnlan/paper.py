"""The paper model's settings, written once (Wu et al., "Multi-scale non-local attention network
for image super-resolution", Signal Processing 2023).

8 residual groups of 9 RMABs, the multi-scale non-local attention block (patch sizes 3, 5, 7)
between RG4 and RG5, dense skip connections around it. The built-in variant base "paper" is this
model; the standard variant "msnlan" names it as its base, and the authors' checkpoints have
this layout.
"""
from __future__ import annotations

PAPER_DESCRIPTION = "MSNLAN as published (MSNLAB k=3/5/7, dense skips, RMAB)"

PAPER_MODEL: dict = {
    "n_feats": 64,
    "n_resgroups": 8,
    "n_resblocks": 9,
    "block": "rmab",
    "msnlab": True,
    "patch_sizes": [3, 5, 7],
    "dense_skips": True,
    "softmax_scale": 10,
    "res_scale": 0.1,
    "reduction": 16,
    "rgb_mean": [0.4025, 0.4482, 0.4264],
    "rgb_range": 255,
}
