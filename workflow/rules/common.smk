"""Helpers of the MSNLAN workflow: config error messages, the plan (variants, datasets, scales,
methods) built and checked once at parse time, the paths of results, and input functions.

Nothing here runs a job. The Snakefile validates the config, then calls `make_plan(config)`; the
rule files read the plan `P` and the input functions below.
"""
import csv
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from snakemake.exceptions import WorkflowError

from msnlan.results import layout

#: datasets written by `msnlan demo-data` are named in a config as "demo:<set>"
DEMO_PREFIX = "demo:"
DEMO_SETS = ("DemoTrain", "DemoVal", "DemoA", "DemoB")
#: method names that are not variants (a variant file with this name would clash)
RESERVED_METHODS = ("bicubic",)
#: how the workflow calls the msnlan CLI: the interpreter running Snakemake, so that a venv's
#: `snakemake` works without activating the venv (its bin/ need not be on PATH)
MSNLAN = f"{shlex.quote(sys.executable)} -m msnlan"
#: SLURM gives every job its own GPU(s), but jobs on one node may share /tmp, where msnlan train
#: keeps its GPU lease locks: a per-job lock folder keeps two jobs from waiting on each other's lock
GPU_LEASE_ENV = ('if [ -n "${SLURM_JOB_ID:-}" ]; then export MSNLAN_GPU_LOCK_DIR='
                 '"${TMPDIR:-/tmp}/msnlan-gpu-locks-$SLURM_JOB_ID"; fi; ')


class ConfigProblem(WorkflowError):
    """A config or variant file is unusable; the message names the file and key."""


def config_sources() -> str:
    """The config files in force, for error messages."""
    files = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
    if workflow.config_settings.config:
        files.append("--config " + " ".join(sorted(workflow.config_settings.config)))
    return ", ".join(files)


def explain_validation_error(exc: Exception) -> ConfigProblem:
    """Reword snakemake.utils.validate's error so that it names the config file(s) and the key."""
    from msnlan.checks import schema_error_message

    cause = exc.__cause__ or exc.__context__
    message = schema_error_message(cause) if hasattr(cause, "validator") else str(exc)
    return ConfigProblem(f"invalid config ({config_sources()}): {message}")


def _read_checksums(path: str) -> dict:
    """config/checksums.tsv: archive, url, sha256 ('unknown' where not recorded), provides, note."""
    table = {}
    try:
        lines = [l for l in Path(path).read_text().splitlines() if l.strip() and not l.startswith("#")]
    except OSError as exc:
        raise ConfigProblem(f"config key downloads.checksums: cannot read {path}: {exc.strerror}")
    rows = list(csv.DictReader(lines, delimiter="\t"))
    for lineno, row in enumerate(rows, start=1):
        if None in row or any(row.get(k) is None for k in ("archive", "url", "sha256", "provides")):
            raise ConfigProblem(f"{path}: data row {lineno}: needs the tab-separated columns "
                                "archive, url, sha256, provides, note")
        sha = row["sha256"].strip().lower()
        if sha != "unknown" and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ConfigProblem(f"{path}: data row {lineno} ({row['archive']}): sha256 {sha!r} is neither "
                                "64 hex digits nor 'unknown'")
        table[row["archive"]] = {
            "url": row["url"].strip(),
            "sha256": None if sha == "unknown" else sha,
            "provides": [p.strip() for p in row["provides"].split(",") if p.strip()],
            "note": (row.get("note") or "").strip(),
        }
    return table


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(folder))
    return path == folder or path.startswith(folder + os.sep)


