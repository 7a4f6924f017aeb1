"""Parameters and MACs of every registered variant at x2/x3/x4 (counting only, no runtime).

Prints one row per variant and scale: parameters (M), MACs (G) at the LR input whose output is
1280x720 -- as executed and in the direct attention form -- and at a 48x48 LR input, how each
was obtained, and the seconds it took; then the check against the paper model's published
parameter counts (9,581,043 / 9,765,683 / 9,728,755 trainable at x2 / x3 / x4).

    .venv/bin/python benchmarks/complexity_table.py [--variants msnlan ...] [--scales 2 3 4] [--json FILE]
"""
from __future__ import annotations

import argparse
import sys
import time

#: trainable parameters of the authors' paper model (Wu et al., Signal Processing 2023, whose
#: x2/x3/x4 models differ only in the upsampler); with the 24 fixed mean-shift values below
PAPER_TRAINABLE = {2: 9_581_043, 3: 9_765_683, 4: 9_728_755}
PAPER_WITH_FIXED = {2: 9_581_067, 3: 9_765_707, 4: 9_728_779}


def main(argv: list[str] | None = None) -> int:
    from msnlan.complexity import measure_complexity
    from msnlan.variants import list_variants

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=None, help="default: every registered variant")
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument("--json", default=None, help="also write every record to this JSON file")
    args = parser.parse_args(argv)
    variants = args.variants or list_variants()

    header = (f"{'variant':<16}{'scale':>5}{'params M':>11}{'trainable':>12}{'LR 720p':>10}"
              f"{'GMAC 720p':>12}{'GMAC direct':>13}{'GMAC 48':>10}{'GMAC48 dir':>11}{'seconds':>9}  720p MSNLAB method")
    print(header)
    print("-" * len(header))
    records, checks = [], []
    started = time.perf_counter()
    for variant in variants:
        for scale in args.scales:
            t0 = time.perf_counter()
            rec = measure_complexity(variant, scale, runtime=False)
            seconds = time.perf_counter() - t0
            records.append(rec)
            m720, m48 = rec["macs"]["720p"], rec["macs"]["48x48"]
            lr = f"{m720['lr_size'][1]}x{m720['lr_size'][0]}"
            method = "traced" if m720["traced_attention"] else ("formula" if m720["msnlab"] else "no MSNLAB")
            checks_720 = [c.get("status", "")[:7] for row in m720["msnlab"].values()
                          for c in (row.get("flop_counter_check_fast", {}), row.get("flop_counter_check_direct", {}))]
            if checks_720:
                method += " (FlopCounterMode meta check: " + "/".join(checks_720) + ")"
            print(f"{variant:<16}{scale:>5}{rec['params']['total'] / 1e6:>11.3f}{rec['params']['trainable']:>12,}"
                  f"{lr:>10}{m720['total'] / 1e9:>12.1f}{m720['direct_form']['total'] / 1e9:>13.1f}"
                  f"{m48['total'] / 1e9:>10.2f}{m48['direct_form']['total'] / 1e9:>11.2f}{seconds:>9.1f}  {method}",
                  flush=True)
            if variant == "msnlan" and scale in PAPER_TRAINABLE:
                ok = (rec["params"]["trainable"] == PAPER_TRAINABLE[scale]
                      and rec["params"]["total"] == PAPER_WITH_FIXED[scale])
                checks.append((scale, rec["params"]["trainable"], rec["params"]["total"], ok))
    print(f"\ntotal counting time: {time.perf_counter() - started:.1f} s "
          f"(fvcore {records[0]['tool']['fvcore'] if records else '?'}, torch {records[0]['tool']['torch'] if records else '?'})")
    print("MACs: one multiply-accumulate = 1 (fvcore's convention); '+' (x8 self-ensemble) rows cost 8x.")
    for scale, trainable, total, ok in checks:
        print(f"paper check x{scale}: trainable {trainable:,} (published {PAPER_TRAINABLE[scale]:,}), "
              f"with fixed {total:,} (published {PAPER_WITH_FIXED[scale]:,}): {'OK' if ok else 'MISMATCH'}")
    if args.json:
        from msnlan.io_utils import write_json_atomic

        write_json_atomic(args.json, records)
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
