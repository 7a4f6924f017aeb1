"""`msnlan report`: the HTML report of a results folder, with LaTeX/Markdown/CSV tables beside it."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("report", help="render the HTML report (tables, ablation CIs, complexity, crops)")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder")
    p.add_argument("--config", metavar="CONFIG.yaml",
                   help="workflow config: benchmark/scale/variant order and the optional report: section")
    p.add_argument("--out", required=True, metavar="HTML", help="output file, e.g. DIR/report/index.html; "
                   "tables/ and figures/ are written beside it")
    p.add_argument("--published", metavar="CSV",
                   help="published results (method,scale,dataset,psnr,ssim,source); default: the cited copy "
                        "shipped with msnlan")
    p.add_argument("--visual-images", nargs="+", metavar="NAME",
                   help="images for the visual comparison, as Benchmark/image or image")
    p.add_argument("--compete", nargs="+", metavar="ROW",
                   help="rows ranked for bold/underline: all (default), measured, published, or method names")
    p.add_argument("--no-visuals", action="store_true", help="skip the visual comparison")
    p.add_argument("--latex-fit", choices=("shrink", "resize", "natural"),
                   help="tables/*.tex wider than the line: shrink them to it (default), always resize to the "
                        "line width, or leave them (overrides the config's report.latex.fit)")
    p.add_argument("--latex-split-by-scale", action="store_true",
                   help="one LaTeX float per scale (report.latex.split_by_scale)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checks import check_output_path
    from ..report.render import build_report

    check_output_path(args.out, {"--config": args.config, "--published": args.published}, "--out")

    out = build_report(args.results, args.config, args.out, published=args.published,
                       visual_images=args.visual_images, compete=args.compete, no_visuals=args.no_visuals,
                       latex_fit=args.latex_fit, latex_split_by_scale=args.latex_split_by_scale or None)
    for w in out.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {out.html} and {len(out.tables)} table files, {len(out.figures)} figures beside it")
    return 0
