"""The MSNLAN network family: building blocks, the MSNLAB, the generic network, checkpoint conversion.

* `blocks`: mean shift, CA / CCA, RMAB, RCAB, residual group, upsampler
* `msnlab`: the multi-scale non-local attention block; its fast memory-bounded attention
  (`patch_attention`) and the direct reference form (`direct_patch_attention`)
* `network`: `MSNLAN` and `build_model(variant, scale, **overrides)`
* `convert`: `convert_authors_checkpoint(state_dict, scale)`
"""
from .convert import authors_key_map, convert_authors_checkpoint
from .msnlab import MSNLAB, attention_form, configure_attention, direct_patch_attention, patch_attention
from .network import MSNLAN, build_model, count_parameters

__all__ = ["MSNLAN", "MSNLAB", "attention_form", "authors_key_map", "build_model", "configure_attention",
           "convert_authors_checkpoint", "count_parameters", "direct_patch_attention", "patch_attention"]
