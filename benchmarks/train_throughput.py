#!/usr/bin/env python3
"""Training throughput per attention form: images/s, s/iteration (medians) and the MSNLAB's share
of the real training step (msnlan.training.engine.train_step: forward, L1, backward, Adam, lr step,
plus patch sampling), for the demo network and the paper model (x2, 48x48 LR patches; batch 2 by
default, `--batches 2,16` adds the paper's batch, eight times the images per step).

The forms are measured interleaved in one process (A B A B ...: one model per form, the same
initial weights and batches), so a ratio holds while the machine's speed drifts. The MSNLAB's
share is the time between its forward pre- and post-hooks plus between its backward pre- and
post-hooks, over the step's wall time.

    python benchmarks/train_throughput.py                              # CPU: demo + paper b2 (auto vs direct)
    python benchmarks/train_throughput.py --configs paper --batches 2 --with-load   # a second training job busy beside it
    python benchmarks/train_throughput.py --device cuda --amp bf16 --configs paper --batches 16 --modes auto,fast,direct
    python benchmarks/train_throughput.py --configs paper --batches 16 --patch-size 64 --modes auto --iterations 1
                                                                       # the paper's stage 2: peak memory of a step
    python benchmarks/train_throughput.py --device cuda --configs paper --batches 16 --patch-size 64 \
        --modes auto,auto@chunk=2^28@saved=2^32,direct                 # the fast form with larger budgets

A mode may carry the fast form's budgets (elements, N or 2^K): `@chunk=` bounds each working buffer
(fewer, larger tiles), `@saved=` what autograd keeps for the backward pass instead of recomputing
it (msnlan.models.msnlab.configure_attention; defaults DEFAULT_CHUNK_ELEMENTS, MAX_SAVED_ELEMENTS).
`@graphs` (CUDA only) replays the forward and backward passes as CUDA graphs, as the preset key
`cuda_graphs` does in training (msnlan.training.cuda_graphs; captured before the first step, not
timed). The MSNLAB's share is not measured there: the graphs run no module hooks.

    python benchmarks/train_throughput.py --device cuda --configs paper --batches 16 \
        --modes auto@graphs,auto,direct@graphs,direct                  # CUDA graphs against eager steps

Peak memory of a step: on CUDA the allocator's peak; on the CPU the process's resident-set peak
during the step (msnlan.memory: VmHWM reset before each step), and that peak less the resident
set before the step (what the step itself adds: activations, gradients, Adam's first moments).

`--with-load` starts a second process that trains the demo network on all cores for the whole
measurement, as a second workflow job would. OMP_WAIT_POLICY defaults to PASSIVE here, as in the
CLI: spinning OpenMP threads stall short ops when other processes share the cores.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from competing_load import start_load, stop_load  # noqa: E402
from msnlan.memory import current_rss_kib, peak_rss_kib, reset_peak_rss  # noqa: E402
from msnlan.models.msnlab import MSNLAB, attention_form, configure_attention  # noqa: E402
from msnlan.training.checkpoint import build_network  # noqa: E402
from msnlan.training.data import PatchSampler, TrainImage, to_tensor  # noqa: E402
from msnlan.errors import ConfigError  # noqa: E402
from msnlan.training.cuda_graphs import capture_training_passes, use_cuda_graphs  # noqa: E402
from msnlan.training.engine import autocast_context, build_optimizer, train_step, use_channels_last  # noqa: E402
from msnlan.training.presets import load_preset  # noqa: E402
from msnlan.variants import resolve_variant  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BlockTimer:
    """Wall time spent inside the MSNLAB modules, forward and backward, since the last reset."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device, self.total, self._start = device, 0.0, {}
        for m in model.modules():
            if isinstance(m, MSNLAB):
                m.register_forward_pre_hook(lambda mod, args: self._begin(mod, "f"))
                m.register_forward_hook(lambda mod, args, out: self._end(mod, "f"))
                m.register_full_backward_pre_hook(lambda mod, g: self._begin(mod, "b"))
                m.register_full_backward_hook(lambda mod, gi, go: self._end(mod, "b"))

    def _begin(self, mod, phase) -> None:
        sync(self.device)
        self._start[id(mod), phase] = time.perf_counter()

    def _end(self, mod, phase) -> None:
        sync(self.device)
        self.total += time.perf_counter() - self._start.pop((id(mod), phase))


