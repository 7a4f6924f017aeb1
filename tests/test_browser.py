"""The report opened in headless Chromium: it loads offline, its tables and images are in the DOM,
and a screenshot is taken (kept under $MSNLAN_SCREENSHOT_DIR when set, for a person to look at)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from msnlan.cli import main
from test_report_fabricate import fabricate_results, write_config

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=90)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (/usr/bin/chromium) is not installed")
def test_report_in_headless_chromium(tmp_path):
    res = fabricate_results(tmp_path, self_ensemble=("msnlan",))
    cfg = write_config(tmp_path / "config.yaml")
    out = res / "report" / "index.html"
    assert main(["report", "--results", str(res), "--config", str(cfg), "--out", str(out)]) == 0
    url = out.resolve().as_uri()

    dom = _chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for table in ("main-table", "ablation-table", "complexity-table"):
        assert re.search(rf'<table class="paper" id="{table}">', html), table
    assert len(re.findall(r"<img ", html)) >= 2 + 2 * 6  # two plots; 2 visuals of overview + 5 crops
    assert "DEMO — not the paper's setting" in html
    # the best cell of every ranked column is bold in the rendered DOM
    assert html.count("<b>") >= 4 and html.count("<u>") >= 4

    shot = tmp_path / "report.png"
    run = _chromium([f"--screenshot={shot}", "--window-size=1400,3000", url], tmp_path / "profile-shot")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1400, 3000)
        # not a blank page: the rendered report has plenty of distinct colours (text, plots, banner)
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100
    keep = os.environ.get("MSNLAN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
