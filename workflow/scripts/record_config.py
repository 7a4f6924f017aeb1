"""Snakemake script of rule record_config: write the workflow config in force (msnlan.config)."""

import json

from msnlan.config import write_config


def main(snakemake) -> None:
    write_config(snakemake.output.config, json.loads(snakemake.params.config), snakemake.params.sources)
    with open(snakemake.log[0], "w") as log:
        print(f"wrote {snakemake.output.config}", file=log)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake)
