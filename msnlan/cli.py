"""`msnlan` command line: one subcommand per module of msnlan.commands.

Each module in msnlan/commands defines `register(subparsers)`, adding its parser and setting
`func` (called with the parsed args, returning an exit code). Adding a command is adding a module.
"""
from __future__ import annotations

import argparse
import os
import pkgutil
import sys
from importlib import import_module

# Before torch loads: spinning OpenMP threads stall the MSNLAB's many short operations whenever
# other jobs share the cores (Snakemake runs several); measured up to 10x slower. Users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import __version__
from .errors import MsnlanError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msnlan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"msnlan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MsnlanError as exc:
        print(f"msnlan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file operation no writer wrapped: still one line, never a traceback
        print(f"msnlan {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2


def os_error_message(exc: OSError) -> str:
    """'cannot write <path>: <reason>' for errors only writing causes, else '<path>: <reason>'."""
    from .io_utils import WRITE_ERRNOS, cannot_write

    path = exc.filename if exc.filename is not None else "(unnamed file)"
    if exc.errno in WRITE_ERRNOS:
        return str(cannot_write(path, exc))
    return f"{path}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
