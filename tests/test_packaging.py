"""Packaging invariants: environment.yml mirrors pyproject.toml; torch is pinned exactly."""
import tomllib

import yaml


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def _norm(req: str) -> str:
    return req.replace(" ", "").lower()


def _env(path):
    """(conda packages, pip requirements, the `-e` path) of a conda environment file."""
    env = yaml.safe_load(path.read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, path
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    editable = [r.split(None, 1)[1] for r in pip_sections[0] if r.startswith("-e")]
    assert len(editable) == 1, f"{path} must install the msnlan package itself (-e <checkout>)"
    return conda, {_norm(r) for r in pip_sections[0] if not r.startswith("-e")}, editable[0]


def test_environment_yml_pip_section_mirrors_pyproject(repo_root):
    project = _pyproject(repo_root)["project"]
    expected = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["workflow"]}
    _, listed, editable = _env(repo_root / "environment.yml")
    assert listed == expected, f"only in pyproject: {expected - listed}; only in environment.yml: {listed - expected}"
    assert editable == "."


def test_workflow_env_installs_as_environment_yml(repo_root):
    """The rules' conda environment (`--sdm conda`) installs what environment.yml installs, and its
    `-e` path (relative to the file: conda runs pip beside it) is this checkout."""
    env_file = repo_root / "workflow" / "envs" / "msnlan.yaml"
    conda, listed, editable = _env(env_file)
    main_conda, main_listed, _ = _env(repo_root / "environment.yml")
    assert (conda, listed) == (main_conda, main_listed), (
        f"only in environment.yml: {main_listed - listed}; only in {env_file.name}: {listed - main_listed}")
    assert (env_file.parent / editable).resolve() == repo_root.resolve()


def test_torch_pinned_exactly_and_no_torchvision(repo_root):
    deps = [_norm(d) for d in _pyproject(repo_root)["project"]["dependencies"]]
    assert "torch==2.13.0" in deps
    assert not any(d.startswith("torchvision") for d in deps)


def test_console_script_entry(repo_root):
    assert _pyproject(repo_root)["project"]["scripts"]["msnlan"] == "msnlan.cli:main"
