"""`msnlan report`: every table, figure and crop of a results folder in one offline HTML file,
plus LaTeX/Markdown/CSV versions of the tables under <out dir>/tables/ and the figures as PNGs.

The templates are package data, msnlan/templates ($MSNLAN_REPORTS overrides the folder), rendered by
jinja2 with autoescaping on: names from files (variants, images) can never inject markup.
"""
from __future__ import annotations

import base64
import os
from importlib import resources
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import jinja2
import pandas as pd

from ..errors import ConfigError
from ..io_utils import atomic_path, write_text_atomic
from .ablation import AblationSettings, build_ablation_table
from .collect import Collected, collect
from .complexity_table import build_complexity_table
from .main_table import build_main_table, main_table_frame, method_order, pretrained_mask
from .provenance_info import (demo_banner, demo_split, protocol_overview, protocol_rows, report_environment,
                              run_rows)
from .published import STANDARD_COUNTS, load_published
from ..results.complexity import complexity_frame, find_complexity
from ..results.runs import recorded_variant
from .settings import ReportSettings, load_settings
from .tables import Table, to_latex, to_markdown

TEMPLATE = "report.html.j2"


def reports_dir() -> Path:
    """Folder of the report templates: $MSNLAN_REPORTS, else the package's msnlan/templates."""
    env = os.environ.get("MSNLAN_REPORTS")
    path = Path(env) if env else Path(str(resources.files("msnlan").joinpath("templates")))
    if not (path / TEMPLATE).is_file():
        raise ConfigError(f"report template {path / TEMPLATE} does not exist; set MSNLAN_REPORTS to the folder "
                          "holding report.html.j2 and report.css")
    return path


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(reports_dir())), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_frame(table: Table) -> pd.DataFrame:
    """A rendered table in long form: what each printed cell says and how it is marked."""
    rows = []
    for section in table.sections:
        for group in section.groups:
            for row in group.rows:
                for col in table.columns:
                    cell = row.cells.get(col.key)
                    if cell is None:
                        continue
                    rows.append({"section": section.label, "group": group.label, "row": row.label,
                                 "column_group": col.group, "column": col.label, "text": cell.text, "detail": cell.detail,
                                 "value": cell.value, "mark": cell.mark or "", "notes": "".join(cell.notes),
                                 "competes": row.competes})
    return pd.DataFrame(rows, columns=["section", "group", "row", "column_group", "column", "text", "detail", "value",
                                       "mark", "notes", "competes"])


def table_source(name: str, text: str) -> dict:
    """A table file as the HTML page offers it beside the table: a download link that carries the
    file in a data URI (the page stays one self-contained file) and the text to select and copy."""
    kind = "LaTeX" if name.endswith(".tex") else "Markdown"
    mime = "text/x-tex" if name.endswith(".tex") else "text/markdown"
    uri = f"data:{mime};charset=utf-8;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")
    return {"name": name, "kind": kind, "uri": uri, "text": text}


@dataclass
class ReportOutput:
    html: Path
    tables: list[Path]
    figures: list[Path]
    warnings: list[str]


def _order(settings: ReportSettings, present: Sequence, what: str) -> list:
    """Configured order first (the config's), then anything else present (sorted)."""
    present = list(dict.fromkeys(present))
    configured = [x for x in getattr(settings, what) if x in present]
    return configured + sorted(set(present) - set(configured))


def _variant_order(settings: ReportSettings, variants: Sequence[str]) -> list[str]:
    order = _order(settings, variants, "variants")
    if not settings.variants and settings.reference in order:  # no configured order: full model first
        order.remove(settings.reference)
        order.insert(0, settings.reference)
    return order


