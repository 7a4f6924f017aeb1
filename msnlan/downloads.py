"""Fetching a public archive of the checksums table: resumable, checked by size and sha256.

The bytes go to `<archive>.part`; only a file of the recorded size and sum is renamed to the
archive, so a partial download is never taken as complete. An existing `.part` is continued with
an HTTP range request, or replaced where the server ignores the range (or it is too long). A server
announcing another size than the recorded one is refused before anything is downloaded.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Callable

from .errors import DataError
from .io_utils import writing

CHUNK = 1 << 20


def part_path(archive: str | os.PathLike) -> Path:
    return Path(archive).with_name(Path(archive).name + ".part")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, part: Path, size: int | None, log: Callable[[str], None]) -> None:
    """Bring `part` to the whole file: continue it where the server allows, else start over."""
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset > size:
        log(f"{part} is longer ({offset} bytes) than the recorded {size}: downloading again")
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        log(f"{part} already holds {size} bytes: checking it")
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=60) as resp:
        status = getattr(resp, "status", None)
        if offset and status != 206:
            log(f"the server does not continue partial downloads (status {status}): downloading {url} again")
            offset = 0
        elif offset:
            log(f"continuing {part} from byte {offset}")
        length = resp.headers.get("Content-Length")
        announced = offset + int(length) if length is not None else None
        if size is not None and announced is not None and announced != size:
            raise DataError(f"{url}: the server announces {announced} bytes, but the checksums table records "
                            f"{size}: the file changed upstream or the URL is wrong; nothing was downloaded")
        done = offset
        with writing(part), open(part, "ab" if offset else "wb") as fh:
            while chunk := resp.read(CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if done % (256 * CHUNK) < len(chunk):
                    log(f"{done / 2**20:.0f} / {(announced or 0) / 2**20:.0f} MiB")


def fetch_archive(url: str, archive: str | os.PathLike, *, size: int | None, sha256: str | None,
                  allow_unverified: bool = False, table: str = "the checksums table",
                  log: Callable[[str], None] = print) -> str:
    """Download `url` to `archive` through `<archive>.part`; return the archive's sha256.

    DataError (naming the file) when the size or sum differs from the recorded ones (a truncated
    part is kept to be continued; a wrong one is deleted), or when no sum is recorded and
    `allow_unverified` is false.
    """
    archive = Path(archive)
    part = part_path(archive)
    with writing(archive.parent):
        archive.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {url} -> {archive}")
    _download(url, part, size, log)
    got = part.stat().st_size
    if size is not None and got != size:
        if got > size:
            part.unlink()
            raise DataError(f"{archive}: {got} bytes arrived, more than the recorded {size}; deleted")
        raise DataError(f"{archive}: the download stopped at {got} of {size} bytes; run again to continue it "
                        f"(kept as {part})")
    actual = file_sha256(part)
    log(f"sha256 {actual} ({got} bytes)")
    if sha256 is not None and actual != sha256:
        part.unlink()
        raise DataError(f"{archive}: sha256 {actual} differs from the recorded {sha256} ({table}); the download "
                        "is corrupt or the file changed upstream: it was deleted")
    if sha256 is None:
        if not allow_unverified:
            part.unlink()
            raise DataError(f"{archive}: no sha256 recorded in {table}, and allow_unverified_downloads is "
                            "false: the archive was deleted")
        log(f"WARNING: {archive.name} is unverified (allow_unverified_downloads); record its sum in {table}: "
            f"{actual}")
    with writing(archive):
        os.replace(part, archive)
    return actual
