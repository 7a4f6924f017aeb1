#!/usr/bin/env python3
"""The same measurement on two checkouts of this repository (before / after a change), in fresh
processes alternated A B A B ..., so that the machine's drift hits both alike.

Measurements (the paper model, random weights, seed 0):
  train    one training step (L1 + Adam), x2, batch 2 of 48x48 LR patches (median of 3 after 1)
  forward  the whole network's forward pass, x2, one 64x64 LR input under no_grad (median of 3 after 1)
  demo     one training step of the demo preset's network, x2, batch 8 of 16x16 LR patches, on one
           thread as the default workflow's training jobs run (median of 30 after 3), with the
           checkout's own optimiser where it has one (msnlan.training.engine.build_optimizer)

    git worktree add /tmp/before <commit>
    python benchmarks/compare_checkouts.py /tmp/before:fast /tmp/before:direct .:auto .:direct --what train

Each argument is CHECKOUT:ATTENTION_MODE; the checkout's own `msnlan` package is imported (it is
put first on sys.path and checked). Prints one line per run and the medians over rounds.
`--with-load` keeps a second training job busy on all cores meanwhile (benchmarks/competing_load.py),
as a second workflow job would.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from competing_load import start_load, stop_load


def child(repo: str, mode: str, what: str) -> float:
    """One measurement in this (fresh) process; returns the median seconds."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, repo)
    import time

    import numpy as np
    import torch

    import msnlan
    from msnlan.models.msnlab import configure_attention

    if not Path(msnlan.__file__).resolve().is_relative_to(Path(repo).resolve()):
        raise SystemExit(f"imported {msnlan.__file__}, not the package of {repo}")
    torch.manual_seed(0)
    times = []
    if what in ("train", "demo"):
        from msnlan.training import engine
        from msnlan.training.checkpoint import build_network
        from msnlan.training.data import PatchSampler, TrainImage, to_tensor
        from msnlan.training.presets import load_preset
        from msnlan.variants import resolve_variant

        demo = what == "demo"
        if demo:
            torch.set_num_threads(1)
        settings = load_preset("demo" if demo else "paper")["settings"]
        model = build_network(resolve_variant("msnlan", **settings["model"]), 2)
        configure_attention(model, mode)
        cpu = torch.device("cpu")
        if demo and hasattr(engine, "build_optimizer"):
            optimizer = engine.build_optimizer(model, settings, cpu)
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
        rng = np.random.default_rng(0)
        images = [TrainImage(f"s{i}", rng.integers(0, 256, (384, 384, 3), dtype=np.uint8),
                             rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)) for i in range(4)]
        patch, batch, steps, skip = (16, 8, 33, 3) if demo else (48, 2, 4, 1)
        sampler = PatchSampler(images, 2, patch, batch, seed=0)
        train_step = engine.train_step
        for _ in range(steps):
            lr, hr = sampler.sample()
            start = time.perf_counter()
            float(train_step(model, optimizer, None, to_tensor(lr, cpu), to_tensor(hr, cpu)))
            times.append(time.perf_counter() - start)
    else:
        from msnlan.models.network import build_model

        model = build_model("msnlan", 2).eval()
        configure_attention(model, mode)
        x = torch.rand(1, 3, 64, 64) * 255
        with torch.no_grad():
            for _ in range(4):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        skip = 1
    return statistics.median(times[skip:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="CHECKOUT:ATTENTION_MODE, e.g. /tmp/before:direct .:auto")
    ap.add_argument("--what", choices=("train", "forward", "demo"), default="train")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--with-load", action="store_true", help="a second training job busy on the cores meanwhile")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(child(*args.child))
        return 0
    if not args.runs:
        ap.error("give at least one CHECKOUT:ATTENTION_MODE")
    medians: dict[str, list[float]] = {r: [] for r in args.runs}
    load = start_load() if args.with_load else None
    try:
        run_rounds(args, medians, load is not None)
    finally:
        stop_load(load)
    print(f"medians over rounds (load average after {os.getloadavg()[0]:.2f}):")
    for run, values in medians.items():
        if values:
            print(f"  {run}: {statistics.median(values):.3f} s")
    return 0


def run_rounds(args, medians: dict[str, list[float]], loaded: bool) -> None:
    print(f"{args.what}: {args.rounds} rounds, fresh process per run, load average {os.getloadavg()[0]:.2f}"
          + ("; a second training job runs beside" if loaded else ""))
    for rnd in range(args.rounds):
        for run in args.runs:
            repo, _, mode = run.rpartition(":")
            out = subprocess.run([sys.executable, __file__, "--child", str(Path(repo).resolve()), mode, args.what],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"  {run}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            seconds = float(out.stdout.strip().splitlines()[-1])
            medians[run].append(seconds)
            print(f"  round {rnd + 1} {run}: {seconds:.3f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
