"""MSNLAN reference suite: the network family, the evaluation protocol, training and reports.

The public names below are imported lazily so that light uses (variant files, metrics on
numpy arrays) do not pay for importing torch.
"""
from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "build_model": "msnlan.models.network",
    "MSNLAN": "msnlan.models.network",
    "convert_authors_checkpoint": "msnlan.models.convert",
    "list_variants": "msnlan.variants",
    "resolve_variant": "msnlan.variants",
    "imresize": "msnlan.data.imresize",
    "evaluate_pair": "msnlan.metrics",
    "upscale": "msnlan.inference",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'msnlan' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__():
    return __all__
