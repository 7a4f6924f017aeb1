"""Complexity accounting: parameters, MACs (fvcore + handles, both MSNLAB attention forms),
runtime and peak memory. See measure.py for what is traced and what is computed."""
from .formula import msnlab_macs
from .measure import count_params, count_size, lr_size_720p, measure_complexity

__all__ = ["count_params", "count_size", "lr_size_720p", "measure_complexity", "msnlab_macs"]
