"""The workflow's plan: what a validated workflow config asks for, resolved and checked up front.

`make_plan(config)` resolves every selected variant file (and the trained network, with the
training preset's model settings), collects the datasets, and checks that each data folder exists
or can be downloaded with a verifiable checksum. Every problem raises PlanError naming the config
key (and file). Nothing here runs a job or needs Snakemake: the Snakefile calls it once at parse
time, and tests call it in-process.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .data.demo import DEMO_SETS
from .errors import ConfigError, MsnlanError
from .results import layout

#: datasets written by `msnlan demo-data` are named in a config as "demo:<set>"
DEMO_PREFIX = "demo:"
#: method names that are not variants (a variant file with this name would clash)
RESERVED_METHODS = ("bicubic",)
#: what a variant name (a file stem of ablations_dir, a results folder name) may look like
VARIANT_NAME = r"[A-Za-z0-9_\-]+"
#: URL schemes the workflow's download rule handles
DOWNLOAD_SCHEMES = ("http", "https", "ftp", "file")
#: Snakemake priorities of the rules (higher runs first among ready jobs): data first, since every
#: training waits for it; trainings next, costliest first (Plan.train_priority adds the cost); then
#: complexity (with the trained_variant file it reads), then evaluations: longest jobs first, so that
#: the cores beside the last trainings fill with the complexity jobs (10-13 s each in the demo) and
#: the run ends on evaluations of a few seconds, not on a complexity job running alone (8 of a
#: demo run's 15 seconds with one job, 2026-12-01)
PRIORITY = {"data": 100, "train": 50, "complexity": 30, "evaluate": 20, "other": 0}


class PlanError(ConfigError):
    """A config, variant or checksums file is unusable; the message names the file and key."""


@dataclass
class Plan:
    """Everything the rules need, resolved and checked from the config before any job starts."""

    results: str
    variants: dict            # name -> {"file", "hash", "trained_hash", "train_cost"} (see select_variants)
    scales: list              # evaluated scales
    train_scales: list        # trained scales (adds 2 when x3/x4 start from the x2 weights)
    data_scales: list         # scales every prepared dataset provides
    datasets: dict            # prepared-dataset name -> source ("demo:<set>" or a folder)
    train_set: str
    val_set: str
    benchmarks: list
    ensemble_variants: list   # variants that also get "<variant>+" rows
    seeds: list               # training seeds (config `seeds`); several add a seed<k>/ level
    preset_seed: int          # the seed the training preset (with train.overrides) already sets
    bicubic: bool             # whether bicubic is evaluated
    ablations_dir: str
    downloads_dir: str
    archives: dict = field(default_factory=dict)   # archive -> checksums row, for missing data
    needs_archive: dict = field(default_factory=dict)  # dataset name -> archive providing it
    train_stages: int = 1     # stages of the training preset
    job_per_stage: bool = True  # with stages: a `train_stage` job for each but the last
    pretrained: dict = field(default_factory=dict)  # row name -> weights not trained here (select_pretrained)

    # ---- training seeds ----
    @property
    def seeded(self) -> bool:
        """Several seeds: runs, evaluations and saved images get a seed<k>/ level."""
        return len(self.seeds) > 1

    @property
    def seed_wildcard(self) -> str | None:
        """The rules' seed wildcard ("{seed}"), or None in the one-seed layout (no seed level)."""
        return "{seed}" if self.seeded else None

    def run_seeds(self) -> list:
        """The seed level of every run: the seeds, or [None] in the one-seed layout."""
        return list(self.seeds) if self.seeded else [None]

    def seed_value(self, seed=None) -> int:
        """The training seed of a run: its seed<k> folder's k, else the one configured seed."""
        return int(seed) if seed is not None else int(self.seeds[0])

    def seed_override(self, seed=None) -> list:
        """`seed=<k>` for msnlan train --set, unless the preset already trains with that seed (so the
        one-seed default leaves the training command exactly as it was before seeds existed)."""
        value = self.seed_value(seed)
        return [] if value == self.preset_seed else [f"seed={value}"]

    # ---- paths of results: msnlan.results.layout, as strings (wildcards pass through) ----
    def demo_dir(self) -> str:
        return str(layout.demo_dir(self.results))

    def dataset_json(self, dataset: str) -> str:
        return str(layout.dataset_json(self.results, dataset))

    def final_weights(self, variant: str, scale, seed=None) -> str:
        return str(layout.final_weights(self.results, variant, scale, seed))

    def stage_weights(self, variant: str, scale, stage, seed=None) -> str:
        return str(layout.stage_weights(self.results, variant, scale, stage, seed))

    def eval_table(self, method: str, scale, benchmark: str, seed=None) -> str:
        return str(layout.eval_csv(self.results, method, scale, benchmark, seed))

    def protocol(self, method: str, scale, benchmark: str, seed=None) -> str:
        return str(layout.protocol_json(layout.eval_csv(self.results, method, scale, benchmark, seed)))

    def sr_images(self, method: str, scale, benchmark: str, seed=None) -> str:
        return str(layout.sr_images_dir(self.results, method, scale, benchmark, seed))

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

    # ---- what is planned ----
    def methods(self) -> list:
        """Every evaluated method: bicubic (if asked), each variant, each pretrained row, and the
        "<name>+" rows."""
        out = ["bicubic"] if self.bicubic else []
        out += list(self.variants) + list(self.pretrained)
        out += [f"{v}+" for v in self.ensemble_variants]
        return out

    def method_scales(self, method: str) -> list:
        """The scales a method is evaluated at: every scale, but a pretrained row only where it has
        a checkpoint."""
        row = self.pretrained.get(method[:-1] if method.endswith("+") else method)
        return [s for s in self.scales if row is None or s in row["checkpoints"]]

    def method_seeds(self, method: str) -> list:
        """The seed level of a method's evaluations: a trained variant's (and its "+" row's) run seeds;
        [None] for bicubic and pretrained rows, which no training seed changes."""
        return self.run_seeds() if (method[:-1] if method.endswith("+") else method) in self.variants else [None]

    def pretrained_row(self, name: str) -> dict:
        try:
            return self.pretrained[name]
        except KeyError:
            raise PlanError(f"unknown pretrained row {name!r} (config key 'pretrained': "
                            f"{', '.join(self.pretrained) or 'none'})") from None

    def pretrained_checkpoint(self, name: str, scale) -> str:
        """The local weights file of a pretrained row at `scale` (a download's target for a URL)."""
        checkpoints = self.pretrained_row(name)["checkpoints"]
        if int(scale) not in checkpoints:
            raise PlanError(f"pretrained row {name!r} has no checkpoint for x{scale}")
        return checkpoints[int(scale)]["file"]

    def variant_pattern(self) -> str:
        """Wildcard constraint matching exactly the selected variants' names."""
        return _alternatives(self.variants)

    def pretrained_pattern(self) -> str:
        """Wildcard constraint matching exactly the pretrained rows' names (nothing when none)."""
        return _alternatives(self.pretrained)

    def variant(self, name: str) -> dict:
        try:
            return self.variants[name]
        except KeyError:
            raise PlanError(f"unknown variant {name!r}: not among the selected variants "
                            f"({', '.join(self.variants)}) of {self.ablations_dir}") from None

    def train_priority(self, variant: str) -> int:
        """Snakemake priority of a training job: above every other rule's (PRIORITY), costliest first."""
        return PRIORITY["train"] + self.variant(variant)["train_cost"]

    def dataset_source(self, dataset: str) -> str:
        """The folder `msnlan prepare` reads for a dataset (a demo set lives under the results)."""
        src = self.datasets[dataset]
        if src.startswith(DEMO_PREFIX):
            return f"{self.demo_dir()}/{src[len(DEMO_PREFIX):]}"
        return src

    def all_evaluations(self) -> list:
        """Every eval table and protocol the config asks for: bicubic and pretrained rows once, trained
        methods per seed."""
        keys = [(m, s, b, k) for m in self.methods() for s in self.method_scales(m) for b in self.benchmarks
                for k in self.method_seeds(m)]
        return [self.eval_table(*k) for k in keys] + [self.protocol(*k) for k in keys]

    def all_weights(self) -> list:
        return [self.final_weights(v, s, k) for v in self.variants for s in self.scales for k in self.run_seeds()]

    def all_complexity(self) -> list:
        return [self.complexity_json(v, s) for v in self.variants for s in self.scales]


