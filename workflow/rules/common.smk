"""Config access and input functions of the MSNLAN workflow.

The plan (variants, datasets, scales, methods, results paths) is package code: msnlan.plan. The
Snakefile validates the config, then calls `make_plan(config)`; the rule files read the plan `P`
and the input functions below.
"""

import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from msnlan.config import validate_config
from msnlan.errors import MsnlanError
from msnlan.plan import DEMO_PREFIX, PRIORITY, make_plan, train_override_items


class Unrecorded:
    """A params value that reaches the shell command but is no rerun trigger.

    Snakemake's params trigger compares the values it can record (strings, numbers, lists, ...)
    and skips other objects; the shell command formats this one with str(). For values that
    change where a job runs, not what it computes.
    """

    def __init__(self, value):
        self.text = str(value)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Unrecorded({self.text!r})"


def msnlan_command() -> str:
    """How a job calls the msnlan CLI. With `--sdm conda`: the python of the rule's conda env
    (envs/msnlan.yaml installs the package). Otherwise the interpreter running Snakemake, so
    that a venv's `snakemake` works without activating the venv (its bin/ need not be on PATH)."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python -m msnlan"
    return f"{shlex.quote(sys.executable)} -m msnlan"


#: the `msnlan` params of the rules: switching between a venv and --sdm conda, or moving the
#: venv, must not rerun finished jobs
MSNLAN = Unrecorded(msnlan_command())


class ConfigProblem(WorkflowError):
    """A config or variant file is unusable; the message names the file and key."""


def config_sources() -> str:
    """The config files in force, for error messages."""
    files = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
    if workflow.config_settings.config:
        files.append("--config " + " ".join(sorted(workflow.config_settings.config)))
    return ", ".join(files)


def checked_config_and_plan(cfg: dict):
    """Validate `cfg` in place (defaults filled in) and make the plan; errors as workflow errors."""
    try:
        cfg.update(validate_config(cfg, f"invalid config ({config_sources()})"))
        return make_plan(cfg, config_sources())
    except MsnlanError as exc:
        raise ConfigProblem(str(exc)) from None


# ---- input functions and parameters shared by the rule files ----


def device() -> Unrecorded:
    """The `device` params of train/evaluate/complexity: moving a finished workflow to another
    device must not rerun it, so the value is no rerun trigger."""
    return Unrecorded(config["device"])


def uses_gpu() -> bool:
    """Whether evaluation/complexity jobs claim the `gpu` resource (training always does)."""
    setting = config["gpu_jobs"]
    return config["device"] != "cpu" if setting == "auto" else bool(setting)


def prepare_input(wildcards) -> dict:
    """The demo folder, the dataset folder itself, or the unpacked archive that provides it."""
    if wildcards.dataset not in P.datasets:
        raise WorkflowError(
            f"no dataset named {wildcards.dataset!r} in the config "
            f"(known: {', '.join(P.datasets)})"
        )
    src = P.datasets[wildcards.dataset]
    if src.startswith(DEMO_PREFIX):
        return {"source": P.demo_dir()}
    if wildcards.dataset in P.needs_archive:
        return {
            "unpacked": f"{P.downloads_dir}/.unpacked/{P.needs_archive[wildcards.dataset]}.done"
        }
    return {"source": src}


def seed_of(wildcards):
    """The job's training seed (its {seed} wildcard), or None in the one-seed layout."""
    return getattr(wildcards, "seed", None)


def seed_tag() -> str:
    """The seed part of log and benchmark file names ("" in the one-seed layout: names as before)."""
    return "_seed{seed}" if P.seeded else ""


def init_checkpoint(wildcards) -> list:
    """x3/x4 start from the x2 weights of the same variant (and seed) when init_from_x2 is set."""
    if config["init_from_x2"] and int(wildcards.scale) > 2:
        return [P.final_weights(wildcards.variant, 2, seed_of(wildcards))]
    return []


def previous_stage(wildcards) -> list:
    """Stage n > 1 of a preset with stages starts from stage n - 1's final.pt (same seed)."""
    n = int(wildcards.stage)
    if n == 1:
        return []
    return [P.stage_weights(wildcards.variant, wildcards.scale, n - 1, seed_of(wildcards))]


