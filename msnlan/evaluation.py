"""Evaluating one method (a trained variant or bicubic) on one dataset at one scale.

Writes the per-image CSV (image, psnr, ssim, seconds, peak_memory_mb) and, beside it,
``<name>.protocol.json`` recording every protocol choice (docs/architecture.md).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .data.datasets import Dataset, file_sha256, load_dataset
from .data.images import write_image
from .errors import CheckpointError, ConfigError
from .checks import check_output_path, check_scale, resolve_device
from .inference import inference_protocol, upscale
from .memory import peak_rss_kib, reset_peak_rss
from .models.msnlab import select_attention
from .results import layout
from .io_utils import ensure_writable_dir, writing
from .results.evaluations import PartialEval, write_eval_csv, write_protocol

log = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0
#: a method name is a folder name of the results (eval/<method>/...)
METHOD_NAME = r"[A-Za-z0-9_\-]+"


# --------------------------------------------------------------------------- peak memory


class PeakMemory:
    """Peak memory of one image: CUDA max_memory_allocated on a GPU, else the process RSS high-water.

    On Linux the RSS high-water mark is reset before each image (/proc/self/clear_refs), so the
    figure is that image's peak; where that is impossible it is the peak since process start.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.can_reset_rss = device.type != "cuda" and reset_peak_rss()
        if device.type == "cuda":
            self.description = ("CUDA torch.cuda.max_memory_allocated per image (tensors only, not the "
                                "caching allocator's reserve)")
        elif self.can_reset_rss:
            self.description = ("CPU: process peak RSS (VmHWM) during the image, the high-water "
                                "mark reset before each image via /proc/self/clear_refs; includes the "
                                "loaded dataset, model and interpreter")
        else:
            self.description = "CPU: process peak RSS since process start (cumulative)"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.can_reset_rss:
            reset_peak_rss()

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return peak_rss_kib() / 1024


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    """What is evaluated: `model` is an nn.Module or the string 'bicubic'."""

    name: str  # the method name of the results folder ('bicubic', a variant name; '+' added by evaluate)
    model: Any
    variant: dict | None  # resolved variant (None for bicubic)
    weights: str  # 'bicubic', 'checkpoint' or 'random-init (seed N)'
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    checkpoint_info: dict | None = None
    conversion: dict | None = None  # set when the checkpoint was converted on the fly (its source file)


AUTHORS_LAYOUT = "the authors' released key layout (Wu et al., Signal Processing 2023)"


