"""The training loop: iteration-based, resumable bit for bit on CPU.

A preset with stages (msnlan.training.stages) runs this loop once per stage (the stage loop in
`train`), each in its own folder RUN_DIR/stage<n>/ (last.pt, best.pt, final.pt) and from the
previous stage's final.pt; log.csv and environment.json stay in RUN_DIR, and RUN_DIR/final.pt,
written after the last stage, holds the last stage's weights. A one-stage preset trains in
RUN_DIR itself.

One iteration: a batch of random aligned patch pairs (data.PatchSampler), forward (optionally
under bf16 autocast), L1 loss, Adam step, MultiStepLR step. Every `checkpoint_interval`
iterations the whole state (weights, optimizer, scheduler, sampler, RNGs, log accumulators) goes
to last.pt, atomically; re-running the same command continues from it. Non-finite losses are
checked at each log row / validation / checkpoint, and a checkpoint is written only from a finite
state (msnlan.training.divergence), so a diverged run stops with an error naming the first bad
iteration and the checkpoints that exist; `--resume-with` continues from last.pt with changed
optimizer settings (msnlan.training.resume_with).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_output_path, check_scale
from ..errors import ConfigError, DataError, MsnlanError
from ..io_utils import writing
from ..models.msnlab import select_attention
from ..models.network import count_parameters
from ..results.layout import stage_folder
from ..results.runs import (ENVIRONMENT, RESUMED_WITH, RUN_CONFIG, LogWriter, read_environment, read_run_config,
                            truncate_log, write_environment)
from ..provenance import environment
from . import checkpoint as ckpt
from .cuda_graphs import capture_training_passes, use_cuda_graphs
from .data import PatchSampler, PrefetchingSampler, to_tensor, training_images
from .gpu_lease import claim_device
from .presets import load_preset, trained_variant
from .progress import Progress
from .divergence import TrainingDiverged, check_finite_state, stop_message
from .resume_with import pending_changes, resume_changes
from .run_dir import build_config, check_run_dir, config_differences, prepare_run_dir, record_resume_with
from .stages import is_staged, resolve_stages
from .validation import load_validation_pairs, validate


def _hint(optimizer) -> str:
    """The --resume-with advice of a divergence message: a tenth of the learning rate in use."""
    return f"--resume-with lr={optimizer.param_groups[0]['lr'] / 10:.3g}"


@contextlib.contextmanager
def _determinism(deterministic: bool, device: torch.device):
    """Deterministic kernels for the run (restoring the caller's settings afterwards)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a CUDA kernel without a deterministic version warns instead of failing the run
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    else:
        torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


_RUN_LOCKS: dict[tuple[int, int], int] = {}


def _lock_run_dir(run_dir: Path) -> None:
    """One training process per RUN_DIR (flock on RUN_DIR/.lock, dropped by the OS at exit)."""
    st = run_dir.stat()
    key = (st.st_dev, st.st_ino)
    if key in _RUN_LOCKS:
        return
    with writing(run_dir / ".lock"):
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MsnlanError(f"{run_dir} is being trained by another process (lock {run_dir / '.lock'})") from None
    _RUN_LOCKS[key] = fd


def _unlock_run_dirs() -> None:
    while _RUN_LOCKS:
        os.close(_RUN_LOCKS.popitem()[1])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _write_environment(run_dir: Path, device: torch.device, lease, status: str, start_iteration: int,
                       extra: Mapping[str, Any]) -> None:
    """environment.json: where this session runs, plus a list of all sessions of the run."""
    path = run_dir / ENVIRONMENT
    sessions, kept = [], {}
    if status == "resume" and path.is_file():
        try:
            previous = read_environment(path)
        except DataError:  # a damaged record of earlier sessions does not stop training
            previous = {}
        sessions = previous.get("sessions", [])
        # how stage 1 was initialised stays on record while later stages (or sessions) run
        kept = {k: previous[k] for k in ("init_from",) if k in previous and k not in extra}
    env = environment(device)
    env.update({"device_note": lease.message, "gpu_lease": lease.as_dict(), "torch_threads": torch.get_num_threads(),
                **kept, **extra})
    sessions.append({"date": env["date"], "device": env["device"], "start_iteration": start_iteration,
                     "git_commit": env["git_commit"], **({"stage": extra["stage"]} if "stage" in extra else {})})
    env["sessions"] = sessions
    write_environment(run_dir, env)


def _final_summary(run_dir: Path, status: str, final: Path | None = None) -> dict:
    final = final or run_dir / "final.pt"
    record = ckpt.read_weights(final)
    return {"run_dir": str(run_dir), "final": str(final), "status": status,
            "iterations": record.get("iterations"), "final_val_psnr": record.get("final_val_psnr"),
            "best_val_psnr": record.get("best_val_psnr"), "best_iteration": record.get("best_iteration")}


def autocast_context(amp: str, device: torch.device, cache: bool = True):
    """bf16 autocast of the forward pass (any device type torch supports), or nothing. `cache`
    False: no cache of cast weights (CUDA graph capture requires it off)."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def use_channels_last(setting: bool | str, device: torch.device) -> bool:
    """The preset's `channels_last` (true, false or "auto") for this device. auto: on CUDA only.
    Measured on an H200 (paper model x2, batch 16, fp32, benchmarks/gpu_check.sh, one run after
    the other in one session): 1.27x faster steps at 48x48 patches and 1.18x at 64x64 (cuDNN
    otherwise converts the layout around every convolution; under bf16 autocast 0.97-1.06x); on
    the CPU it made demo-network training steps slower (0.49-0.91x)."""
    if setting == "auto":
        return device.type == "cuda"
    return bool(setting)


def build_optimizer(model: torch.nn.Module, s: Mapping[str, Any], device: torch.device) -> torch.optim.Adam:
    """Adam with the preset's settings, fused (one vectorised kernel for all parameters) on CPU and
    CUDA. CUDA: the paper model's step was bound by kernel launches on an H200 (the GPU busy 96 ms of
    a 179 ms step); across two runs the bf16 step went from 237 to 214 ms, fp32 unchanged. CPU: the
    demo network's optimiser step went from 2.19 to 0.41 ms on one thread (about 2% of its training
    step). A resumed run keeps the implementation its checkpoint records (Optimizer.load_state_dict
    restores each group's `fused` flag), so a run's steps never change implementation midway."""
    return torch.optim.Adam(model.parameters(), lr=s["lr"], betas=tuple(s["betas"]), eps=s["eps"],
                            weight_decay=s["weight_decay"], fused=device.type in ("cpu", "cuda") or None)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, lr_t: torch.Tensor,
               hr_t: torch.Tensor, autocast=None) -> torch.Tensor:
    """One iteration: forward (under `autocast`), L1 loss in float32, backward, Adam and lr steps.
    Returns the detached loss (not synchronised)."""
    with autocast if autocast is not None else contextlib.nullcontext():
        sr = model(lr_t)
    loss = F.l1_loss(sr.float(), hr_t)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


def train(variant: str | os.PathLike | Mapping, scale: int, train_data: str | os.PathLike,
          val_data: str | os.PathLike, out: str | os.PathLike, *, preset: str | os.PathLike = "paper",
          overrides: Mapping[str, Any] | Iterable[str] = (), init_from: str | os.PathLike | None = None,
          device: str = "auto", restart: bool = False, stream=None, gpu_count: int | None = None,
          resume_with: Mapping[str, Any] | Iterable[str] = (), until_stage: int | None = None) -> dict:
    """Train `variant` at `scale` into RUN_DIR `out`; returns a summary dict (status, final path, PSNRs).

    Re-running with the same arguments resumes from last.pt (or returns at once if final.pt
    exists); other arguments for an existing RUN_DIR raise ConfigError unless `restart`.
    `overrides` are preset keys ('lr=1e-4', 'model.n_feats=32', 'stages.2.lr=1e-4'); `resume_with`
    changes optimizer settings (RESUMABLE_KEYS) when continuing from last.pt, recorded in
    config.yaml; `gpu_count` overrides the number of leasable GPUs (tests). `until_stage` n stops
    after stage n of a preset with stages (the workflow trains one stage per job). Everything that
    can be checked (arguments, data, patch size, --init-from) is checked before the run folder is
    written.
    """
    stream = stream or sys.stderr

    def say(msg: str) -> None:
        print(f"msnlan train: {msg}", file=stream, flush=True)

    check_scale(scale, what="--scale")
    for flag, path in (("--train-data", train_data), ("--val-data", val_data)):
        if not Path(path).exists():
            raise DataError(f"{flag} {path} does not exist")
    preset_info = load_preset(preset, overrides)
    settings = preset_info["settings"]
    stages = resolve_stages(settings)
    if until_stage is not None and not (is_staged(settings) and 1 <= until_stage <= len(stages)):
        raise ConfigError(f"--stage {until_stage}: preset {preset_info['name']!r} has "
                          + (f"stages 1 to {len(stages)}" if is_staged(settings) else "no stages"))
    resolved = trained_variant(variant, preset_info)
    if init_from is not None and not Path(init_from).is_file():
        raise ckpt.CheckpointError(f"--init-from {init_from} does not exist")
    changes = resume_changes(resume_with, settings, preset_info["source"])
    check_output_path(out, {"--train-data": train_data, "--val-data": val_data, "--init-from": init_from,
                            "preset file": preset_info["source"], "variant file": resolved["source"]}, "--out")
    from ..data.datasets import dataset_files, files_fingerprint

    data_files = {"train": dataset_files(train_data, scale), "val": dataset_files(val_data, scale)}
    config = build_config(resolved, scale, preset_info, train_data, val_data, init_from,
                          {k: files_fingerprint(v) for k, v in data_files.items()})
    run_dir = Path(out)
    try:
        if run_dir.is_dir():
            _lock_run_dir(run_dir)  # refuse while another process trains this run
        status = check_run_dir(run_dir, config, restart, data_files)
        if changes and status != "resume":
            raise ConfigError(f"--resume-with continues a run from its last.pt, but {run_dir} "
                              + ("is finished (final.pt exists)" if status == "finished" else "has no last.pt")
                              + "; to train with other settings from the start use --set (and --restart)")
        if status == "finished":
            say(f"{run_dir / 'final.pt'} exists: the run is finished")
            return _final_summary(run_dir, status)
        if is_staged(settings):
            todo = [st for st in stages[:until_stage] if not (stage_folder(run_dir, st["stage"]) / "final.pt").is_file()]
            if not todo and not changes:  # every stage asked for is trained: no device, no data needed
                return _finish_stages(run_dir, stages, until_stage, say)
        else:
            todo = stages
        # fails here, before the run folder is written (later stages load theirs when they start)
        data = _load_data(config, int(scale), todo[0] if todo else stages[-1], say)
        if init_from is not None:
            ckpt.load_pretrained(ckpt.build_network(resolved, scale), init_from, resolved)
        lease = claim_device(device, count=gpu_count)  # an unusable --device also fails before any write
        say(lease.message)
        use_cuda_graphs(settings.get("cuda_graphs", False), torch.device(lease.device))  # true needs CUDA
        status = prepare_run_dir(run_dir, config, restart, say, data_files)
        _lock_run_dir(run_dir)  # after --restart this is a fresh folder
        if changes:
            last = _current_last(run_dir, stages, settings)
            entry = record_resume_with(run_dir, ckpt.load_train_state(last)["iteration"], changes)
            say(f"--resume-with: continuing from {last} (iteration {entry['iteration']}) with "
                + ", ".join(f"{k}={v}" for k, v in changes.items()) + f" (recorded in {run_dir / 'config.yaml'})")
        for folder in [run_dir] + [stage_folder(run_dir, st["stage"]) for st in stages]:
            for stale in folder.glob(".*.tmp"):  # temp files of a killed session's interrupted writes
                if stale.name.split(".")[1] in ("last", "best", "final", "log", "environment"):
                    stale.unlink(missing_ok=True)

        dev = torch.device(lease.device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        with _determinism(settings["deterministic"], dev):
            if not is_staged(settings):
                return _run(run_dir, run_dir, status, config, resolved, int(scale), stages[0], preset_info["name"],
                            dev, lease, say, stream, data)
            for st in todo:  # the stage loop: each unfinished stage, from the previous stage's final.pt
                folder = stage_folder(run_dir, st["stage"])
                previous = stage_folder(run_dir, st["stage"] - 1) / "final.pt" if st["stage"] > 1 else None
                say(f"stage {st['stage']} of {len(stages)} ({st['name']}): {st['iterations']} iterations, batch "
                    f"{st['batch_size']}, LR patch {st['patch_size']}, lr {st['lr']:g} in {folder}"
                    + (f", from {previous}" if previous else ""))
                if st is not todo[0]:
                    data = _load_data(config, int(scale), st, say)  # this stage's patch size decides the images
                _run(run_dir, folder, "resume" if (folder / "last.pt").is_file() else "new", config, resolved,
                     int(scale), st, preset_info["name"], dev, lease, say, stream, data, init_weights=previous,
                     stage_count=len(stages))
            return {**_finish_stages(run_dir, stages, until_stage, say, "trained"), "device": str(dev)}
    finally:
        _unlock_run_dirs()


def _load_data(config: dict, scale: int, s: dict, say) -> tuple[list, list]:
    """(training images, validation pairs), checked (sizes against the patch, readable images)."""
    from ..data.datasets import load_dataset

    images = training_images(load_dataset(config["data"]["train"], scale).items, scale, s["patch_size"],
                             source=f"training data {config['data']['train']}", warn=say)
    return images, load_validation_pairs(config["data"]["val"], scale, s["val_max_images"])


def _current_last(run_dir: Path, stages: list[dict], settings: Mapping) -> Path:
    """last.pt of the stage in progress (RUN_DIR/last.pt without stages), for --resume-with."""
    if is_staged(settings):
        for st in stages:
            folder = stage_folder(run_dir, st["stage"])
            if not (folder / "final.pt").is_file():
                if (folder / "last.pt").is_file():
                    return folder / "last.pt"
                break
        raise ConfigError(f"--resume-with continues a stage from its last.pt, but no stage of {run_dir} is in "
                          "progress; to train with other settings use --set (and --restart)")
    return run_dir / "last.pt"


def _finish_stages(run_dir: Path, stages: list[dict], until_stage: int | None, say, status: str = "finished") -> dict:
    """After the stages asked for: the summary of the last one, and RUN_DIR/final.pt once all are done.

    RUN_DIR/final.pt is the last stage's final.pt plus `stages` (each stage's iterations and
    validation PSNRs); `iterations` counts the whole run and `best_iteration` is a run iteration.
    """
    last = stages[(until_stage or len(stages)) - 1]
    last_final = stage_folder(run_dir, last["stage"]) / "final.pt"
    if last is not stages[-1]:
        return _final_summary(run_dir, status, last_final)
    record = dict(ckpt.read_weights(last_final))
    per_stage = []
    for st in stages:
        meta = ckpt.read_weights(stage_folder(run_dir, st["stage"]) / "final.pt")
        per_stage.append({"stage": st["stage"], "name": st["name"], "first_iteration": st["first_iteration"],
                          **{k: meta.get(k) for k in ("iterations", "final_val_psnr", "best_val_psnr", "best_iteration")}})
    best = record.get("best_iteration")
    record.update(iterations=last["first_iteration"] + last["iterations"], stages=per_stage,
                  best_iteration=None if best is None else last["first_iteration"] + int(best))
    ckpt.save(record, run_dir / "final.pt")
    say(f"all {len(stages)} stages trained: {run_dir / 'final.pt'} holds the weights of stage {last['stage']} "
        f"({last_final})")
    return _final_summary(run_dir, status)


def _run(run_dir: Path, stage_dir: Path, status: str, config: dict, resolved: dict, scale: int, s: dict,
         preset_name: str, dev: torch.device, lease, say, stream, data: tuple[list, list],
         init_weights: Path | None = None, stage_count: int = 1) -> dict:
    """One stage (`s`: its resolved settings, msnlan.training.stages): checkpoints in `stage_dir`,
    log rows and environment.json in `run_dir` (the same folder for a one-stage preset)."""
    stage, offset = s["stage"], s["first_iteration"]  # log rows count iterations across the run
    where = "" if stage_count == 1 else f" of stage {stage}"
    _seed_everything(s["seed"])
    model = ckpt.build_network(resolved, scale).to(dev)
    attention = select_attention(model, s.get("attention_mode", "auto"), dev)
    channels_last = use_channels_last(s["channels_last"], dev)
    graphs = use_cuda_graphs(s.get("cuda_graphs", False), dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, s, dev)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=sorted(s["milestones"]),
                                                     gamma=s["gamma"])

    images, val_pairs = data
    sampler = PatchSampler(images, scale, s["patch_size"], s["batch_size"], s["seed"], s["augment"])

    iteration, best_psnr, best_iteration, last_psnr, elapsed = 0, None, None, None, 0.0
    resumed_with: list = []
    accum = {"loss_sum": 0.0, "count": 0, "train_s": 0.0}
    init_report: dict = {}
    if status == "resume":
        # load on the CPU: RNG and sampler states must stay CPU ByteTensors (found on an H100:
        # map_location=cuda broke resume); load_state_dict moves weights and Adam moments to the device
        state = ckpt.load_train_state(stage_dir / "last.pt", map_location="cpu")
        diffs = config_differences(state["config"], config)
        if diffs:
            raise ckpt.CheckpointError(f"{stage_dir / 'last.pt'} belongs to another configuration "
                                       f"({'; '.join(diffs)}); use --restart")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        ckpt.set_rng_state(state["rng"], dev)
        resumed_with = pending_changes(run_dir, state, optimizer, scheduler, say)
        iteration, elapsed = int(state["iteration"]), float(state["elapsed_s"])
        best_psnr, best_iteration, last_psnr = state["best_val_psnr"], state["best_iteration"], state["last_val_psnr"]
        accum = dict(state["log_accum"])
        say(f"resuming {stage_dir} from iteration {iteration}{where} (last.pt)")
    elif init_weights is not None:  # a later stage: every weight of the previous stage's final.pt
        previous = ckpt.read_weights(init_weights)
        model.load_state_dict(previous["model"], strict=True)
        elapsed = float(previous.get("elapsed_s") or 0.0)  # the log's seconds run on across stages
        say(f"stage {stage} starts from {init_weights} with a fresh optimiser and lr schedule")
        init_report = {"stage_init": {"stage": stage, "path": str(init_weights)}}
        # --resume-with changes made in earlier stages were theirs: this stage's schedule starts afresh
        resumed_with = list(read_run_config(run_dir / RUN_CONFIG).get(RESUMED_WITH) or [])
    elif config["init_from"]:
        init_report = ckpt.load_pretrained(model, config["init_from"], resolved)
        skipped = ", ".join(f"{k} ({why})" for k, why in init_report["skipped"].items()) or "none"
        say(f"initialised from {config['init_from']}: {len(init_report['loaded'])} tensors loaded; skipped: {skipped}; "
            f"left at fresh initialisation: {', '.join(init_report['initialised_fresh']) or 'none'}")
        init_report = {"init_from": {"path": config["init_from"], "loaded": len(init_report["loaded"]),
                                     "skipped": init_report["skipped"],
                                     "initialised_fresh": init_report["initialised_fresh"]}}
    truncate_log(run_dir / "log.csv", offset + iteration)
    _write_environment(run_dir, dev, lease, "resume" if stage > 1 else status, offset + iteration,
                       {"parameters": count_parameters(model)["total"], **attention,
                        "memory_format": "channels_last" if channels_last else "contiguous",
                        "cuda_graphs": graphs, **init_report,
                        **({"stage": stage} if stage_count > 1 else {})})

    total = s["iterations"]
    source = PrefetchingSampler(sampler, 2 * s["num_workers"]) if s["num_workers"] > 0 else sampler
    log = LogWriter(run_dir / "log.csv")
    progress = Progress(total, iteration, stream=stream, every_s=30.0 if total > 1000 else 5.0,
                        prefix="train" + (f" stage {stage}" if stage_count > 1 else ""))
    autocast = autocast_context(s["amp"], dev, cache=not graphs)
    uncaptured = graphs
    pending: list[torch.Tensor] = []  # losses not yet checked for NaN/Inf (avoids a GPU sync per step)
    first_pending = iteration + 1
    session_start = time.monotonic() - elapsed

    def state_dict(at: int) -> dict:
        return {"format": ckpt.TRAIN_STATE_FORMAT, "version": ckpt.FORMAT_VERSION, "iteration": at,
                "config": config, "variant": resolved, "scale": scale, "preset": preset_name,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "sampler": source.state_dict(), "rng": ckpt.rng_state(dev),
                "best_val_psnr": best_psnr, "best_iteration": best_iteration, "last_val_psnr": last_psnr,
                "elapsed_s": time.monotonic() - session_start, "log_accum": dict(accum),
                "resumed_with": resumed_with}

    model.train()
    try:
        while iteration < total:
            iteration += 1
            t0 = time.perf_counter()
            lr_batch, hr_batch = source.sample()
            lr_t = to_tensor(lr_batch, dev, channels_last)
            hr_t = to_tensor(hr_batch, dev, channels_last)
            lr_now = optimizer.param_groups[0]["lr"]
            if uncaptured:  # this session's first batch: capture (state-neutral), then replay every step
                with autocast:
                    capture_training_passes(model, lr_t)
                uncaptured = False
                progress.write(f"msnlan train: captured the forward and backward passes in CUDA graphs "
                               f"({time.perf_counter() - t0:.1f} s)")
                t0 = time.perf_counter()  # the log's speed counts training steps only
            pending.append(train_step(model, optimizer, scheduler, lr_t, hr_t, autocast))

            do_val = iteration % s["val_interval"] == 0 or iteration == total
            do_log = iteration % s["log_interval"] == 0 or do_val or iteration == total
            do_ckpt = iteration % s["checkpoint_interval"] == 0 or iteration == total
            if do_log or do_ckpt:
                losses = torch.stack(pending).double().cpu().tolist()
                for k, value in enumerate(losses):
                    if not np.isfinite(value):
                        raise TrainingDiverged(stop_message(
                            stage_dir, f"loss is {value} at iteration {first_pending + k}{where}", _hint(optimizer)))
                accum["loss_sum"] += sum(losses)
                accum["count"] += len(losses)
                pending, first_pending = [], iteration + 1
            accum["train_s"] += time.perf_counter() - t0

            val_psnr = None
            if do_val:
                val_psnr = last_psnr = validate(model, val_pairs, scale)
                model.train()
                if best_psnr is None or val_psnr > best_psnr:
                    check_finite_state(model, optimizer, lr_t, hr_t, autocast, iteration, stage_dir, _hint(optimizer))
                    best_psnr, best_iteration = val_psnr, iteration
                    ckpt.save(state_dict(iteration), stage_dir / "best.pt")
            if do_log:
                mean_loss = accum["loss_sum"] / max(accum["count"], 1)
                speed = accum["count"] * s["batch_size"] / accum["train_s"] if accum["train_s"] > 0 else 0.0
                log.write(offset + iteration, mean_loss, lr_now, val_psnr, time.monotonic() - session_start, speed,
                          stage)
                progress.update(iteration, mean_loss, lr_now, speed)
                if val_psnr is not None:
                    progress.write(f"msnlan train: iteration {iteration}{where}: validation Y-PSNR {val_psnr:.3f} dB "
                                   f"(best {best_psnr:.3f} at {best_iteration})")
                accum = {"loss_sum": 0.0, "count": 0, "train_s": 0.0}
            if do_ckpt:
                check_finite_state(model, optimizer, lr_t, hr_t, autocast, iteration, stage_dir, _hint(optimizer))
                ckpt.save(state_dict(iteration), stage_dir / "last.pt")
    finally:
        log.close()
        progress.close()
        if source is not sampler:
            source.close()

    ckpt.save(ckpt.weights_record(model, resolved, scale, preset_name, total, final_val_psnr=last_psnr,
                                  best_val_psnr=best_psnr, best_iteration=best_iteration,
                                  training=config["training"],
                                  **({"stage": stage, "elapsed_s": time.monotonic() - session_start}
                                     if stage_count > 1 else {})),
              stage_dir / "final.pt")
    say(f"finished {total} iterations{where}: {stage_dir / 'final.pt'} (validation Y-PSNR {last_psnr:.3f} dB, "
        f"best {best_psnr:.3f} at iteration {best_iteration})")
    return {**_final_summary(run_dir, "trained", stage_dir / "final.pt"), "device": str(dev)}
