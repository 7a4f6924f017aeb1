"""MSNLAB speed and memory: our memory-bounded attention against the direct form.

For a 1 x C x H x W input (C = 64, the paper's MSNLAB with patch sizes 3, 5, 7, inference
under no_grad) and each H = W, prints the median forward time and the peak extra memory of
our form (`patch_attention`) and of the direct form (`direct_patch_attention`, unfold /
softmax / fold, holding the L x N matrix), skipping the direct form where it would need more
than --max-direct-gb. Each configuration runs in a fresh subprocess.

  --scales 1 10 100   inputs drawn N(0, s^2): large activations (a randomly initialised network
                      feeds its MSNLAB inputs of mean |x| near 31) must not slow the block down
  --train             forward + backward of the block on a batch (--batch), as in training
  --network           the whole paper network (x2, random weights from build_model, LR input of
                      H x W uniform on 0..255), forward under no_grad: the realistic activations

Peak memory: resident-set high-water mark of that subprocess (Linux /proc/self/status VmHWM,
reset through /proc/self/clear_refs where the kernel allows) over all its forward passes, minus
its resident set just before the first one (module, input and torch already loaded).
Python-level tracers (tracemalloc) do not see torch's allocations; this does.

    .venv/bin/python benchmarks/msnlab.py [--sizes 32 48 64 96 128 256] [--runs N] [--max-direct-gb 8]

Targets (2-core CPU, default threads): peak extra memory at 256 x 256 under 2 GB; at 64 x 64
at least 3x faster than the direct form; never slower at any size. The machine may be shared:
the load average is printed with the results. The workers run with OMP_WAIT_POLICY=PASSIVE by
default: with other processes on the cores, libgomp's spinning threads otherwise stall each of
the fast form's many parallel operations (the direct form has few, long ones), which measures
the machine's load rather than the algorithms.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCH_SIZES = (3, 5, 7)


def worker(impl: str, size: int, channels: int, runs: int, warmup: int, check: bool,
           threads: int | None = None, scale: float = 1.0, train: bool = False, batch: int = 1,
           network: bool = False) -> dict:
    """One configuration in this (fresh) process: times, peak extra memory, optional error check."""
    sys.path.insert(0, str(REPO))
    import contextlib

    import torch

    if threads:
        torch.set_num_threads(threads)

    from msnlan.memory import current_rss_kib, peak_rss_kib, reset_peak_rss
    from msnlan.models.msnlab import MSNLAB, configure_attention

    torch.manual_seed(0)
    if network:
        from msnlan.models.network import build_model

        block = build_model("msnlan", 2).eval()
        x = torch.rand(batch, 3, size, size) * 255
    else:
        block = MSNLAB(channels, PATCH_SIZES).eval()
        x = torch.randn(batch, channels, size, size) * scale
    configure_attention(block, impl)
    if train:
        x.requires_grad_()

    def step():
        out = block(x)
        if train:
            out.sum().backward()
        return out

    times = []
    with contextlib.nullcontext() if train else torch.no_grad():
        # baseline before the first forward: the allocator keeps freed buffers resident, so a
        # baseline taken after the warm-up would hide the working memory
        reset = reset_peak_rss()
        base_kb = current_rss_kib()
        for _ in range(warmup):
            step()
        for _ in range(runs):
            start = time.perf_counter()
            out = step()
            times.append(time.perf_counter() - start)
        peak_kb = peak_rss_kib()
        result = {"impl": impl, "size": size, "runs": runs, "median_s": statistics.median(times),
                  "min_s": min(times), "peak_extra_mb": (peak_kb - base_kb) / 1024,
                  "hwm_reset": reset, "threads": torch.get_num_threads()}
        result.update(scale=scale, train=train, batch=batch, network=network)
        if check:  # after the measurement: the other form's output, for the error
            with torch.no_grad():
                configure_attention(block, "fast" if impl == "direct" else "direct")
                other, out = block(x), out.detach()
            # compare the MSNLAB's added part, not x itself (the whole output for the network)
            ref = out.double() - (0 if network else x.detach().double())
            result["max_rel_err"] = ((other.double() - out.double()).abs().max() / ref.abs().max()).item()
    return result


def _run_worker(impl: str, size: int, args, scale: float = 1.0) -> dict:
    runs = args.runs or (5 if size <= 64 else 3 if size <= 96 else 2)
    warmup = 1 if size <= 128 else 0  # a 256 x 256 run takes tens of seconds: no warm-up
    cmd = [sys.executable, __file__, "--worker", impl, "--size", str(size), "--runs", str(runs),
           "--warmup", str(warmup), "--channels", str(args.channels), "--scale", str(scale),
           "--batch", str(args.batch)] + (["--train"] if args.train else []) + (["--network"] if args.network else [])
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if impl == "direct" and size <= args.check_up_to:
        cmd.append("--check")
    env = dict(os.environ)
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"impl": impl, "size": size, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 48, 64, 96, 128, 256])
    parser.add_argument("--runs", type=int, default=None, help="timed runs (default: 5 up to 64, 3 up to 96, else 2)")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--max-direct-gb", type=float, default=8.0,
                        help="skip the direct form where its estimated working memory exceeds this")
    parser.add_argument("--check-up-to", type=int, default=64,
                        help="compare the two forms' outputs up to this size")
    parser.add_argument("--json", default=None, help="also write the records to this file")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active", "inherit"), default="passive",
                        help="OMP_WAIT_POLICY of the workers (default passive: on a busy 2-core machine "
                             "spinning OpenMP threads stall every parallel op, measured 1-2 s instead of "
                             "45 ms for the 32 x 32 block; inherit: leave the environment as it is)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in the workers (default: torch's default)")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0],
                        help="input scales: inputs drawn N(0, s^2) (default 1; try 1 10 100)")
    parser.add_argument("--train", action="store_true", help="forward + backward (training) instead of inference")
    parser.add_argument("--batch", type=int, default=1, help="images per forward (default 1)")
    parser.add_argument("--network", action="store_true",
                        help="the whole paper network (x2, random weights) instead of the block")
    parser.add_argument("--worker", choices=("fast", "direct"), help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.channels, args.runs, args.warmup, args.check,
                                args.threads, args.scale, args.train, args.batch, args.network)))
        return 0

    sys.path.insert(0, str(REPO))
    import torch

    from msnlan.models.msnlab import direct_attention_bytes

    what = ("the paper network (x2, random weights), B x 3 x H x W LR input" if args.network
            else f"MSNLAB (C={args.channels}, patch sizes {PATCH_SIZES}), B x C x H x W input")
    print(f"{what}, B = {args.batch}, " + ("training (forward + backward)" if args.train else "inference (no_grad)"))
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")
    policy = (os.environ.get("OMP_WAIT_POLICY", "unset") if args.omp_wait_policy == "inherit"
              else args.omp_wait_policy.upper())
    print(f"OMP_WAIT_POLICY={policy} in the worker processes")
    print("time: median of timed runs after one warm-up (none above 128); peak memory: RSS high-water "
          "(VmHWM) of a fresh subprocess over its runs minus its RSS before the first run")
    header = (f"{'H=W':>5}{'scale':>7}{'ours ms':>12}{'ours MB':>10}{'direct ms':>12}{'direct MB':>11}"
              f"{'speedup':>9}{'rel err':>10}")
    print(header)
    print("-" * len(header))
    records = []
    for size in args.sizes:
        for scale in args.scales:
            fast = _run_worker("fast", size, args, scale)
            direct_gb = max(direct_attention_bytes(size, size, args.channels, k, batch=args.batch)
                            for k in PATCH_SIZES) / 2 ** 30
            direct = (_run_worker("direct", size, args, scale) if direct_gb <= args.max_direct_gb
                      else {"impl": "direct", "size": size, "scale": scale, "skipped": f"needs ~{direct_gb:.0f} GB"})
            fast.setdefault("scale", scale)
            direct.setdefault("scale", scale)
            records += [fast, direct]

            def cell(rec, key, factor=1.0, fmt="{:.0f}"):
                return fmt.format(rec[key] * factor) if key in rec else "-"

            speed = (f"{direct['median_s'] / fast['median_s']:.1f}x"
                     if "median_s" in direct and "median_s" in fast else "-")
            err = f"{direct['max_rel_err']:.1e}" if "max_rel_err" in direct else "-"
            note = direct.get("skipped") or direct.get("error") or fast.get("error") or ""
            print(f"{size:>5}{scale:>7g}{cell(fast, 'median_s', 1e3):>12}{cell(fast, 'peak_extra_mb'):>10}"
                  f"{cell(direct, 'median_s', 1e3):>12}{cell(direct, 'peak_extra_mb'):>11}{speed:>9}{err:>10}"
                  + (f"  direct: {note}" if note else ""), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    by = {(r["impl"], r["size"], r["scale"]): r for r in records}
    first = args.scales[0]
    print("\ntargets:")
    if ("fast", 256, first) in by and "peak_extra_mb" in by["fast", 256, first]:
        mb = by["fast", 256, first]["peak_extra_mb"]
        print(f"  peak extra memory at 256x256: {mb:.0f} MB (target < 2048 MB): {'met' if mb < 2048 else 'NOT met'}")
    if "median_s" in by.get(("direct", 64, first), {}) and "median_s" in by.get(("fast", 64, first), {}):
        ratio = by["direct", 64, first]["median_s"] / by["fast", 64, first]["median_s"]
        print(f"  speedup at 64x64: {ratio:.1f}x (target >= 3x): {'met' if ratio >= 3 else 'NOT met'}")
    compared = [(s, r["median_s"] / by["fast", s, sc]["median_s"]) for (impl, s, sc), r in by.items()
                if impl == "direct" and "median_s" in r and "median_s" in by.get(("fast", s, sc), {})]
    if compared:
        slower = sorted({s for s, r in compared if r < 1})
        print(f"  never slower than direct: " + ("met" if not slower else f"NOT met at {slower}"))
    for size in args.sizes:  # speed independent of the activations' scale
        base = by.get(("fast", size, first), {}).get("median_s")
        for scale in args.scales[1:]:
            t = by.get(("fast", size, scale), {}).get("median_s")
            if base and t:
                print(f"  {size}x{size}: time at input scale {scale:g} / scale {first:g}: {t / base:.2f} "
                      f"(target <= 1.5): {'met' if t / base <= 1.5 else 'NOT met'}")
    if args.json:
        from msnlan.io_utils import write_json_atomic

        write_json_atomic(args.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