def parse_mode(text: str) -> tuple[str, dict, bool]:
    """"auto@chunk=2^28@saved=2^32@graphs" -> ("auto", {"max_chunk_elements": 2**28,
    "max_saved_elements": 2**32}, True): the attention mode, the fast form's budgets, CUDA graphs."""
    names = {"chunk": "max_chunk_elements", "saved": "max_saved_elements"}
    mode, *options = text.split("@")
    budgets, graphs = {}, False
    for option in options:
        if option == "graphs":
            graphs = True
            continue
        key, _, value = option.partition("=")
        if key not in names or not value:
            raise SystemExit(f"--modes: {option!r} in {text!r} is not chunk=N, saved=N or graphs")
        base, _, power = value.partition("^")
        try:
            budgets[names[key]] = int(base) ** int(power) if power else int(base)
        except ValueError:
            raise SystemExit(f"--modes: {value!r} in {text!r} is not a whole number N or 2^K") from None
    return mode, budgets, graphs


def setup(config: str, batch: int, mode: str, args, device: torch.device) -> dict:
    """Model (seed 0), optimizer, scheduler and sampler of one configuration and attention mode."""
    settings = load_preset("demo" if config == "demo" else "paper")["settings"]
    if config == "paper":  # the paper model at the paper's patch size (stage 1; stage 2 fine-tunes at 64)
        settings.update(batch_size=batch, patch_size=args.patch_size)
    resolved = resolve_variant(args.variant, **settings["model"])
    torch.manual_seed(0)
    model = build_network(resolved, args.scale).to(device)
    base_mode, budgets, graphs = parse_mode(mode)
    if graphs:
        try:
            use_cuda_graphs(True, device, source=f"--modes {mode}")
        except ConfigError as exc:
            raise SystemExit(str(exc)) from None
    configure_attention(model, base_mode, **budgets)
    # "auto" resolves as the presets' channels_last: auto does, so the default measures what training runs
    channels_last = use_channels_last({"auto": "auto", "contiguous": False, "channels_last": True}[args.memory_format],
                                      device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, settings, device)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, settings["milestones"], settings["gamma"])
    rng = np.random.default_rng(0)
    p, s = settings["patch_size"], args.scale
    images = []
    for i in range(4):  # the step's cost does not depend on the content
        lr = rng.integers(0, 256, (p * 4, p * 4, 3), dtype=np.uint8)
        images.append(TrainImage(f"synthetic{i}", rng.integers(0, 256, (p * 4 * s, p * 4 * s, 3), dtype=np.uint8), lr))
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "settings": settings,
            "sampler": PatchSampler(images, s, p, settings["batch_size"], seed=0), "resolved": resolved,
            # hooks would run (and synchronise) inside a graph capture, and not at all in its replays
            "timer": None if graphs else BlockTimer(model, device), "times": [], "block": [], "mode": mode,
            "form": attention_form(model, device), "channels_last": channels_last, "budgets": budgets,
            "graphs": graphs, "uncaptured": graphs, "autocast": autocast_context(args.amp, device, cache=not graphs)}


def one_step(run: dict, device) -> float:
    lr_b, hr_b = run["sampler"].sample()
    lr_t, hr_t = to_tensor(lr_b, device, run["channels_last"]), to_tensor(hr_b, device, run["channels_last"])
    if run["uncaptured"]:  # as training does: on the first batch, outside the timed step
        with run["autocast"]:
            capture_training_passes(run["model"], lr_t)
        run["uncaptured"] = False
    sync(device)
    if run["timer"] is not None:
        run["timer"].total = 0.0
    t0 = time.perf_counter()
    loss = train_step(run["model"], run["optimizer"], run["scheduler"], lr_t, hr_t, run["autocast"])
    float(loss)  # waits for the step
    return time.perf_counter() - t0