def _resolver(collected: Collected, settings: ReportSettings):
    from ..errors import MsnlanError
    from ..variants import resolve_variant

    def resolve(variant: str, scale: int):
        found, source = recorded_variant(variant, collected.run(variant, scale))
        if found is not None and source != "unknown" and not source.startswith("variant file"):
            return found, source
        for ev in collected.evals:  # the evaluation recorded the settings of the network it ran
            if ev.method == variant and ev.scale == scale and isinstance(ev.protocol.get("variant_model"), dict):
                return ({"name": variant, "description": ev.protocol.get("variant_description") or "",
                         "model": ev.protocol["variant_model"]}, str(ev.protocol_path))
        if settings.ablations_dir is not None and (settings.ablations_dir / f"{variant}.yaml").is_file():
            try:
                return resolve_variant(settings.ablations_dir / f"{variant}.yaml"), "variant file"
            except MsnlanError:
                pass
        return found, source
    return resolve


def build_report(results_dir: str | os.PathLike, config: str | os.PathLike | None, out: str | os.PathLike, *,
                 published: str | os.PathLike | None = None, visual_images: Sequence[str] | None = None,
                 compete: Sequence[str] | None = None, no_visuals: bool = False, latex_fit: str | None = None,
                 latex_split_by_scale: bool | None = None) -> ReportOutput:
    """Render the report of `results_dir` to `out` (HTML) and its tables/figures beside it.
    `latex_fit` and `latex_split_by_scale` override the config's report.latex settings."""
    from .plots import psnr_vs_macs, training_curves
    from .visuals import build_visuals, select_images

    results_dir, out = Path(results_dir), Path(out)
    settings = load_settings(config)
    if visual_images:
        settings.visual_images = list(visual_images)
    if compete:
        settings.compete = list(compete)
    if latex_fit is not None:
        settings.latex = replace(settings.latex, fit=latex_fit)
    if latex_split_by_scale is not None:
        settings.latex = replace(settings.latex, split_by_scale=latex_split_by_scale)
    collected = collect(results_dir)
    warnings = list(collected.warnings)
    summary, per_image = collected.summary, collected.per_image

    benchmarks = _order(settings, summary.benchmark, "benchmarks")
    missing_bench = [b for b in settings.benchmarks if b not in set(summary.benchmark)]
    if missing_bench:
        warnings.append(f"configured benchmark(s) without any evaluation: {', '.join(missing_bench)}")
    scales = _order(settings, sorted(set(int(s) for s in summary.scale)), "scales")
    # rows of weights not trained by the workflow: in the main table's own group and the visual
    # comparison (by their label), not in the ablation or complexity tables
    released = pretrained_mask(summary)
    pretrained_methods = set(summary.method[released])
    variants = _variant_order(settings, [v for v in summary.variant[~released] if v])
    methods = method_order(summary.method[~released], variants) + method_order(summary.method[released])
    labels = {m: lab for m, lab in zip(summary.method[released], summary.label[released])}

    pub_path = published or settings.published
    pub = load_published(pub_path)
    pub_shown = pub[pub.benchmark.isin(benchmarks) & pub.scale.isin(scales)]

    main = build_main_table(summary, benchmarks, scales, pub_shown, variants=variants, compete=settings.compete)
    resolve = _resolver(collected, settings)
    ablation, ablation_df = build_ablation_table(
        per_image[~per_image.method.isin(pretrained_methods)], benchmarks, scales, variants, resolve,
        AblationSettings(settings.reference, settings.resamples, settings.seed, settings.level))
    if settings.reference not in set(summary.method):
        warnings.append(f"the ablation reference {settings.reference!r} was not evaluated: no differences shown")
    comp_items = find_complexity(results_dir)
    comp_df = complexity_frame(comp_items)
    plus = {(r.variant, int(r.scale)) for r in summary[~released].itertuples() if r.self_ensemble}
    complexity = build_complexity_table(comp_df, scales, variants, plus) if len(comp_df) else None

    figures: dict[str, bytes] = {}
    scatter_data = pd.DataFrame()
    if len(comp_df) and benchmarks:
        png, scatter_data = psnr_vs_macs(comp_df, summary, benchmarks[0], scales)
        if png:
            figures["psnr_vs_macs.png"] = png
    curves = training_curves(collected.runs, scales)
    if curves:
        figures["training_curves.png"] = curves

    seeds = collected.seeds()
    # the visual comparison shows one seed's outputs: the config's first seed (else the smallest found)
    visual_seed = next((k for k in settings.seeds if k in seeds), seeds[0] if seeds else None)
    visuals, visual_scales, visual_images_used = [], [], []
    if not no_visuals:
        visual_scales = [s for s in (settings.visual_scales or [max(scales)]) if s in scales]
        if settings.visual_scales and not visual_scales:
            warnings.append(f"report.visual_scales {settings.visual_scales} has no evaluated scale")
        visual_images_used = select_images(per_image, benchmarks, settings.visual_images)
        visuals, vis_warn = build_visuals(results_dir, collected.evals, per_image, visual_images_used,
                                          visual_scales, methods, settings.crop_boxes, settings.crop_size,
                                          visual_seed, labels=labels)
        warnings += vis_warn

    tables = [t for t in (main, ablation, complexity) if t is not None and t.sections]
    out_dir = out.parent
    written: list[Path] = []
    sources: dict[str, list[dict]] = {}
    for t in tables:
        for suffix, text in ((".tex", to_latex(t, settings.latex)), (".md", to_markdown(t))):
            path = out_dir / "tables" / f"{t.key}{suffix}"
            write_text_atomic(path, text)
            written.append(path)
            sources.setdefault(t.key, []).append(table_source(path.name, text))
    tidy = {"main.csv": main_table_frame(summary, pub_shown), "ablation.csv": ablation_df,
            "complexity.csv": comp_df, "psnr_vs_macs.csv": scatter_data,
            **{f"{t.key}_cells.csv": table_frame(t) for t in tables}}
    for name, frame in tidy.items():
        path = out_dir / "tables" / name
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        written.append(path)
    fig_paths = []
    for name, png in figures.items():
        path = out_dir / "figures" / name
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        fig_paths.append(path)

    prot_rows = protocol_rows(collected.evals)
    context = {
        "title": f"MSNLAN results{': ' + settings.name if settings.name else ''}",
        "results_dir": str(results_dir),
        "banner": demo_banner(collected.runs),
        "warnings": warnings,
        "benchmarks": benchmarks, "scales": scales, "variants": variants,
        "standard_counts": STANDARD_COUNTS,
        "n_images": {(int(s), b): sorted({int(n) for n in g.n_images})
                     for (s, b), g in summary.groupby(["scale", "benchmark"], sort=True)},
        "main": main, "ablation": ablation, "complexity": complexity,
        "published_path": pub.attrs.get("path", str(pub_path)),
        "published_benchmarks": [b for b in benchmarks if b in STANDARD_COUNTS],
        "scatter": _data_uri(figures.get("psnr_vs_macs.png")), "scatter_benchmark": benchmarks[0] if benchmarks else "",
        "curves": _data_uri(figures.get("training_curves.png")),
        "visuals": visuals, "visual_scales": visual_scales, "visuals_disabled": no_visuals,
        "runs": run_rows(collected.runs),
        "seeds": seeds, "visual_seed": visual_seed,
        "demo_split": demo_split(results_dir, settings.raw),
        "protocol_overview": protocol_overview(prot_rows), "protocol_rows": prot_rows,
        "config_text": settings.path.read_text() if settings.path else "(no config given)",
        "config_path": str(settings.path) if settings.path else "",
        "environment": report_environment(),
        "bootstrap": {"resamples": settings.resamples, "seed": settings.seed, "level": settings.level,
                      "reference": settings.reference},
        "table_files": sorted(p.name for p in written),
        "table_sources": sources,
        "complexity_sources": [str(p) for _, _, p, _ in comp_items],
    }
    html = _environment().get_template(TEMPLATE).render(**context)
    write_text_atomic(out, html)
    return ReportOutput(out, written, fig_paths, warnings)

