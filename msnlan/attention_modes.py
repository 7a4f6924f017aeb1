"""The MSNLAB attention forms and modes (no torch import, so that the CLI and schemas can name them).

* "fast": the band-sum form (msnlan.models.attention.patch_attention), bounded memory;
* "direct": the textbook unfold / softmax / fold form, B x L x N scores;
* "auto": the form chosen for the device type the model runs on, by measurement
  (msnlan.models.attention.resolve_attention_form: today the fast form on the CPU and on CUDA).
"""
ATTENTION_FORMS = ("fast", "direct")
ATTENTION_MODES = ("auto",) + ATTENTION_FORMS
