"""The results folder: its layout and every file format in it, each with a writer and a reader.

- `layout`: where everything lives (path functions shared by the workflow, the CLI and the report)
- `files`: checked JSON/YAML/CSV reading (errors name the file and the key, line or column)
- `summary`: the one per-dataset summary, with its rule for infinite PSNR
- `evaluations`: eval/<method>/x<s>/<benchmark>.csv and .protocol.json
- `runs`: runs/<variant>/x<s>/: config.yaml, environment.json, log.csv, final.pt metadata
- `complexity`: complexity/<variant>/x<s>.json
- `collected`: tables/summary.csv and tables/per_image.csv

Readers read the keys the writers write; nothing is looked up by guessing names.
"""
from . import layout
from .summary import mean_psnr, summarize

__all__ = ["layout", "mean_psnr", "summarize"]
