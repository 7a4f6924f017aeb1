"""Subcommands of the `msnlan` CLI: each module defines register(subparsers)."""
