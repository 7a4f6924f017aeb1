"""Snakemake script of rule record_config: write the workflow config in force as YAML."""

import json

import yaml

from msnlan.io_utils import write_text_atomic


def main(snakemake) -> None:
    cfg = json.loads(snakemake.params.config)
    header = (f"# workflow config in force (defaults filled in); from: {snakemake.params.sources}\n")
    write_text_atomic(snakemake.output.config, header + yaml.safe_dump(cfg, sort_keys=False))
    with open(snakemake.log[0], "w") as log:
        print(f"wrote {snakemake.output.config}", file=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake)
