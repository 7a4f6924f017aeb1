"""Report figures as PNG bytes (matplotlib Agg backend, seaborn styling): PSNR vs MACs, training curves."""
from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers/CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..results.runs import RunInfo  # noqa: E402

_DPI = 110


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no timestamp in the metadata so that the same data give the same bytes
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def psnr_vs_macs(complexity: pd.DataFrame, summary: pd.DataFrame, benchmark: str,
                 scales: Sequence[int]) -> tuple[bytes | None, pd.DataFrame]:
    """Scatter of PSNR on `benchmark` vs MACs at 720p, bubble area ~ parameters, one panel per scale.

    Returns (PNG or None when nothing has both numbers, the plotted data).
    """
    single = summary[(summary.benchmark == benchmark) & ~summary.self_ensemble.astype(bool)
                     & (summary.method != "bicubic")]
    data = complexity.merge(single[["method", "scale", "psnr"]], left_on=["variant", "scale"],
                            right_on=["method", "scale"], how="inner")
    data = data[data.macs_720p_g.notna() & data.psnr.notna()]
    data = data[data.scale.isin(list(scales))]
    plotted = data[["variant", "scale", "psnr", "macs_720p_g", "params_m"]].reset_index(drop=True)
    if data.empty:
        return None, plotted
    panels = [s for s in scales if s in set(data.scale)]
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    palette = dict(zip(sorted(set(data.variant)), sns.color_palette("colorblind", len(set(data.variant)))))
    sizes_known = data.params_m.notna().all()
    data = data.rename(columns={"params_m": "params (M)"})
    # bubble AREA proportional to the parameter count: the size scale starts at 0 parameters
    size_norm = (0.0, float(data["params (M)"].max())) if sizes_known else None
    for ax, s in zip(axes[0], panels):
        d = data[data.scale == s]
        sns.scatterplot(data=d, x="macs_720p_g", y="psnr", hue="variant", palette=palette,
                        size="params (M)" if sizes_known else None, sizes=(0, 500), size_norm=size_norm, alpha=0.75,
                        edgecolor="black", linewidth=0.6, ax=ax, legend="brief" if ax is axes[0][-1] else False)
        for r in d.itertuples():
            ax.annotate(r.variant, (r.macs_720p_g, r.psnr), textcoords="offset points", xytext=(7, 5), fontsize=8)
        ax.set_title(f"{benchmark} ×{s}")
        ax.set_xlabel("MACs at 720p output (G)")
        ax.set_ylabel("PSNR (dB)")
        ax.margins(x=0.25, y=0.25)
    leg = axes[0][-1].get_legend()
    if leg is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False,
                        title="")
    return _png(fig), plotted


def _thin(log: pd.DataFrame, points: int = 400) -> pd.DataFrame:
    """Long logs averaged over consecutive bins of rows, so each variant (and seed) is drawn with
    ~`points` points; the seeds of one variant share their logged iterations, so their bins align."""
    out = []
    for _, g in log.groupby(["variant", "seed"], sort=False, dropna=False):
        g = g.sort_values("iteration")
        step = max(1, len(g) // points)
        if step > 1:
            bins = pd.Series(range(len(g)), index=g.index) // step
            g = g.groupby(bins.to_numpy()).agg({"iteration": "last", "loss": "mean", "variant": "first",
                                                "seed": "first"})
        out.append(g)
    return pd.concat(out, ignore_index=True) if out else log


def stage_boundaries(runs: Sequence[RunInfo]) -> dict[int, list[int]]:
    """Per scale, the run iterations after which a later training stage begins (runs with a log)."""
    starts: dict[int, set] = {}
    for run in runs:
        if run.log is not None and not run.log.empty and run.stage_starts:
            starts.setdefault(run.scale, set()).update(run.stage_starts)
    return {scale: sorted(at) for scale, at in starts.items()}


def training_curves(runs: Sequence[RunInfo], scales: Sequence[int]) -> bytes | None:
    """Validation PSNR and training loss vs iteration, one line per variant, one row of panels per scale;
    a dashed vertical line where a training stage begins.

    With several training seeds a line is the mean over the seeds and its band ± 1 sd over them (the
    seeds of a variant train the same stages, so they share the boundaries).
    """
    frames = []
    starts = stage_boundaries(runs)  # scale -> sorted run iterations after which a later stage begins
    for run in runs:
        if run.log is None or run.log.empty:
            continue
        f = run.log.copy()
        f["variant"], f["scale"], f["seed"] = run.variant, run.scale, run.seed
        frames.append(f)
    if not frames:
        return None
    data = pd.concat(frames, ignore_index=True)
    n_seeds = int(data.groupby(["variant", "scale"])["seed"].nunique().max())
    # one value per (variant, iteration) needs no aggregation; over seeds: mean and a ± sd band
    agg = {"estimator": "mean", "errorbar": "sd"} if n_seeds > 1 else {"estimator": None, "errorbar": None}
    over = f" (mean of {n_seeds} seeds, band ± 1 sd)" if n_seeds > 1 else ""
    panels = [s for s in scales if s in set(data.scale)] or sorted(set(data.scale))
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.4 * len(panels)), squeeze=False)
    palette = dict(zip(sorted(set(data.variant)), sns.color_palette("colorblind", len(set(data.variant)))))
    for (ax_val, ax_loss), s in zip(axes, panels):
        d = data[data.scale == s]
        val = d[d.val_psnr.notna()] if "val_psnr" in d else d.iloc[0:0]
        if len(val):
            sns.lineplot(data=val, x="iteration", y="val_psnr", hue="variant", palette=palette, marker="o",
                         ax=ax_val, legend=False, **agg)
        else:
            ax_val.text(0.5, 0.5, "no validation logged", ha="center", va="center", transform=ax_val.transAxes)
        loss = _thin(d[d.loss.notna()])
        sns.lineplot(data=loss, x="iteration", y="loss", hue="variant", palette=palette,
                     ax=ax_loss, linewidth=1, **agg)
        if len(loss) and loss.loss.min() > 0 and loss.loss.max() / loss.loss.min() > 20:
            ax_loss.set_yscale("log")
        for n, at in enumerate(starts.get(s, ()), start=2):
            for ax in (ax_val, ax_loss):  # above the grid, below the curves
                ax.axvline(at, color="0.35", linestyle="--", linewidth=1, zorder=1.5)
            ax_loss.annotate(f"stage {n}", (at, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                             textcoords="offset points", ha="left", va="top", fontsize=8, color="0.35")
        ax_val.set_title(f"validation PSNR ×{s}{over}")
        ax_val.set_ylabel("PSNR (dB)")
        ax_loss.set_title(f"training loss (L1) ×{s}" + (" (binned means)" if len(loss) < d.loss.notna().sum() else "")
                          + over)
        ax_loss.set_ylabel("loss")
        if ax_loss.get_legend() is not None:
            sns.move_legend(ax_loss, "upper left", bbox_to_anchor=(1.02, 1), frameon=False, title="variant")
    fig.tight_layout()
    return _png(fig)
