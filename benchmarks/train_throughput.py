#!/usr/bin/env python3
"""Training throughput: images/s and s/iteration (median after warm-up) of the real training step
(msnlan.training.engine.train_step: forward, L1, backward, Adam, lr step, plus patch sampling),
for the demo preset and for the paper model at batch 16 with 48x48 LR patches, then a
torch.profiler table of the ops that dominate one step.

    python benchmarks/train_throughput.py                      # CPU: demo + paper (paper: a few steps)
    python benchmarks/train_throughput.py --device cuda --amp bf16 --configs paper --iterations 30

Patches come from random synthetic images: the step's cost does not depend on the content.
OMP_WAIT_POLICY defaults to PASSIVE here (set it to ACTIVE to compare): spinning OpenMP threads
stall the many short ops of a training step when other processes share the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msnlan.training.checkpoint import build_network  # noqa: E402
from msnlan.training.data import PatchSampler, TrainImage, to_tensor  # noqa: E402
from msnlan.training.engine import autocast_context, train_step  # noqa: E402
from msnlan.training.presets import load_preset  # noqa: E402
from msnlan.variants import resolve_variant  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def setup(config: str, args, device: torch.device):
    """Model, optimizer, scheduler and sampler of one configuration."""
    settings = load_preset("demo" if config == "demo" else "paper")["settings"]
    if config == "paper":  # the paper model at the paper's batch and patch size
        settings.update(batch_size=16, patch_size=48)
    resolved = resolve_variant(args.variant, **settings["model"])
    torch.manual_seed(0)
    model = build_network(resolved, args.scale).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], betas=tuple(settings["betas"]),
                                 eps=settings["eps"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, settings["milestones"], settings["gamma"])
    rng = np.random.default_rng(0)
    p, s = settings["patch_size"], args.scale
    images = []
    for i in range(4):
        lr = rng.integers(0, 256, (p * 4, p * 4, 3), dtype=np.uint8)
        images.append(TrainImage(f"synthetic{i}", rng.integers(0, 256, (p * 4 * s, p * 4 * s, 3), dtype=np.uint8), lr))
    sampler = PatchSampler(images, s, p, settings["batch_size"], seed=0)
    return model, optimizer, scheduler, sampler, settings, resolved


def one_step(model, optimizer, scheduler, sampler, device, args, autocast) -> torch.Tensor:
    lr_b, hr_b = sampler.sample()
    return train_step(model, optimizer, scheduler, to_tensor(lr_b, device, args.channels_last),
                      to_tensor(hr_b, device, args.channels_last), autocast)


def measure(config: str, args, device: torch.device) -> dict:
    model, optimizer, scheduler, sampler, settings, resolved = setup(config, args, device)
    autocast = autocast_context(args.amp, device)
    iterations = args.iterations or (3 if config == "paper" and device.type == "cpu" else 20)
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cpu" else 3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + iterations):
        sync(device)
        t0 = time.perf_counter()
        loss = one_step(model, optimizer, scheduler, sampler, device, args, autocast)
        float(loss)  # waits for the step
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
        elif i == warmup - 1:  # a first figure even if a time limit cuts the timed steps short
            print(f"{config}: warm-up done, last warm-up step {dt:.4f} s", flush=True)
    median = statistics.median(times)
    result = {
        "config": config, "variant": resolved["name"], "scale": args.scale, "device": str(device),
        "amp": args.amp, "channels_last": args.channels_last, "batch_size": settings["batch_size"],
        "lr_patch": settings["patch_size"], "model": {k: resolved["model"][k] for k in ("n_feats", "n_resgroups", "n_resblocks")},
        "parameters": sum(p.numel() for p in model.parameters()), "warmup": warmup, "iterations": iterations,
        "s_per_iteration_median": median, "s_per_iteration_min": min(times), "s_per_iteration_max": max(times),
        "images_per_s": settings["batch_size"] / median, "torch_threads": torch.get_num_threads(),
        "peak_memory_mb": (torch.cuda.max_memory_allocated(device) / 2 ** 20) if device.type == "cuda" else None,
    }
    print(f"{config:6s} {resolved['name']} x{args.scale} on {device} (amp {args.amp}): batch {settings['batch_size']} x "
          f"{settings['patch_size']}x{settings['patch_size']} LR, {result['parameters'] / 1e6:.3f} M params: "
          f"{median:.4f} s/iteration (median of {iterations} after {warmup} warm-up; min {min(times):.4f}, "
          f"max {max(times):.4f}) = {result['images_per_s']:.2f} images/s"
          + (f", peak {result['peak_memory_mb']:.0f} MiB" if result["peak_memory_mb"] else ""), flush=True)
    if args.profile_steps:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(args.profile_steps):
                float(one_step(model, optimizer, scheduler, sampler, device, args, autocast))
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort, row_limit=args.top)
        print(f"top {args.top} ops of {args.profile_steps} {config} step(s), by {sort}:\n{table}", flush=True)
        result["profile_table"] = table
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="demo,paper", help="comma list of demo, paper (default both)")
    ap.add_argument("--variant", default="msnlan")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--amp", choices=("none", "bf16"), default="none")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--iterations", type=int, help="timed iterations (default: 3 for paper on CPU, else 20)")
    ap.add_argument("--warmup", type=int, help="untimed iterations first (default 1 on CPU, 3 on CUDA)")
    ap.add_argument("--profile-steps", type=int, default=1, help="steps under torch.profiler (0: none)")
    ap.add_argument("--top", type=int, default=15, help="rows of the profiler table")
    ap.add_argument("--deterministic", action="store_true",
                    help="deterministic kernels (as the demo preset); default: cudnn.benchmark on CUDA")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    # as the training engine does for presets with deterministic: false (the paper preset)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not args.deterministic
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""), flush=True)
    results = [measure(c.strip(), args, device) for c in args.configs.split(",") if c.strip()]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
