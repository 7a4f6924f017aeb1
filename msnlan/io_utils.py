"""Writing files so that a crash never leaves a half-written output: temp file, then rename.

Every failure to write (read-only folder, full disk, a file where a folder should be) becomes one
WriteError worded by `cannot_write`: "cannot write <path>: <reason>", which the CLI reports with
exit status 2 instead of a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import WriteError

#: errno values that can only come from writing (a read never fails this way)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})


def cannot_write(path: str | os.PathLike, exc: BaseException) -> WriteError:
    """The one wording of a failed write: 'cannot write <path>: <reason>'."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return WriteError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised inside the block into WriteError naming `path`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise cannot_write(path, exc) from None


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create `folder` (with parents) and prove a file can be created in it; WriteError otherwise.

    Permission bits are not enough (root ignores them, read-only mounts do not show in them), so
    a temporary file is created and removed.
    """
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    Any OSError (also one raised by the caller while writing the temporary file) is reported as
    WriteError naming `path`.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(path):
            # mkstemp creates the file 0600; give it the mode a plain open() would (0666 minus umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
            yield tmp_path
            os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