@dataclass
class Plan:
    """Everything the rules need, resolved and checked from the config before any job starts."""

    results: str
    variants: dict            # name -> {"file", "hash", "trained_hash"} (see _select_variants)
    scales: list              # evaluated scales
    train_scales: list        # trained scales (adds 2 when x3/x4 start from the x2 weights)
    data_scales: list         # scales every prepared dataset provides
    datasets: dict            # prepared-dataset name -> source ("demo:<set>" or a folder)
    train_set: str
    val_set: str
    benchmarks: list
    ensemble_variants: list   # variants that also get "<variant>+" rows
    downloads_dir: str
    archives: dict = field(default_factory=dict)   # archive -> checksums row, for missing data
    needs_archive: dict = field(default_factory=dict)  # dataset name -> archive providing it

    # ---- paths of results: msnlan.results.layout, as strings (wildcards pass through) ----
    def demo_dir(self) -> str:
        return str(layout.demo_dir(self.results))

    def dataset_json(self, dataset: str) -> str:
        return str(layout.dataset_json(self.results, dataset))

    def final_weights(self, variant: str, scale) -> str:
        return str(layout.final_weights(self.results, variant, scale))

    def eval_table(self, method: str, scale, benchmark: str) -> str:
        return str(layout.eval_csv(self.results, method, scale, benchmark))

    def protocol(self, method: str, scale, benchmark: str) -> str:
        return str(layout.protocol_json(layout.eval_csv(self.results, method, scale, benchmark)))

    def sr_images(self, method: str, scale, benchmark: str) -> str:
        return str(layout.sr_images_dir(self.results, method, scale, benchmark))

    def trained_variant_file(self, variant: str) -> str:
        return str(layout.trained_variant_file(self.results, variant))

    def complexity_json(self, variant: str, scale) -> str:
        return str(layout.complexity_json(self.results, variant, scale))

    def workflow_config(self) -> str:
        return str(layout.workflow_config(self.results))

    def table(self, name: str) -> str:
        return str(layout.tables_dir(self.results) / name)

    def report_index(self) -> str:
        return str(layout.report_index(self.results))

    def methods(self) -> list:
        """Every evaluated method: bicubic (if asked), each variant, and "<variant>+" rows."""
        out = ["bicubic"] if config["evaluate"]["bicubic"] else []
        out += list(self.variants)
        out += [f"{v}+" for v in self.ensemble_variants]
        return out

    def variant(self, name: str) -> dict:
        try:
            return self.variants[name]
        except KeyError:
            raise WorkflowError(f"unknown variant {name!r}: not among the selected variants "
                                f"({', '.join(self.variants)}) of {config['ablations_dir']}") from None


def _load_training_preset(cfg: dict) -> dict:
    """The training preset with train.overrides, loaded now to check its name and the overrides."""
    from msnlan.errors import MsnlanError
    from msnlan.training.presets import load_preset

    try:
        return load_preset(cfg["train"]["preset"], overrides=train_override_items(cfg))
    except MsnlanError as exc:
        raise ConfigProblem(f"config keys 'train.preset'/'train.overrides' ({config_sources()}): {exc}") from None


def _select_variants(cfg: dict) -> dict:
    """Resolve every selected variant file now, so a bad file stops the run before any job.

    "hash" covers the file's model settings (the rerun trigger of its jobs); "trained_hash" covers
    the network actually trained: the variant with the preset's model settings applied.
    """
    folder = Path(cfg["ablations_dir"])
    if not folder.is_dir():
        raise ConfigProblem(f"config key 'ablations_dir': folder {str(folder)!r} does not exist "
                            f"(config: {config_sources()})")
    # variant files name their base by name (`_base_: msnlan`); resolve those in this folder,
    # here and in every msnlan command the jobs run
    os.environ["MSNLAN_ABLATIONS"] = str(folder.resolve())
    from msnlan.errors import MsnlanError
    from msnlan.training.presets import trained_variant
    from msnlan.variants import resolve_variant, variant_hash

    available = sorted(p.stem for p in folder.glob("*.yaml"))
    wanted = cfg["variants"] or available
    missing = [v for v in wanted if v not in available]
    if missing:
        raise ConfigProblem(f"config key 'variants': {', '.join(map(repr, missing))} not found in "
                            f"{folder} (available: {', '.join(available) or 'none'})")
    if not wanted:
        raise ConfigProblem(f"config key 'ablations_dir': no *.yaml variant files in {folder}")
    preset = _load_training_preset(cfg)
    variants = {}
    for name in wanted:
        path = folder / f"{name}.yaml"
        if name in RESERVED_METHODS:
            raise ConfigProblem(f"{path}: the name {name!r} is reserved for the baseline method; "
                                "rename the file")
        try:
            resolved = resolve_variant(path)
            trained = trained_variant(path, preset)
        except MsnlanError as exc:
            raise ConfigProblem(f"invalid variant file: {exc}") from None
        variants[name] = {"file": str(path), "hash": variant_hash(resolved),
                          "trained_hash": variant_hash(trained)}
    return variants


