"""`msnlan complexity`: parameters, MACs (720p output and 48x48 LR), runtime and peak memory -> one JSON
per scale."""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..checks import check_output_path, check_paired, check_scale


def register(sub) -> None:
    p = sub.add_parser(
        "complexity",
        help="parameters, MACs (fvcore + attention handles; as executed and direct form), runtime, memory",
        description="Count parameters and MACs of one variant at each scale given (LR input whose output is "
                    "1280x720, and a 48x48 LR input), measure one forward pass, write one JSON file per "
                    "scale. Several scales in one process pay the start-up costs (torch, the FLOP "
                    "counter) once.")
    p.add_argument("--variant", required=True, help="registered variant name or variant YAML path")
    p.add_argument("--scale", required=True, type=int, nargs="+", help="upscaling factor(s) (2, 3 or 4)")
    p.add_argument("--out", required=True, nargs="+",
                   help="output JSON file per --scale, in the same order (each written atomically)")
    p.add_argument("--device", default="auto", help="runtime device: auto, cpu, cuda or cuda:N (counting runs on CPU)")
    p.add_argument("--runs", type=int, default=3, help="timed forward passes (median reported); default 3")
    p.add_argument("--warmup", type=int, default=1, help="untimed forward passes before timing; default 1")
    p.add_argument("--runtime-size", nargs="+", metavar="HxW",
                   help="LR input for runtime/memory: HxW (e.g. 64x64) or H W; default the 720p-output size")
    p.add_argument("--no-runtime", action="store_true", help="count only; do not time a forward pass")
    p.add_argument("--runtime-timeout", type=float, default=None,
                   help="give up the runtime measurement after this many seconds")
    p.set_defaults(func=run)


def _runtime_size(values: list[str] | None):
    from ..complexity.measure import parse_size

    if not values:
        return None
    if len(values) == 1:
        return parse_size(values[0])
    if len(values) == 2:
        return parse_size("x".join(values))
    raise ConfigError(f"--runtime-size {' '.join(values)!r}: give HxW or H W")


def run(args: argparse.Namespace) -> int:
    from ..complexity import measure_complexity
    from ..io_utils import write_json_atomic

    if args.runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {args.runs}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be at least 0, got {args.warmup}")
    check_paired("--scale", args.scale, {"--out": args.out})
    for scale, out in zip(args.scale, args.out):  # every argument is checked before any work
        check_scale(scale, what="--scale")  # the scales build_model accepts
        check_output_path(out, {"variant file": args.variant}, "--out")
    runtime_size = _runtime_size(args.runtime_size)
    for scale, out in zip(args.scale, args.out):
        result = measure_complexity(args.variant, scale, device=args.device, runs=args.runs,
                                    warmup=args.warmup, runtime=not args.no_runtime, runtime_size=runtime_size,
                                    runtime_timeout=args.runtime_timeout)
        write_json_atomic(out, result)
        print(_summary_line(result, scale))
        print(f"wrote {out}", flush=True)
    return 0


def _summary_line(result: dict, scale: int) -> str:
    m720, m48 = result["macs"]["720p"], result["macs"]["48x48"]
    line = (f"{result['variant']} x{scale}: {result['params']['total'] / 1e6:.3f} M params; "
            f"720p (LR {m720['lr_size'][1]}x{m720['lr_size'][0]}): {m720['total'] / 1e9:.2f} GMAC as executed, "
            f"{m720['direct_form']['total'] / 1e9:.2f} GMAC direct form; 48x48: {m48['total'] / 1e9:.3f} GMAC")
    rt = result["runtime"]
    if not rt.get("skipped"):
        line += (f"; {rt['median_ms']:.1f} ms median of {rt['runs']} at LR {rt['lr_size'][1]}x{rt['lr_size'][0]}, "
                 f"peak {rt['peak_memory_mb']:.0f} MB ({rt['device']})")
    return line