def _alternatives(names) -> str:
    """A regex matching exactly one of `names`; one that matches nothing when there are none."""
    names = sorted(names, key=len, reverse=True)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def train_override_items(cfg: Mapping) -> list:
    """train.overrides as msnlan's `key=value` strings (values as JSON, which YAML reads back)."""
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in cfg["train"]["overrides"].items()]


def read_checksums(path: str | os.PathLike) -> dict:
    """config/checksums.tsv: archive, url, sha256 ('unknown' where not recorded), bytes (optional column;
    'unknown' or absent: not recorded), provides, note."""
    table = {}
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as exc:
        raise PlanError(f"config key downloads.checksums: cannot read {path}: {exc.strerror}") from None
    for lineno, row in enumerate(csv.DictReader(lines, delimiter="\t"), start=1):
        if None in row or any(row.get(k) is None for k in ("archive", "url", "sha256", "provides")):
            raise PlanError(f"{path}: data row {lineno}: needs the tab-separated columns "
                            "archive, url, sha256, provides, note")
        sha = row["sha256"].strip().lower()
        if sha != "unknown" and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise PlanError(f"{path}: data row {lineno} ({row['archive']}): sha256 {sha!r} is neither "
                            "64 hex digits nor 'unknown'")
        size = (row.get("bytes") or "unknown").strip().replace(",", "")
        if size != "unknown" and not size.isdigit():
            raise PlanError(f"{path}: data row {lineno} ({row['archive']}): bytes {size!r} is neither a "
                            "number nor 'unknown'")
        table[row["archive"]] = {
            "url": row["url"].strip(),
            "sha256": None if sha == "unknown" else sha,
            "bytes": None if size == "unknown" else int(size),
            "provides": [p.strip() for p in row["provides"].split(",") if p.strip()],
            "note": (row.get("note") or "").strip(),
        }
    return table


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(folder))
    return path == folder or path.startswith(folder + os.sep)


