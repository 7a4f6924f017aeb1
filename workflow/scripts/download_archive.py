"""Snakemake script of rule download_archive: fetch a public archive (msnlan.downloads).

An archive is accepted only if its size and sha256 equal those recorded in the checksums table, or,
where no sum is recorded, if the config sets allow_unverified_downloads (the computed sum is then
written beside the archive and logged, for the user to record in the table). An interrupted
download is continued by the next attempt (<archive>.part).
"""

import sys

from msnlan.downloads import fetch_archive
from msnlan.errors import MsnlanError
from msnlan.io_utils import write_text_atomic


def main(snakemake) -> None:
    expected = snakemake.params.expected
    size = snakemake.params.size
    with open(snakemake.log[0], "a") as log:
        actual = fetch_archive(snakemake.params.url, snakemake.output.archive,
                               size=None if size == "unknown" else int(size),
                               sha256=None if expected == "unknown" else expected,
                               allow_unverified=snakemake.params.allow_unverified,
                               table=snakemake.params.checksums,
                               log=lambda msg: print(msg, file=log, flush=True))
    write_text_atomic(snakemake.output.sha256, f"{actual}  {snakemake.output.archive.split('/')[-1]}\n")


if "snakemake" in globals():
    try:
        main(snakemake)  # noqa: F821 (injected by Snakemake)
    except MsnlanError as exc:
        sys.exit(f"download_archive: error: {exc}")
