"""Snakemake script of rule unpack_archive: unpack a verified zip/tar archive safely.

Members with absolute paths, `..` components or links are refused (an archive must not write
outside the downloads folder). Afterwards every folder the checksums table says the archive
provides must exist, so a changed upstream layout fails here and not in `msnlan prepare`.
"""

import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from msnlan.errors import DataError
from msnlan.io_utils import write_text_atomic


def _check_member(archive: Path, name: str) -> None:
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or ".." in parts:
        raise DataError(f"{archive}: member {name!r} would be written outside the target folder")


def unpack(archive: Path, into: Path) -> int:
    """Extract every member of `archive` into `into`; return the number of members."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for name in names:
                _check_member(archive, name)
            zf.extractall(into)
        return len(names)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(archive, m.name)
                if not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: member {m.name!r} is a link or device; refused")
            tf.extractall(into, members=members)
        return len(members)
    raise DataError(f"{archive}: neither a zip nor a tar archive")


def main(snakemake) -> None:
    archive, into = Path(snakemake.input.archive), Path(snakemake.params.into)
    with open(snakemake.log[0], "w") as log:
        n = unpack(archive, into)
        print(f"unpacked {n} members of {archive} into {into}", file=log)
        absent = [p for p in snakemake.params.provides if not (into / p).is_dir()]
        if absent:
            raise DataError(f"{archive}: after unpacking, {', '.join(str(into / p) for p in absent)} "
                            "do not exist; the checksums table's 'provides' column does not match the archive")
    write_text_atomic(snakemake.output.done, "".join(f"{into / p}\n" for p in snakemake.params.provides))


if "snakemake" in globals():
    try:
        main(snakemake)  # noqa: F821 (injected by Snakemake)
    except DataError as exc:
        sys.exit(f"unpack_archive: error: {exc}")