def stages_before_last(wildcards) -> list:
    """With stages and train.job_per_stage, `train` trains the last one, from the stage before it
    (a train_stage job of the same seed); otherwise `train` trains every stage."""
    if P.train_stages == 1 or not P.job_per_stage:
        return []
    last = P.train_stages - 1
    return [P.stage_weights(wildcards.variant, wildcards.scale, last, seed_of(wildcards))]


def train_overrides(wildcards) -> str:
    """train.overrides and the job's training seed as `--set key=value` arguments of msnlan train."""
    items = train_override_items(config) + P.seed_override(seed_of(wildcards))
    return " ".join(f"--set {shlex.quote(item)}" for item in items)


def eval_options(wildcards) -> str:
    """Tiling, self-ensemble and image-saving options of msnlan evaluate."""
    ev = config["evaluate"]
    opts = ["--tile", ev["tile"]]
    if ev["tile"] == "chop" and ev["min_pixels"] is not None:
        opts += ["--min-pixels", str(ev["min_pixels"])]
    if getattr(wildcards, "ensemble", "") == "+":
        opts.append("--self-ensemble")
    return " ".join(opts)


def pretrained_options(wildcards) -> str:
    """msnlan evaluate's record of a pretrained row: its name, display label and source."""
    row = P.pretrained_row(wildcards.pretrained)
    return (
        f"--name {shlex.quote(wildcards.pretrained)} --label {shlex.quote(row['label'])} "
        f"--weights-source {shlex.quote(row['source'])}"
    )


def complexity_options() -> str:
    """Runtime measurement options of msnlan complexity."""
    cx = config["complexity"]
    if not cx["measure_runtime"]:
        return "--no-runtime"
    opts = ["--runs", str(cx["runs"])]
    if cx["runtime_size"]:
        opts += ["--runtime-size", cx["runtime_size"]]
    if cx["runtime_timeout"]:
        opts += ["--runtime-timeout", str(cx["runtime_timeout"])]
    return " ".join(opts)


def save_images_option(method: str, wildcards) -> str:
    """--save-images with one folder per benchmark (the order of benchmark_jsons), or nothing."""
    if not config["evaluate"]["save_images"]:
        return ""
    folders = [P.sr_images(method, wildcards.scale, b, seed_of(wildcards)) for b in P.benchmarks]
    return "--save-images " + " ".join(shlex.quote(f) for f in folders)


def benchmark_jsons() -> list:
    """The prepared benchmarks an evaluation job reads, in the order of its outputs."""
    return [P.dataset_json(b) for b in P.benchmarks]


def dataset_folders(wildcards, input) -> str:
    """The --dataset folders of an evaluation job (each dataset.json's folder), quoted."""
    return " ".join(shlex.quote(os.path.dirname(p)) for p in input.datasets)


def archive_row(wildcards) -> dict:
    """The checksums-table row of the archive a download/unpack job handles."""
    try:
        return P.archives[wildcards.archive]
    except KeyError:
        raise WorkflowError(
            f"archive {wildcards.archive!r} is not listed in {config['downloads']['checksums']}"
        ) from None


def eval_outputs(method: str, seed=None) -> dict:
    """Named outputs of an evaluation job, one entry per benchmark in each (the order of
    benchmark_jsons); the SR images folders only when they are saved."""
    out = {
        "tables": [P.eval_table(method, "{scale}", b, seed) for b in P.benchmarks],
        "protocols": [P.protocol(method, "{scale}", b, seed) for b in P.benchmarks],
    }
    if config["evaluate"]["save_images"]:
        out["images"] = [directory(P.sr_images(method, "{scale}", b, seed)) for b in P.benchmarks]
    return out


def folder_of(name: str, levels: int = 1):
    """A params function: the folder `levels` up from the named input or output file."""

    def get(wildcards, input, output):
        files = dict(input.items()) | dict(output.items())
        path = files[name]
        for _ in range(levels):
            path = os.path.dirname(path)
        return path

    return get