def _check_data(plan: Plan, cfg: dict, keys: dict) -> None:
    """Every dataset folder must exist, or be the product of a download whose sum we can check."""
    missing = {name: src for name, src in plan.datasets.items()
               if not src.startswith(DEMO_PREFIX) and not Path(src).is_dir()}
    for name, src in plan.datasets.items():
        if src.startswith(DEMO_PREFIX) and src[len(DEMO_PREFIX):] not in DEMO_SETS:
            raise ConfigProblem(f"config key {keys[name]}: {src!r} is not a demo set "
                                f"(demo sets: {', '.join(DEMO_PREFIX + s for s in DEMO_SETS)})")
        if Path(src).exists() and not Path(src).is_dir():
            raise ConfigProblem(f"config key {keys[name]}: {src!r} is a file, not a dataset folder")
    if not missing:
        return
    checksums = cfg["downloads"]["checksums"]
    # without the table (e.g. a working directory elsewhere) nothing can be downloaded
    plan.archives = _read_checksums(checksums) if Path(checksums).is_file() else {}
    for name, src in missing.items():
        archive = next((a for a, row in plan.archives.items()
                        for p in row["provides"]
                        if _inside(src, os.path.join(plan.downloads_dir, p))), None)
        row = plan.archives.get(archive)
        head = (f"config key {keys[name]}: data folder {src!r} does not exist "
                f"(full path {os.path.abspath(src)}; config: {config_sources()}).")
        if row is None or row["url"].split("://")[0] not in ("http", "https", "ftp", "file"):
            note = row["note"] if row else ""
            raise ConfigProblem(
                f"{head} Put the dataset there (any layout `msnlan prepare` accepts: a folder of HR "
                f"images, <set>/HR, the DIV2K or benchmark layouts), or point the key at your copy, e.g. "
                f"--config 'benchmarks={{{name}: /path/to/{name}}}'. {note}".rstrip())
        if row["sha256"] is None and not cfg["allow_unverified_downloads"]:
            raise ConfigProblem(
                f"{head} The workflow can download it ({archive} from {row['url']}), but {checksums} "
                f"records no sha256 for {archive}, so the download cannot be verified. Either download "
                f"and unpack it yourself into {plan.downloads_dir}/, record the archive's sha256 in "
                f"{checksums}, or rerun with --config allow_unverified_downloads=True (the computed sum is "
                f"then written to {plan.downloads_dir}/archives/{archive}.sha256 for you to record).")
        plan.needs_archive[name] = archive


def make_plan(cfg: dict) -> Plan:
    """Build and check the plan from a validated config; raises ConfigProblem naming file and key."""
    variants = _select_variants(cfg)
    scales = sorted(cfg["scales"])
    train_scales = sorted(set(scales) | ({2} if cfg["init_from_x2"] and max(scales) > 2 else set()))
    datasets, keys = {}, {}

    def add(name: str, src: str, key: str) -> None:
        if name in datasets and os.path.normpath(datasets[name]) != os.path.normpath(src):
            raise ConfigProblem(f"config ({config_sources()}): dataset name {name!r} is used for two "
                                f"folders: {datasets[name]!r} ({keys[name]}) and {src!r} ({key})")
        datasets.setdefault(name, src)
        keys.setdefault(name, key)

    add(cfg["train_data"]["name"], cfg["train_data"]["path"], "'train_data.path'")
    add(cfg["val_data"]["name"], cfg["val_data"]["path"], "'val_data.path'")
    for bench, src in cfg["benchmarks"].items():
        add(bench, src, f"'benchmarks.{bench}'")

    ens = cfg["evaluate"]["self_ensemble"]
    ensemble_variants = list(variants) if ens is True else [] if ens is False else list(ens)
    unknown = [v for v in ensemble_variants if v not in variants]
    if unknown:
        raise ConfigProblem(f"config key 'evaluate.self_ensemble': {', '.join(map(repr, unknown))} "
                            f"not among the selected variants ({', '.join(variants)})")

    plan = Plan(
        results=f"{cfg['results_dir']}/{cfg['name']}",
        variants=variants, scales=scales, train_scales=train_scales,
        data_scales=sorted(set(scales) | set(train_scales)),
        datasets=datasets, train_set=cfg["train_data"]["name"], val_set=cfg["val_data"]["name"],
        benchmarks=list(cfg["benchmarks"]), ensemble_variants=ensemble_variants,
        downloads_dir=cfg["downloads"]["dir"],
    )
    _check_data(plan, cfg, keys)
    return plan