def _preset(cfg: Mapping, sources: str = "") -> dict:
    """The training preset with train.overrides applied; the seed comes from `seeds` only."""
    from .training.presets import load_preset

    if "seed" in cfg["train"]["overrides"]:
        raise PlanError(f"config key 'train.overrides.seed' ({sources}): set training seeds with the config key "
                        f"'seeds' instead (e.g. seeds: [{cfg['train']['overrides']['seed']}])")
    try:
        return load_preset(cfg["train"]["preset"], overrides=train_override_items(cfg))
    except MsnlanError as exc:
        raise PlanError(f"config keys 'train.preset'/'train.overrides' ({sources}): {exc}") from None


def select_variants(cfg: Mapping, sources: str = "") -> dict:
    """Resolve every selected variant file now, so a bad file stops the run before any job.

    "hash" covers the file's model settings (the rerun trigger of its jobs); "trained_hash" covers
    the network actually trained: the variant with the preset's model settings applied. A file's
    `_base_` is found beside it first, so no environment setting is needed.
    """
    from .training.presets import trained_variant
    from .variants import resolve_variant, variant_hash

    folder = Path(cfg["ablations_dir"])
    if not folder.is_dir():
        raise PlanError(f"config key 'ablations_dir': folder {str(folder)!r} does not exist (config: {sources})")
    available = sorted(p.stem for p in folder.glob("*.yaml"))
    for stem in available:  # a variant name becomes a folder name of the results
        if not re.fullmatch(VARIANT_NAME, stem):
            raise PlanError(f"{folder / (stem + '.yaml')}: {stem!r} is not a usable variant name "
                            "(letters, digits, _ and - only); rename the file")
    wanted = cfg["variants"] or available
    missing = [v for v in wanted if v not in available]
    if missing:
        raise PlanError(f"config key 'variants': {', '.join(map(repr, missing))} not found in "
                        f"{folder} (available: {', '.join(available) or 'none'})")
    if not wanted:
        raise PlanError(f"config key 'ablations_dir': no *.yaml variant files in {folder}")
    preset = _preset(cfg, sources)
    variants = {}
    for name in wanted:
        path = folder / f"{name}.yaml"
        if name in RESERVED_METHODS:
            raise PlanError(f"{path}: the name {name!r} is reserved for the baseline method; rename the file")
        try:
            resolved = resolve_variant(path)
            trained = trained_variant(path, preset)
        except MsnlanError as exc:
            raise PlanError(f"invalid variant file: {exc}") from None
        variants[name] = {"file": str(path), "hash": variant_hash(resolved), "trained_hash": variant_hash(trained),
                          "train_cost": attention_cost(trained["model"])}
    return variants


