"""`msnlan collect`: gather a results folder's evaluations into tables/summary.csv and tables/per_image.csv."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("collect", help="write tables/summary.csv and tables/per_image.csv of a results folder")
    p.add_argument("--results", required=True, metavar="DIR",
                   help="results folder (eval/, runs/, complexity/ as in docs/architecture.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.collect import collect, write_collected

    collected = collect(args.results)
    summary_path, per_image_path = write_collected(collected, args.results)
    for w in collected.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {summary_path} ({len(collected.summary)} rows) and {per_image_path} "
          f"({len(collected.per_image)} rows)")
    return 0