# ---- input functions and parameters shared by the rule files ----

def uses_gpu() -> bool:
    """Whether evaluation/complexity jobs claim the `gpu` resource (training always does)."""
    setting = config["gpu_jobs"]
    return config["device"] != "cpu" if setting == "auto" else bool(setting)


def dataset_source_path(dataset: str) -> str:
    src = P.datasets[dataset]
    if src.startswith(DEMO_PREFIX):
        return f"{P.demo_dir()}/{src[len(DEMO_PREFIX):]}"
    return src


def prepare_input(wildcards) -> dict:
    """The demo folder, the dataset folder itself, or the unpacked archive that provides it."""
    if wildcards.dataset not in P.datasets:
        raise WorkflowError(f"no dataset named {wildcards.dataset!r} in the config "
                            f"(known: {', '.join(P.datasets)})")
    src = P.datasets[wildcards.dataset]
    if src.startswith(DEMO_PREFIX):
        return {"source": P.demo_dir()}
    if wildcards.dataset in P.needs_archive:
        return {"unpacked": f"{P.downloads_dir}/.unpacked/{P.needs_archive[wildcards.dataset]}.done"}
    return {"source": src}


def init_checkpoint(wildcards) -> list:
    """x3/x4 start from the x2 weights of the same variant when init_from_x2 is set."""
    if config["init_from_x2"] and int(wildcards.scale) > 2:
        return [P.final_weights(wildcards.variant, 2)]
    return []


def train_override_items(cfg: dict) -> list:
    """train.overrides as msnlan's `key=value` strings (values as JSON, which YAML reads back)."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in cfg["train"]["overrides"].items()]


def train_overrides() -> str:
    """train.overrides as `--set key=value` arguments of msnlan train."""
    return " ".join(f"--set {shlex.quote(item)}" for item in train_override_items(config))


def eval_options(wildcards) -> str:
    """Tiling, self-ensemble and image-saving options of msnlan evaluate."""
    ev = config["evaluate"]
    opts = ["--tile", ev["tile"]]
    if ev["tile"] == "chop" and ev["min_pixels"] is not None:
        opts += ["--min-pixels", str(ev["min_pixels"])]
    if getattr(wildcards, "ensemble", "") == "+":
        opts.append("--self-ensemble")
    return " ".join(opts)


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
    if not config["evaluate"]["save_images"]:
        return ""
    return "--save-images " + shlex.quote(P.sr_images(method, wildcards.scale, wildcards.benchmark))


def archive_row(wildcards) -> dict:
    """The checksums-table row of the archive a download/unpack job handles."""
    try:
        return P.archives[wildcards.archive]
    except KeyError:
        raise WorkflowError(f"archive {wildcards.archive!r} is not listed in "
                            f"{config['downloads']['checksums']}") from None


def eval_outputs(method: str) -> dict:
    """Named outputs of an evaluation job; the SR images folder only when they are saved."""
    out = {"table": P.eval_table(method, "{scale}", "{benchmark}"),
           "protocol": P.protocol(method, "{scale}", "{benchmark}")}
    if config["evaluate"]["save_images"]:
        out["images"] = directory(P.sr_images(method, "{scale}", "{benchmark}"))
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


def all_evaluations() -> list:
    """Every eval table and protocol the config asks for."""
    tables = [P.eval_table(m, s, b) for m in P.methods() for s in P.scales for b in P.benchmarks]
    return tables + [str(layout.protocol_json(t)) for t in tables]


def all_complexity() -> list:
    if not config["complexity"]["enabled"]:
        return []
    return [P.complexity_json(v, s) for v in P.variants for s in P.scales]


def all_weights() -> list:
    return [P.final_weights(v, s) for v in P.variants for s in P.scales]