def _read_checkpoint(path: Path, scale: int) -> tuple[dict, dict | None, int | None, dict, dict | None]:
    """(state_dict, resolved variant or None, scale or None, extra info, conversion record or None)
    from final.pt, a training state, or a plain state_dict (also wrapped in {'state_dict': ...} or
    {'model': ...}); a state_dict in the authors' layout is converted here, and the conversion record
    says so (the source file and its sha256)."""
    from .models.convert import convert_authors_checkpoint, is_authors_layout, unwrap_state_dict
    from .paper import PAPER_DESCRIPTION, PAPER_MODEL
    from .training.checkpoint import TRAIN_STATE_FORMAT, WEIGHTS_FORMAT, load, read_weights

    raw = load(path)
    if isinstance(raw, dict) and raw.get("format") in (WEIGHTS_FORMAT, TRAIN_STATE_FORMAT):
        record = read_weights(path)
        info = {k: record.get(k) for k in ("preset", "iterations") if record.get(k) is not None}
        return record["model"], record["variant"], int(record["scale"]), info, None
    try:
        state = unwrap_state_dict(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    wrapper = next((k for k in ("state_dict", "model") if isinstance(raw, dict) and k in raw
                    and not torch.is_tensor(raw[k])), None)
    info = {"format": "plain state_dict" + (f" (wrapped in {{'{wrapper}': ...}})" if wrapper else "")}
    if not is_authors_layout(state, scale):
        return dict(state), None, None, info, None
    try:
        converted = convert_authors_checkpoint(state, scale)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path} (the authors' layout): {exc}") from None
    conversion = {"from": AUTHORS_LAYOUT, "file": str(path), "sha256": file_sha256(path),
                  "wrapper": wrapper, "converter": "msnlan.models.convert.convert_authors_checkpoint"}
    paper = {"name": "paper (the authors' checkpoint)", "description": PAPER_DESCRIPTION, "model": dict(PAPER_MODEL)}
    return converted, paper, None, {**info, "layout": "authors"}, conversion


def load_method(method: str, scale: int, *, checkpoint: str | os.PathLike | None = None,
                random_init: bool = False, device: torch.device | None = None) -> Method:
    """Build what `method` names: 'bicubic', or a variant (name or YAML path) with its weights.

    A variant needs `checkpoint` (msnlan final.pt, a training state, or a plain state_dict of
    this network) unless `random_init` is given explicitly: no silent random weights.
    """
    if method == "bicubic":
        if checkpoint is not None:
            raise ConfigError(f"method 'bicubic' takes no checkpoint (got {checkpoint})")
        return Method("bicubic", "bicubic", None, "bicubic")
    from .variants import resolve_variant

    resolved = resolve_variant(method)
    if checkpoint is None and not random_init:
        raise ConfigError(f"method {method!r} needs --checkpoint (trained weights); pass --random-init to "
                          "evaluate random weights on purpose (smoke tests only)")
    if checkpoint is not None and random_init:
        raise ConfigError("give either --checkpoint or --random-init, not both")
    from .models.network import build_model

    if checkpoint is None:
        torch.manual_seed(RANDOM_INIT_SEED)
        model = build_model(method, scale)
        return Method(resolved["name"], model.to(device or "cpu").eval(), resolved,
                      f"random-init (torch.manual_seed({RANDOM_INIT_SEED}))")
    path = Path(checkpoint)
    state, ck_variant, ck_scale, info, conversion = _read_checkpoint(path, scale)
    if ck_scale is not None and ck_scale != scale:
        raise CheckpointError(f"checkpoint {path} is for x{ck_scale}, not x{scale}")
    if ck_variant is not None:
        ours, theirs = resolved["model"], ck_variant.get("model", {})
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differ:
            raise CheckpointError(
                f"checkpoint {path} holds variant {ck_variant.get('name')!r}, which differs from method "
                f"{method!r} in " + ", ".join(f"model.{k} ({theirs.get(k)!r} vs {ours.get(k)!r})" for k in differ))
    model = build_model(method, scale)
    from .models.convert import first_mismatch

    mismatch = first_mismatch(state, model.state_dict())
    if mismatch is not None:
        raise CheckpointError(f"checkpoint {path}: weights do not fit variant {resolved['name']!r} at "
                              f"x{scale}: {mismatch}")
    model.load_state_dict(state, strict=True)
    return Method(resolved["name"], model.to(device or "cpu").eval(), resolved, "checkpoint", str(path),
                  conversion["sha256"] if conversion else file_sha256(path), info, conversion)


# --------------------------------------------------------------------------- evaluation


def _chop_whole_passes(ds: Dataset, scale: int, tiling: dict) -> list | None:
    """With chop: the images run whole because the authors' rounded tile is larger than the LR image
    (their code crashes there); None without chop."""
    if tiling["mode"] != "chop":
        return None
    from .inference import chop_plan

    return [{"image": p.name, "lr_size": [int(p.lr.shape[0]), int(p.lr.shape[1])]} for p in ds.items
            if chop_plan(p.lr.shape[0], p.lr.shape[1], scale, tiling["min_pixels"], tiling["overlap"]).whole_pass]


def _progress(total: int, enabled: bool | None):
    """A tqdm bar when stderr is a terminal (or enabled=True), else None (plain log lines)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr)


def evaluate_method(method: str, dataset: str | os.PathLike | Dataset, scale: int, out_csv: str | os.PathLike,
                    *, checkpoint: str | os.PathLike | None = None, random_init: bool = False,
                    tile: str | None = None, min_pixels: int | None = None, overlap: int = 10,
                    self_ensemble: bool = False, device: Any = "auto",
                    save_images: str | os.PathLike | None = None, drop_alpha: bool = False,
                    lr_dir: str | os.PathLike | None = None, progress: bool | None = None,
                    log_line: Callable[[str], None] | None = None, attention_mode: str = "auto",
                    name: str | None = None, label: str | None = None,
                    weights_source: str | None = None) -> dict:
    """Evaluate `method` on `dataset` at `scale`; write `out_csv` and its protocol.json.

    Returns the protocol dict (with its 'summary'). See `load_method` for what `method` and
    `checkpoint` accept; `tile`, `min_pixels`, `overlap`, `self_ensemble` as in `msnlan.upscale`;
    `attention_mode` ("auto", "fast", "direct") selects the MSNLAB attention form, and the
    protocol records the form that ran. `name` replaces the method name (default: the variant's);
    `weights_source` marks weights not trained by the workflow (e.g. the authors' released ones): the
    protocol's "pretrained" record keeps it with `label` (the display name) and the variant.
    """
    scale = check_scale(scale, supported=None)
    _check_csv_name(out_csv)
    if name is not None and not re.fullmatch(METHOD_NAME, name):
        raise ConfigError(f"--name {name!r}: a method name has letters, digits, '_' and '-' only")
    if weights_source is not None and (method == "bicubic" or checkpoint is None):
        raise ConfigError("--weights-source describes a checkpoint's origin: give --checkpoint with a variant")
    if label is not None and weights_source is None:
        raise ConfigError("--label names a row of weights not trained here: give --weights-source too")
    log_line = log_line or (lambda msg: print(msg, file=sys.stderr, flush=True))
    dev = resolve_device(device)
    meth = load_method(method, scale, checkpoint=checkpoint, random_init=random_init, device=dev)
    _check_outputs(method, dataset, out_csv, checkpoint=checkpoint, lr_dir=lr_dir, save_images=save_images)
    is_bicubic = isinstance(meth.model, str)
    attention = {} if is_bicubic else select_attention(meth.model, attention_mode, dev)
    if is_bicubic:
        if self_ensemble:
            raise ConfigError("--self-ensemble applies to networks, not to bicubic")
        if tile not in (None, "none"):
            log_line("note: bicubic is computed on the whole image; --tile/--min-pixels are ignored")
        tile, min_pixels = None, None
    if tile in (None, "none") and min_pixels is not None:
        raise ConfigError("--min-pixels applies to --tile chop only")
    inference = inference_protocol(tile, min_pixels, overlap, self_ensemble, scale)

    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, scale, drop_alpha=drop_alpha,
                                                                   lr_dir=lr_dir)
    if ds.scale != scale:
        raise ConfigError(f"dataset {ds.name} was loaded at x{ds.scale}, not x{scale}")
    from . import __version__
    from .metric_registry import registered_metrics
    from .metrics import check_evaluable, protocol_description, summarize
    from .variants import variant_hash

    pretrained = None if weights_source is None else {
        "name": name or meth.name, "label": label or name or meth.name, "source": weights_source,
        "variant": meth.variant["name"]}
    name = (name or meth.name) + ("+" if self_ensemble else "")
    if not is_bicubic:  # first-call costs (CUDA context, kernel selection) stay out of image 1's time
        with torch.inference_mode():
            meth.model(torch.zeros(1, 3, 16, 16, device=dev))
    memory = PeakMemory(dev)
    for pair in ds.items:  # before any work: a too small image fails now, named
        check_evaluable(pair.hr.shape, scale, f"{ds.name} image {pair.name}")
    partial = PartialEval(out_csv, {
        "method": name, "variant_hash": variant_hash(meth.variant) if meth.variant else None,
        "weights": meth.weights, "checkpoint_sha256": meth.checkpoint_sha256, "scale": scale,
        "images": image_fingerprints(ds), "lr_source": ds.lr_source, "inference": inference,
        "metrics": protocol_description(scale), "attention": attention, "device_type": dev.type,
        "msnlan": __version__})
    earlier, why_not = partial.earlier_rows()
    if why_not:
        log_line(f"note: {why_not}; starting over")
    done = {r["image"]: r for r in earlier}
    # SR images are kept beside the partial rows until the end: a workflow removes the output folder
    # of a failed job, which would otherwise lose them; an image whose output is missing is redone
    staged = layout.partial_images(out_csv)
    if save_images is not None:
        done = {k: r for k, r in done.items() if (staged / f"{k}.png").is_file()}
    if done:
        log_line(f"resuming: {len(done)} of {len(ds.items)} images were done by an interrupted run of this "
                 f"evaluation ({partial.path}); skipping them")
    rows: list[dict] = []
    partial.start([done[p.name] for p in ds.items if p.name in done])
    bar = _progress(len(ds.items), progress)
    try:
        for i, pair in enumerate(ds.items, 1):
            if pair.name in done:
                rows.append(done[pair.name])
                if bar is not None:
                    bar.update(1)
                continue
            memory.start()
            t0 = time.perf_counter()
            sr = upscale(meth.model, pair.lr, scale, tile=tile, min_pixels=min_pixels, overlap=overlap,
                         self_ensemble=self_ensemble, device=None if is_bicubic else dev)
            seconds = time.perf_counter() - t0  # upscale returns host memory: the GPU work is done
            peak = memory.peak_mb()
            metrics = {m.name: m.compute(sr, pair.hr, scale) for m in registered_metrics()}
            row = {"image": pair.name, **metrics, "seconds": seconds, "peak_memory_mb": peak}
            if save_images is not None:
                write_image(staged / f"{pair.name}.png", sr)
            partial.append(row)
            rows.append(row)
            if bar is not None:
                bar.set_postfix_str(f"{pair.name} {metrics['psnr']:.2f} dB")
                bar.update(1)
            else:
                log_line(f"[{i}/{len(ds.items)}] {ds.name} x{scale} {name}: {pair.name} "
                         f"PSNR {metrics['psnr']:.3f} dB SSIM {metrics['ssim']:.4f} ({seconds:.2f} s, "
                         f"{peak:.0f} MB)")
    finally:
        partial.close()
        if bar is not None:
            bar.close()
    summary = summarize(rows, registered_metrics())
    from .provenance import device_description, git_commit, package_versions

    protocol = {
        "method": name,
        "variant": meth.variant["name"] if meth.variant else None,
        "variant_hash": variant_hash(meth.variant) if meth.variant else None,
        "variant_model": meth.variant["model"] if meth.variant else None,
        "variant_description": meth.variant.get("description", "") if meth.variant else None,
        "weights": meth.weights,
        "random_init": meth.weights.startswith("random-init"),
        "checkpoint": meth.checkpoint,
        "checkpoint_sha256": meth.checkpoint_sha256,
        "checkpoint_info": meth.checkpoint_info,
        "checkpoint_conversion": meth.conversion,
        "pretrained": pretrained,
        "scale": scale,
        "benchmark": layout.protocol_json(out_csv).name[: -len(".protocol.json")],
        "dataset_name": ds.name,
        "dataset": str(ds.prepared or ds.root),
        "dataset_source": str(ds.root),
        "dataset_layout": ds.layout,
        "images": [p.name for p in ds.items],
        "lr_source": ds.lr_source,
        "hr_crop": f"top-left crop to a multiple of {scale} (modcrop) before LR generation and evaluation",
        **inference,
        "chop_whole_passes": _chop_whole_passes(ds, scale, inference["tiling"]),
        **protocol_description(scale),
        "bicubic": "MATLAB-exact imresize by the scale (msnlan.imresize)" if is_bicubic else None,
        "timing": "wall-clock seconds of upscale() per image (uint8 in host memory to uint8 in host memory), "
                  "excluding metrics" + ("" if is_bicubic else ", after one 16x16 warm-up forward pass"),
        "peak_memory": memory.description,
        "summary": summary,
        "versions": {**package_versions(), "msnlan": __version__},
        "device": device_description(dev),
        "device_type": dev.type,
        **attention,
        "resumed": ({"images_from_interrupted_run": len(done), "note": "their rows (and seconds, "
                     "peak_memory_mb) come from the interrupted run of this same evaluation"} if done else None),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }
    if save_images is not None:
        with writing(save_images):
            Path(save_images).mkdir(parents=True, exist_ok=True)
            for pair in ds.items:
                shutil.move(staged / f"{pair.name}.png", Path(save_images) / f"{pair.name}.png")
    write_eval_csv(out_csv, rows)
    write_protocol(out_csv, protocol)  # last: marks the evaluation complete
    partial.remove()
    shutil.rmtree(staged, ignore_errors=True)
    return protocol


def image_fingerprints(ds: Dataset) -> list:
    """[name, sha256 of the HR and LR arrays] per image: what an evaluation's numbers depend on."""
    import hashlib

    out = []
    for pair in ds.items:
        h = hashlib.sha256()
        for a in (pair.hr, pair.lr):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        out.append([pair.name, h.hexdigest()])
    return out


def _check_csv_name(out_csv) -> None:
    if not str(out_csv).endswith(".csv"):
        raise ConfigError(f"--out {out_csv}: the per-image results file must end with .csv")


def check_evaluation_paths(method: str, datasets, out_csv, *, checkpoint=None, lr_dir=None,
                           save_images=None) -> None:
    """What `evaluate_method` checks of its paths, without loading anything, against every dataset a
    command reads: a command that evaluates several datasets checks each output before the first
    dataset is evaluated, so no output lands inside another dataset of the same command."""
    _check_csv_name(out_csv)
    _check_outputs(method, datasets, out_csv, checkpoint=checkpoint, lr_dir=lr_dir, save_images=save_images)


def _dataset_inputs(dataset) -> dict:
    """The folders a dataset is read from, named for error messages."""
    if isinstance(dataset, Dataset):
        return {"dataset folder": dataset.root, "prepared dataset folder": dataset.prepared}
    inputs = {"dataset folder": dataset}
    if (Path(dataset) / "dataset.json").is_file():
        from .data.datasets import read_prepared_info

        inputs["prepared dataset's source folder"] = read_prepared_info(dataset)["source"]
    return inputs


def _check_outputs(method: str, datasets, out_csv, *, checkpoint, lr_dir, save_images) -> None:
    """Before any work: no output may be or lie inside an input (`datasets`: one dataset, or every
    dataset of the command), and every output folder must be writable."""
    common = {"--checkpoint": checkpoint, "LR folder": lr_dir}
    if method != "bicubic" and Path(method).suffix in (".yaml", ".yml"):
        common["variant file"] = method
    outputs = {"--out": out_csv, "its protocol file": layout.protocol_json(out_csv),
               "--save-images": save_images}
    for dataset in datasets if isinstance(datasets, (list, tuple)) else [datasets]:
        inputs = {**common, **_dataset_inputs(dataset)}
        for what, path in outputs.items():
            if path is not None:
                check_output_path(path, inputs, what)
    ensure_writable_dir(Path(out_csv).parent)
    if save_images is not None:
        ensure_writable_dir(save_images)
