"""Compiling generated tables/*.tex the way a user would: \\input into a minimal document with
exactly the packages the file's first line names, under pdflatex (and lualatex/xelatex)."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: document classes of the test: one column, and two columns (IEEEtran where installed)
LAYOUTS = ("onecolumn", "twocolumn")
OVERFULL = re.compile(r"^Overfull \\[hv]box \((?P<pt>[0-9.]+)pt too (?:wide|high)\)(?P<where>.*)$", re.M)
WARNING = re.compile(r"^(?:LaTeX|Package|Class) (?:\S+ )?Warning: .*$|^LaTeX Font Warning: .*$"
                     r"|^Missing character: .*$|^Underfull \\[hv]box.*$", re.M)
NEEDS = re.compile(r"^% .*\\usepackage\{([^}]*)\}")


def engine(name: str) -> str | None:
    return shutil.which(name)


def kpse_has(filename: str) -> bool:
    tool = shutil.which("kpsewhich")
    if tool is None:
        return False
    res = subprocess.run([tool, filename], capture_output=True, text=True)
    return res.returncode == 0 and bool(res.stdout.strip())


def needed_packages(tex: Path) -> list[str]:
    """The packages named on the first line of a generated table."""
    first = tex.read_text().splitlines()[0]
    m = NEEDS.match(first)
    if m is None:
        raise AssertionError(f"{tex}: the first line does not name the packages it needs: {first!r}")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def document_class(layout: str) -> tuple[str, str]:
    """(class line, description) of a layout."""
    if layout == "onecolumn":
        return r"\documentclass{article}", "article (one column)"
    if kpse_has("IEEEtran.cls"):
        return r"\documentclass[conference]{IEEEtran}", "IEEEtran (two columns)"
    return r"\documentclass[twocolumn]{article}", "article twocolumn (IEEEtran not installed)"


@dataclass
class Build:
    returncode: int
    log: str
    tables: int          # captions of table floats written to the .aux
    pdf: Path

    def overfull(self, limit_pt: float = 1.0) -> list[str]:
        return [m.group(0) for m in OVERFULL.finditer(self.log) if float(m.group("pt")) > limit_pt]

    def warnings(self) -> list[str]:
        return [m.group(0) for m in WARNING.finditer(self.log)]

    def errors(self) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith("!")]


def compile_tables(tex_files: list[Path], workdir: Path, *, layout: str = "onecolumn",
                   engine_name: str = "pdflatex", timeout: int = 300) -> Build:
    """\\input every file into one document (a paragraph of text between them, as in a paper)."""
    workdir.mkdir(parents=True, exist_ok=True)
    packages: list[str] = []
    for tex in tex_files:
        packages += [p for p in needed_packages(tex) if p not in packages]
    cls, _ = document_class(layout)
    body = []
    for tex in tex_files:
        shutil.copy(tex, workdir / tex.name)
        body += [r"Text before the table. " * 20, "", r"\input{" + tex.stem + "}", ""]
    doc = "\n".join([cls, r"\usepackage{" + ",".join(packages) + "}", r"\begin{document}", *body,
                     r"\end{document}", ""])
    (workdir / "doc.tex").write_text(doc)
    tool = engine(engine_name)
    assert tool is not None, f"{engine_name} is not installed"
    for _ in range(2):  # the second run has the labels of the first (no "Label(s) may have changed")
        res = subprocess.run([tool, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=workdir,
                             capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            break
    log_path = workdir / "doc.log"
    log = log_path.read_text(errors="replace") if log_path.is_file() else res.stdout
    aux = workdir / "doc.aux"
    n = len(re.findall(r"\\@writefile\{lot\}\{\\contentsline \{table\}", aux.read_text())) if aux.is_file() else 0
    return Build(res.returncode, log, n, workdir / "doc.pdf")