def attention_cost(model: Mapping[str, Any]) -> int:
    """A rank of a network's training cost beside the others of one workflow: the sum of its MSNLAB
    patch sizes (0 without the MSNLAB). On the CPU the attention dominates a training step and a
    branch's time grows with its patch size (demo jobs measured: branches 3/5/7 80-95 s, branch 3
    alone 30-40 s, no MSNLAB 14-30 s); the workflow starts the costliest trainings first, so that
    short jobs fill the cores at the end instead of one long training running alone."""
    return sum(int(k) for k in model["patch_sizes"]) if model["msnlab"] else 0


def _config_hint(key: str, name: str) -> str:
    """A --config example that sets the data folder of config key `key` ("'train_data.path'", ...)."""
    top = key.strip("'").split(".")[0]
    if top in ("train_data", "val_data"):
        return f"--config '{top}={{name: {name}, path: /path/to/{name}}}'"
    return f"--config 'benchmarks={{{name}: /path/to/{name}}}'"


def _check_layout(src: str, key: str) -> None:
    """An existing data folder must hold images in a layout `msnlan prepare` reads (only lists folders)."""
    from .data.datasets import PREPARED_MARKER, detect_layout
    from .errors import DataError

    if (Path(src) / PREPARED_MARKER).is_file():
        return
    try:
        detect_layout(src)
    except DataError as exc:
        raise PlanError(f"config key {key}: data folder {src!r} is unusable: {exc}") from None


def count_stages(cfg: Mapping, sources: str = "") -> int:
    """How many training stages the config's preset (with its overrides) has."""
    from .training.presets import load_preset
    from .training.stages import resolve_stages

    try:
        return len(resolve_stages(load_preset(cfg["train"]["preset"], train_override_items(cfg))["settings"]))
    except MsnlanError as exc:
        raise PlanError(f"config keys 'train.preset'/'train.overrides' ({sources}): {exc}") from None


def check_data(plan: Plan, cfg: Mapping, keys: Mapping[str, str], sources: str = "") -> None:
    """Every dataset folder must exist and hold images in a known layout, or be the product of a
    download whose sum we can check.

    Fills plan.archives and plan.needs_archive for the datasets a download provides.
    """
    missing = {name: src for name, src in plan.datasets.items()
               if not src.startswith(DEMO_PREFIX) and not Path(src).is_dir()}
    for name, src in plan.datasets.items():
        if src.startswith(DEMO_PREFIX) and src[len(DEMO_PREFIX):] not in DEMO_SETS:
            raise PlanError(f"config key {keys[name]}: {src!r} is not a demo set "
                            f"(demo sets: {', '.join(DEMO_PREFIX + s for s in DEMO_SETS)})")
        if Path(src).exists() and not Path(src).is_dir():
            raise PlanError(f"config key {keys[name]}: {src!r} is a file, not a dataset folder")
        if name not in missing and not src.startswith(DEMO_PREFIX):
            _check_layout(src, keys[name])
    if not missing:
        return
    checksums = cfg["downloads"]["checksums"]
    # without the table (e.g. a working directory elsewhere) nothing can be downloaded
    plan.archives = read_checksums(checksums) if Path(checksums).is_file() else {}
    for name, src in missing.items():
        archive = next((a for a, row in plan.archives.items() for p in row["provides"]
                        if _inside(src, os.path.join(plan.downloads_dir, p))), None)
        row = plan.archives.get(archive)
        head = (f"config key {keys[name]}: data folder {src!r} does not exist "
                f"(full path {os.path.abspath(src)}; config: {sources}).")
        if row is None or row["url"].split("://")[0] not in DOWNLOAD_SCHEMES:
            note = row["note"] if row else ""
            raise PlanError(
                f"{head} Put the dataset there (any layout `msnlan prepare` accepts: a folder of HR "
                f"images, <set>/HR, the DIV2K or benchmark layouts), or point the key at your copy, e.g. "
                f"{_config_hint(keys[name], name)}. {note}".rstrip())
        if row["sha256"] is None and not cfg["allow_unverified_downloads"]:
            raise PlanError(
                f"{head} The workflow can download it ({archive} from {row['url']}), but {checksums} "
                f"records no sha256 for {archive}, so the download cannot be verified. Either download "
                f"and unpack it yourself into {plan.downloads_dir}/, record the archive's sha256 in "
                f"{checksums}, or rerun with --config allow_unverified_downloads=True (the computed sum is "
                f"then written to {plan.downloads_dir}/archives/{archive}.sha256 for you to record).")
        plan.needs_archive[name] = archive


