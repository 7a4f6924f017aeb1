"""Snakemake script of rule download_archive: fetch a public archive and check its sha256.

An archive is accepted only if its sum equals the one recorded in the checksums table, or, where
no sum is recorded, if the config sets allow_unverified_downloads (the computed sum is then
written beside the archive and logged, for the user to record in the table).
"""

import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from msnlan.errors import DataError
from msnlan.io_utils import atomic_path, write_text_atomic

CHUNK = 1 << 20


def fetch(url: str, dest: Path, log) -> str:
    """Stream `url` to `dest` atomically; return the sha256 of what was written."""
    digest = hashlib.sha256()
    with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
        total = int(resp.headers.get("Content-Length") or 0)
        done = 0
        while chunk := resp.read(CHUNK):
            fh.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if total and done % (256 * CHUNK) < CHUNK:
                print(f"{done / 2**20:.0f} / {total / 2**20:.0f} MiB", file=log, flush=True)
    return digest.hexdigest()


def main(snakemake) -> None:
    archive = Path(snakemake.output.archive)
    url = snakemake.params.url
    expected = snakemake.params.expected
    with open(snakemake.log[0], "w") as log:
        print(f"downloading {url} -> {archive}", file=log, flush=True)
        actual = fetch(url, archive, log)
        print(f"sha256 {actual}", file=log, flush=True)
        if expected != "unknown" and actual != expected:
            archive.unlink(missing_ok=True)
            raise DataError(f"{archive}: sha256 {actual} differs from the recorded {expected} "
                            f"({snakemake.params.checksums}); the download is corrupt or the file "
                            f"changed upstream: it was deleted")
        if expected == "unknown":
            if not snakemake.params.allow_unverified:
                archive.unlink(missing_ok=True)
                raise DataError(f"{archive}: no sha256 recorded in {snakemake.params.checksums}, and "
                                "allow_unverified_downloads is false: the archive was deleted")
            print(f"WARNING: {archive.name} is unverified (allow_unverified_downloads); record its "
                  f"sum in {snakemake.params.checksums}: {actual}", file=log, flush=True)
        write_text_atomic(snakemake.output.sha256, f"{actual}  {archive.name}\n")


if "snakemake" in globals():
    try:
        main(snakemake)  # noqa: F821 (injected by Snakemake)
    except DataError as exc:
        sys.exit(f"download_archive: error: {exc}")
