"""The workflow meets the Snakemake workflow catalog's standards: `snakemake --lint` has nothing to
say on the shipped configs, `snakefmt --check workflow/` passes, every rule that runs the package
names its conda environment, the config schema documents every key, and the workflow deploys with
snakedeploy (as a module) and plans the same jobs there.

The lint and deployment checks run Snakemake in a subprocess in a temporary folder; the shipped
configs' data folders are stood in for by folders holding one small image each (the lints do not
depend on the data, but the plan checks that every folder exists before any rule is linted).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from msnlan.plan import DEMO_PREFIX
from test_workflow import output_of, planned_jobs

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
ENV_FILE = REPO / "workflow" / "envs" / "msnlan.yaml"
SHIPPED_CONFIGS = ("config.yaml", "demo-seeds.yaml", "t91.yaml", "paper.yaml")


def snakemake(workdir: Path, *args: str, snakefile: Path = SNAKEFILE,
              timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def stand_in_data(workdir: Path, config: Path) -> None:
    """Every data folder the config names (relative paths from `workdir`), with one 24x24 image."""
    from PIL import Image

    cfg = yaml.safe_load(config.read_text())
    paths = [cfg["train_data"]["path"], cfg["val_data"]["path"], *cfg["benchmarks"].values()]
    for path in paths:
        if path.startswith(DEMO_PREFIX):
            continue
        folder = workdir / path
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 24, 3), 128, np.uint8)).save(folder / "img.png")


def workdir_for(root: Path, config: Path) -> Path:
    """A working directory as the repository root looks to the config: the ablations and config
    folders (checksums table) and stand-ins for the data folders."""
    workdir = root / "run"
    workdir.mkdir()
    (workdir / "ablations").symlink_to(REPO / "ablations")
    (workdir / "config").symlink_to(REPO / "config")
    stand_in_data(workdir, config)
    return workdir


def lint_findings(text: str) -> list[str]:
    """`snakemake --lint` output as "<item>: <finding>" lines."""
    findings, item = [], None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            item = line[len("Lints for "):].rstrip(":")
        elif item and re.match(r"    \* ", line):
            findings.append(f"{item}: {line.strip()[2:]}")
    return findings


@pytest.mark.parametrize("config", SHIPPED_CONFIGS)
def test_lint_reports_nothing(tmp_path, config):
    configfile = REPO / "config" / config
    proc = snakemake(workdir_for(tmp_path, configfile), "--configfile", str(configfile), "--lint")
    text = output_of(proc)
    findings = lint_findings(text)
    assert not findings, "\n".join(findings)
    assert proc.returncode == 0, text


def test_snakefmt_check_passes():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "workflow"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, "run `snakefmt workflow/`:\n" + output_of(proc)[-6000:]


def rule_blocks(path: Path) -> dict[str, str]:
    """rule name -> its text, for a Snakefile or .smk file."""
    text = path.read_text()
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"(?m)^rule (\w+):", text)]
    ends = [s for s, _ in starts[1:]] + [len(text)]
    return {name: text[start:end] for (start, name), end in zip(starts, ends)}


def test_every_rule_that_runs_the_package_names_its_conda_env():
    """Every rule with a shell command or script (they all run msnlan) names workflow/envs/msnlan.yaml
    (`snakemake --lint` only checks that each names some environment)."""
    files = [SNAKEFILE, *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    runs = {}
    for path in files:
        for name, block in rule_blocks(path).items():
            if re.search(r"(?m)^    (shell|script):", block):
                env = re.search(r'(?m)^    conda:\n        "([^"]+)"', block)
                runs[name] = env and (path.parent / env.group(1)).resolve()
    assert len(runs) >= 10, runs          # train, evaluate, complexity, report, data rules...
    wrong = {name: env for name, env in runs.items() if env != ENV_FILE.resolve()}
    assert not wrong, f"rules without `conda: {ENV_FILE.relative_to(REPO)}` (path from the rule file): {wrong}"


@pytest.mark.skipif(shutil.which("conda") is None, reason="`--sdm conda` needs conda on PATH")
def test_sdm_conda_jobs_call_the_env_python(tmp_path):
    """With `--sdm conda` the jobs call the python of the rule's environment, not the interpreter
    running Snakemake (a dry run: nothing is created)."""
    configfile = REPO / "config" / "config.yaml"
    proc = snakemake(workdir_for(tmp_path, configfile), "-n", "-p", "--sdm", "conda")
    assert planned_jobs(proc)["demo_data"] == 1
    text = output_of(proc)
    assert "python -m msnlan demo-data" in text and f"{sys.executable} -m msnlan" not in text, text


def source_copy(dest: Path) -> Path:
    """The checkout's source files (tracked, and untracked but not ignored): what a clone holds,
    without the virtual environment and results."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the checkout's file list needs git: {exc}")
    for name in filter(None, listed.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)
    return dest