def measure(config: str, batch: int, args, device: torch.device) -> list[dict]:
    runs = [setup(config, batch, mode, args, device) for mode in args.modes]
    iterations = args.iterations or (3 if config == "paper" and device.type == "cpu" else 10)
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cpu" else 3)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + iterations):
        for run in runs:  # interleaved: A B A B ...
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            before_kib, resettable = current_rss_kib(), reset_peak_rss()
            dt = one_step(run, device)
            if device.type == "cpu" and resettable and before_kib is not None:
                peak = peak_rss_kib()
                run["cpu_peak_mb"] = max(run.get("cpu_peak_mb", 0), peak / 1024)
                run["cpu_step_mb"] = max(run.get("cpu_step_mb", 0), (peak - before_kib) / 1024)
            if i >= warmup:
                run["times"].append(dt)
                if run["timer"] is not None:
                    run["block"].append(run["timer"].total)
                if device.type == "cuda":
                    run["peak_mb"] = max(run.get("peak_mb", 0), torch.cuda.max_memory_allocated(device) / 2 ** 20)
    results = []
    for run in runs:
        s, resolved = run["settings"], run["resolved"]
        median = statistics.median(run["times"])
        share = statistics.median(b / t for b, t in zip(run["block"], run["times"])) if run["block"] else None
        results.append({
            "config": config, "variant": resolved["name"], "scale": args.scale, "device": str(device),
            "attention_mode": run["mode"], "attention_form": run["form"], "attention_budgets": run["budgets"],
            "cuda_graphs": run["graphs"], "amp": args.amp,
            "batch_size": s["batch_size"], "lr_patch": s["patch_size"],
            "model": {k: resolved["model"][k] for k in ("n_feats", "n_resgroups", "n_resblocks")},
            "warmup": warmup, "iterations": iterations, "s_per_iteration_median": median,
            "s_per_iteration_min": min(run["times"]), "s_per_iteration_max": max(run["times"]),
            "images_per_s": s["batch_size"] / median, "msnlab_share": share,
            "channels_last": run["channels_last"], "torch_threads": torch.get_num_threads(),
            "peak_memory_mb": run.get("peak_mb"),
            "cpu_peak_rss_mb": run.get("cpu_peak_mb"), "cpu_step_added_mb": run.get("cpu_step_mb"),
        })
    base = results[-1]["s_per_iteration_median"]  # the last mode is the reference (default: direct)
    for r in results:
        r["speedup_vs_" + args.modes[-1]] = base / r["s_per_iteration_median"]
        print(f"{config:5s} x{args.scale} batch {r['batch_size']:2d} x {r['lr_patch']}x{r['lr_patch']} "
              f"{r['attention_mode']:6s} ({r['attention_form']}, amp {args.amp}"
              f"{', channels_last' if r['channels_last'] else ''}): "
              f"{r['s_per_iteration_median']:.4f} s/it (min {r['s_per_iteration_min']:.4f}, max "
              f"{r['s_per_iteration_max']:.4f}; {iterations} after {warmup} warm-up) = {r['images_per_s']:.2f} "
              f"images/s; MSNLAB " + (f"{100 * r['msnlab_share']:.0f}% of the step" if r["msnlab_share"] is not None
                                      else "share not measured (CUDA graphs)") + "; "
              f"{r['speedup_vs_' + args.modes[-1]]:.2f}x vs {args.modes[-1]}"
              + (f"; peak {r['peak_memory_mb']:.0f} MiB" if r["peak_memory_mb"] else "")
              + (f"; CPU peak RSS {r['cpu_peak_rss_mb']:.0f} MiB ({r['cpu_step_added_mb']:.0f} MiB above the RSS "
                 "before the step)" if r["cpu_peak_rss_mb"] else ""), flush=True)
    if args.profile_steps:
        profile(runs[0], config, args, device)
    return results


def profile(run: dict, config: str, args, device) -> None:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.profile_steps):
            one_step(run, device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"top {args.top} ops of {args.profile_steps} {config} step(s) ({run['mode']}), by {sort}:\n"
          + prof.key_averages().table(sort_by=sort, row_limit=args.top), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="demo,paper", help="comma list of demo, paper (default both)")
    ap.add_argument("--batches", default="2", help="paper batch sizes, comma list (default 2)")
    ap.add_argument("--modes", default="auto,direct",
                    help="attention modes, comma list; the last is the reference of the ratio (default auto,direct)")
    ap.add_argument("--patch-size", type=int, default=48,
                    help="LR patch of the paper configs (default 48, stage 1; the paper preset's stage 2 uses 64)")
    ap.add_argument("--variant", default="msnlan")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--amp", choices=("none", "bf16"), default="none")
    ap.add_argument("--memory-format", choices=("auto", "contiguous", "channels_last"), default="auto",
                    help="auto (default): as the presets' channels_last: auto, i.e. channels_last on CUDA only")
    ap.add_argument("--iterations", type=int, help="timed iterations per mode (default: 3 for paper on CPU, else 10)")
    ap.add_argument("--warmup", type=int, help="untimed iterations first (default 1 on CPU, 3 on CUDA)")
    ap.add_argument("--with-load", action="store_true", help="a second training job busy on the cores meanwhile")
    ap.add_argument("--profile-steps", type=int, default=0, help="steps of the first mode under torch.profiler")
    ap.add_argument("--top", type=int, default=15, help="rows of the profiler table")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as the paper preset (deterministic: false)
    load = start_load() if args.with_load else None
    try:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_WAIT_POLICY="
              f"{os.environ.get('OMP_WAIT_POLICY')}), device {device}"
              + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
              + f"; load average {os.getloadavg()[0]:.2f}" + ("; a second training job runs beside" if load else ""),
              flush=True)
        results = []
        for config in (c.strip() for c in args.configs.split(",") if c.strip()):
            batches = [int(b) for b in args.batches.split(",")] if config == "paper" else [None]
            for batch in batches:
                results += measure(config, batch, args, device)
        print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        stop_load(load)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