def pretrained_archive(name: str, scale: int, url: str) -> str:
    """The downloads' file name of a pretrained row's checkpoint (the URL's suffix kept when plain)."""
    from urllib.parse import urlparse

    suffix = Path(urlparse(url).path).suffix
    if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
        suffix = ".pt"
    return f"pretrained_{name}_x{scale}{suffix}"


def select_pretrained(cfg: Mapping, variants: Mapping, downloads_dir: str, sources: str = "") -> tuple[dict, dict]:
    """The config's `pretrained:` rows, checked: ({name: row}, {archive: download row}).

    A row is {"label", "source", "variant", "variant_file", "checkpoints": {scale: {"file", "url",
    "sha256"}}}. Its variant file is the ablations folder's (beside the selected variants) or a
    standard variant; a checkpoint path must exist now; a URL is downloaded to
    <downloads.dir>/archives/ by the download rule and checked against its sha256.
    """
    from .variants import resolve_variant, standard_variants_dir

    folder = Path(cfg["ablations_dir"])
    taken = set(RESERVED_METHODS) | {p.stem for p in folder.glob("*.yaml")} | set(variants)
    taken |= {p.stem for p in standard_variants_dir().glob("*.yaml")}
    rows: dict = {}
    downloads: dict = {}
    for i, entry in enumerate(cfg.get("pretrained") or []):
        key = f"config key 'pretrained[{i}]'"
        name = entry["name"]
        if name in taken or name in rows:
            raise PlanError(f"{key}.name: {name!r} is already a variant, the baseline or another pretrained "
                            f"row; give the released weights a name of their own ({sources})")
        candidates = [folder / f"{entry['variant']}.yaml", standard_variants_dir() / f"{entry['variant']}.yaml"]
        variant_file = next((c for c in candidates if c.is_file()), None)
        if variant_file is None:
            raise PlanError(f"{key}.variant: no variant {entry['variant']!r} in {folder} or among the standard "
                            f"variants ({sources})")
        try:
            resolve_variant(variant_file)
        except MsnlanError as exc:
            raise PlanError(f"{key}.variant: invalid variant file: {exc}") from None
        checkpoints = {}
        for scale_key, ck in entry["checkpoints"].items():
            scale = int(scale_key[1:])
            if "path" in ck:
                if not Path(ck["path"]).is_file():
                    raise PlanError(f"{key}.checkpoints.{scale_key}: weights file {ck['path']!r} does not exist "
                                    f"(full path {os.path.abspath(ck['path'])}; config: {sources})")
                checkpoints[scale] = {"file": ck["path"], "url": None, "sha256": None}
                continue
            archive = pretrained_archive(name, scale, ck["url"])
            downloads[archive] = {"url": ck["url"], "sha256": ck["sha256"], "bytes": None, "provides": [],
                                  "note": f"checkpoint x{scale} of pretrained row {name!r}"}
            checkpoints[scale] = {"file": os.path.join(downloads_dir, "archives", archive), "url": ck["url"],
                                  "sha256": ck["sha256"]}
        if not set(checkpoints) & set(cfg["scales"]):
            raise PlanError(f"{key}.checkpoints: none of its scales ({', '.join(entry['checkpoints'])}) is "
                            f"evaluated (config key 'scales': {cfg['scales']})")
        rows[name] = {"label": entry["label"], "source": entry["source"], "variant": entry["variant"],
                      "variant_file": str(variant_file), "checkpoints": checkpoints}
    return rows, downloads