@pytest.mark.slow
def test_snakedeploy_deployment_plans_the_same_jobs(tmp_path):
    """`snakedeploy deploy-workflow <checkout> <dest>` (offline: a local source is copied, not
    cloned) writes dest/workflow/Snakefile with `module msnlan: ... config: config` and
    `use rule * from msnlan`, and copies config/; the deployed workflow, given the variant folder
    as config/README.md says, dry-runs the demo config with the same jobs as the checkout."""
    from snakedeploy.deploy import deploy

    src = source_copy(tmp_path / "src")
    dest = tmp_path / "dest"
    deploy(str(src), name="msnlan", tag=None, branch="main", dest_path=dest)
    deployed = dest / "workflow" / "Snakefile"
    text = deployed.read_text()
    assert re.search(r"module msnlan:\s+snakefile:\s+\"workflow/Snakefile\"\s+config:\s+config", text), text
    assert "use rule * from msnlan" in text
    assert (dest / "config" / "config.yaml").read_text() == (REPO / "config" / "config.yaml").read_text()
    # snakedeploy 0.17.1 writes a local source's Snakefile path relative to the source repository,
    # while Snakemake reads a module's path relative to the deploying Snakefile
    # (dest/workflow/workflow/Snakefile): name the source's Snakefile by its full path instead
    deployed.write_text(text.replace('"workflow/Snakefile"', f'"{src / "workflow" / "Snakefile"}"'))
    shutil.copytree(src / "ablations", dest / "ablations")

    proc = snakemake(dest, "-n", "-p", snakefile=deployed)
    jobs = planned_jobs(proc)
    assert "msnlan demo-data --out results/demo/demo" in output_of(proc)

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "ablations").symlink_to(REPO / "ablations")
    (checkout / "config").symlink_to(REPO / "config")
    assert jobs == planned_jobs(snakemake(checkout, "-n"))
    assert jobs["train"] == 2 * len(list((REPO / "ablations").glob("*.yaml")))


# ---- the config schema and the usage page ----

def schema_keys_without_description(node: dict, defs: dict, prefix: str = "") -> list[str]:
    """Config keys (dotted) whose schema entry, or the definition it refers to, has no description."""
    missing = []
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        target = defs.get(sub.get("$ref", "").rsplit("/", 1)[-1], {}) if "$ref" in sub else sub
        if not (sub.get("description") or target.get("description")):
            missing.append(name)
        missing += schema_keys_without_description(target if "$ref" in sub else sub, defs, name + ".")
    return missing


def test_config_schema_documents_every_key(repo_root):
    schema = yaml.safe_load((repo_root / "msnlan" / "schemas" / "config.schema.yaml").read_text())
    assert schema_keys_without_description(schema, schema.get("$defs", {})) == []


def test_catalog_layout(repo_root):
    """What the catalog and snakedeploy look for: workflow/Snakefile, config/config.yaml,
    config/README.md (the usage page, naming every top-level key), the config schema under
    workflow/schemas/ (the package's own file), and the catalog's settings file."""
    schema_link = repo_root / "workflow" / "schemas" / "config.schema.yaml"
    assert schema_link.resolve() == (repo_root / "msnlan" / "schemas" / "config.schema.yaml").resolve()
    schema = yaml.safe_load(schema_link.read_text())
    usage = (repo_root / "config" / "README.md").read_text()
    undocumented = [key for key in schema["properties"] if f"`{key}" not in usage]
    assert undocumented == [], f"config/README.md does not name {undocumented}"
    assert "snakedeploy deploy-workflow" in usage and "--sdm conda" in usage
    catalog = yaml.safe_load((repo_root / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True
