"""Packaging invariants: environment.yml mirrors pyproject.toml; torch is pinned exactly."""
import tomllib

import yaml


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def _norm(req: str) -> str:
    return req.replace(" ", "").lower()


def test_environment_yml_pip_section_mirrors_pyproject(repo_root):
    project = _pyproject(repo_root)["project"]
    expected = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["workflow"]}
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    listed = {_norm(r) for r in pip_sections[0] if not r.startswith("-e")}
    assert listed == expected, f"only in pyproject: {expected - listed}; only in environment.yml: {listed - expected}"
    assert "-e ." in pip_sections[0], "environment.yml must install the msnlan package itself"


def test_torch_pinned_exactly_and_no_torchvision(repo_root):
    deps = [_norm(d) for d in _pyproject(repo_root)["project"]["dependencies"]]
    assert "torch==2.13.0" in deps
    assert not any(d.startswith("torchvision") for d in deps)


def test_console_script_entry(repo_root):
    assert _pyproject(repo_root)["project"]["scripts"]["msnlan"] == "msnlan.cli:main"