def make_plan(cfg: Mapping[str, Any], sources: str = "") -> Plan:
    """Build and check the plan from a validated config; `sources` names the config file(s) in messages."""
    variants = select_variants(cfg, sources)
    scales = sorted(cfg["scales"])
    train_scales = sorted(set(scales) | ({2} if cfg["init_from_x2"] and max(scales) > 2 else set()))
    datasets: dict = {}
    keys: dict = {}

    def add(name: str, src: str, key: str) -> None:
        if name in datasets and os.path.normpath(datasets[name]) != os.path.normpath(src):
            raise PlanError(f"config ({sources}): dataset name {name!r} is used for two folders: "
                            f"{datasets[name]!r} ({keys[name]}) and {src!r} ({key})")
        datasets.setdefault(name, src)
        keys.setdefault(name, key)

    add(cfg["train_data"]["name"], cfg["train_data"]["path"], "'train_data.path'")
    add(cfg["val_data"]["name"], cfg["val_data"]["path"], "'val_data.path'")
    for bench, src in cfg["benchmarks"].items():
        add(bench, src, f"'benchmarks.{bench}'")

    pretrained, weight_downloads = select_pretrained(cfg, variants, cfg["downloads"]["dir"], sources)
    ens = cfg["evaluate"]["self_ensemble"]
    ensemble_variants = [*variants, *pretrained] if ens is True else [] if ens is False else list(ens)
    unknown = [v for v in ensemble_variants if v not in variants and v not in pretrained]
    if unknown:
        raise PlanError(f"config key 'evaluate.self_ensemble': {', '.join(map(repr, unknown))} "
                        f"not among the selected variants ({', '.join(variants)}) or pretrained rows "
                        f"({', '.join(pretrained) or 'none'})")

    plan = Plan(
        results=f"{cfg['results_dir']}/{cfg['name']}",
        variants=variants, scales=scales, train_scales=train_scales,
        data_scales=sorted(set(scales) | set(train_scales)),
        datasets=datasets, train_set=cfg["train_data"]["name"], val_set=cfg["val_data"]["name"],
        benchmarks=list(cfg["benchmarks"]), ensemble_variants=ensemble_variants,
        seeds=list(cfg["seeds"]), preset_seed=int(_preset(cfg, sources)["settings"]["seed"]),
        bicubic=bool(cfg["evaluate"]["bicubic"]), ablations_dir=str(cfg["ablations_dir"]),
        downloads_dir=cfg["downloads"]["dir"], train_stages=count_stages(cfg, sources),
        job_per_stage=bool(cfg["train"]["job_per_stage"]), pretrained=pretrained,
    )
    check_inside_results(plan, cfg, sources)
    check_data(plan, cfg, keys, sources)
    # checkpoints given by URL go through the datasets' download rule (checked against their sha256)
    plan.archives.update(weight_downloads)
    return plan


def check_inside_results(plan: Plan, cfg: Mapping, sources: str = "") -> None:
    """Every path the plan writes lies inside <results_dir>/<name>/, itself inside results_dir."""
    root = cfg["results_dir"]
    if not _inside(plan.results, root) or os.path.normpath(plan.results) == os.path.normpath(root):
        raise PlanError(f"config key 'name' ({sources}): {cfg['name']!r} does not name a folder inside "
                        f"results_dir {root!r}")
    paths = (plan.all_evaluations() + plan.all_weights() + plan.all_complexity()
             + [plan.dataset_json(d) for d in plan.datasets]
             + [plan.trained_variant_file(v) for v in plan.variants]
             + [plan.demo_dir(), plan.workflow_config(), plan.report_index()])
    for path in paths:
        if not _inside(path, plan.results):
            raise PlanError(f"config ({sources}): the output {path} would lie outside {plan.results}; "
                            "check the config's name, variant and dataset names")
