"""The package stands alone: its wheel, installed into a bare folder and used from outside the
repository, builds a model, knows the five standard variants and renders a report."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from test_report_fabricate import fabricate_results

REPO = Path(__file__).resolve().parent.parent
STANDARD = ("msnlan", "no_dense_skips", "no_msnlab", "rcab", "single_scale")

OUTSIDE = textwrap.dedent('''
    import sys
    from pathlib import Path

    site, results, out = map(Path, sys.argv[1:4])
    import msnlan
    import msnlan.report.render as render
    from msnlan import build_model, list_variants
    from msnlan.models.convert import authors_key_map, _expected_shapes

    for module in (msnlan, render):
        assert Path(module.__file__).is_relative_to(site), module.__file__
    assert render.reports_dir().is_relative_to(site)
    model = build_model("msnlan", 2)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    print("variants:", " ".join(list_variants()))
    assert set(authors_key_map(2).values()) <= set(_expected_shapes(2))
    render.build_report(results, None, out, no_visuals=True)
    print("report:", out.stat().st_size)
''')


@pytest.mark.slow
def test_wheel_installed_elsewhere_builds_lists_and_renders(tmp_path):
    # build from a copy holding only what the wheel is made of, so nothing leaks from the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "msnlan", src / "msnlan", ignore=shutil.ignore_patterns("__pycache__"))
    run = dict(capture_output=True, text=True, timeout=300)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "wheel")], **run)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "wheel").glob("msnlan-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                                str(site), str(wheel)], **run)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    results = fabricate_results(tmp_path / "fab", n_images=2, scales=(2,))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -S: no site-packages processing, so this checkout's editable install cannot answer imports;
    # the dependencies come from this interpreter's site-packages, msnlan only from the wheel
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])}
    env.pop("MSNLAN_ABLATIONS", None)
    env.pop("MSNLAN_REPORTS", None)
    out = elsewhere / "report" / "index.html"
    proc = subprocess.run([sys.executable, "-S", "-c", OUTSIDE, str(site), str(results), str(out)],
                          cwd=elsewhere, env=env, **run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = proc.stdout.split("variants:")[1].split("\n")[0].split()
    assert set(STANDARD) <= set(listed), listed
    assert out.is_file() and "no_msnlab" in out.read_text()
