"""Figures of the claims report: layer diagnostics over training and depth, and loss curves by condition.

Each function takes tidy frames (see ablations/analyse/diagnostics.py for the diagnostic rows), writes one PNG
atomically and returns its path, or None when there is nothing to draw. Diagnostics against depth are reduced
by `analyse.diagnostics.depth_profile` and drawn by `figures.depth_panel`, the same as in every ablation report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse.diagnostics import MOMENTS, depth_profile
from ablations.report.figures import depth_panel
from ablations.report.toolkit import figure_style, legend_outside, new_figure, save_figure


def contribution_heatmaps(diag: pd.DataFrame, variants: list[str], path: Path) -> Path | None:
    """Layer x training step heatmaps of the branch-to-stream ratio (mean over branches and seeds), one panel per
    variant, on one colour scale."""
    frame = diag[(diag["metric"] == "branch_ratio") & diag["variant"].isin(variants)]
    if frame.empty:
        return None
    import seaborn as sns

    present = [v for v in variants if v in set(frame["variant"])]
    grids = {v: frame[frame["variant"] == v].pivot_table(index="layer", columns="step", values="value",
                                                         aggfunc="mean") for v in present}
    vmax = float(np.nanpercentile(np.concatenate([g.to_numpy().ravel() for g in grids.values()]), 99)) or 1.0
    with figure_style():
        figure = new_figure(4.2 * len(present) + 1.0, 3.4)
        axes = figure.subplots(1, len(present), squeeze=False)[0]
        for i, (ax, variant) in enumerate(zip(axes, present)):
            grid = grids[variant]
            sns.heatmap(grid, ax=ax, vmin=0.0, vmax=vmax, cmap="viridis", cbar=i == len(present) - 1,
                        cbar_kws={"label": "‖branch‖ / ‖stream‖"})
            ax.set_title(variant)
            ax.set_xlabel("training step")
            ax.set_ylabel("layer (block)" if i == 0 else "")
            labels = [str(c) for c in grid.columns]  # the measured steps (columns are not evenly spaced in time
            keep = max(1, len(labels) // 6)          # under the geometric schedule: the labels say which)
            shown = list(range(0, len(labels), keep))
            ax.set_xticks([i + 0.5 for i in shown])
            ax.set_xticklabels([labels[i] for i in shown], rotation=0)
        figure.suptitle("Branch contribution by layer over training (mean over attention/MLP branches and seeds)")
        return save_figure(figure, path)


def by_depth(diag: pd.DataFrame, metric: str, variants: list[str], path: Path, *, ylabel: str,
             log: bool = False) -> Path | None:
    """A diagnostic against depth (x: layer), at initialisation and at the end of training (two panels), one
    line per variant: the median over seeds, with the seeds' range as a band."""
    profile = depth_profile(diag[diag["variant"].isin(variants)], metric)
    if profile.empty:
        return None
    import seaborn as sns

    order = [v for v in variants if v in set(profile["variant"])]
    colours = dict(zip(order, sns.color_palette("tab10", len(order))))  # a claim's variants, none the baseline
    tasks = list(dict.fromkeys(profile["task"]))
    with figure_style():
        figure = new_figure(10.0, 3.8 * len(tasks))
        axes = figure.subplots(len(tasks), 2, sharey=True, squeeze=False)
        for row, task in enumerate(tasks):
            for ax, moment in zip(axes[row], MOMENTS):
                depth_panel(ax, profile[profile["task"] == task], order, colours, moments=(moment,), log=log)
                ax.set_title(f"at {'the end' if moment == MOMENTS[-1] else moment}"
                             + (f" · {task}" if len(tasks) > 1 else ""))
                ax.set_xlabel("layer (0: embedding)")
                ax.set_ylabel(ylabel if ax is axes[row][0] else "")
        legend_outside(figure, list(axes.ravel()), title="variant (median;\nband: range over seeds)", order=order)
        return save_figure(figure, path)


def loss_curves(curves: pd.DataFrame, panels: dict[str, list[str]], path: Path) -> Path | None:
    """Training loss against step, one panel per condition (e.g. depth and warmup), one line per variant and
    seed. `curves` has columns variant, seed, step, loss."""
    if curves.empty:
        return None
    import seaborn as sns

    with figure_style():
        figure = new_figure(4.0 * len(panels) + 1.5, 3.6)
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for i, (ax, (title, variants)) in enumerate(zip(axes, panels.items())):
            data = curves[curves["variant"].isin(variants)].copy()
            data = data[np.isfinite(data["loss"]) & (data["loss"] > 0)]
            if data.empty:
                ax.set_title(f"{title}: no runs")
                continue
            sns.lineplot(data=data, x="step", y="loss", hue="variant", hue_order=variants, units="seed",
                         estimator=None, ax=ax, legend=True, alpha=0.85)
            ax.set_yscale("log")
            ax.set_title(title)
            ax.set_ylabel("training loss" if i == 0 else "")
            ax.legend(fontsize=8, title=None)
        figure.suptitle("Training loss of the tuned runs, one line per seed")
        return save_figure(figure, path)


def score_bars(frame: pd.DataFrame, x: str, y: str, path: Path, *, title: str, ylabel: str,
               reference: float | None = None, reference_label: str = "") -> Path | None:
    """One bar per category (mean over seeds, seeds as dots), with an optional horizontal reference line."""
    if frame.empty:
        return None
    import seaborn as sns

    with figure_style():
        figure = new_figure(max(5.0, 1.1 * frame[x].nunique() + 2.0), 3.6)
        ax = figure.subplots()
        order = list(dict.fromkeys(frame[x]))
        sns.barplot(data=frame, x=x, y=y, order=order, ax=ax, color="#8fb3d9", errorbar=None)
        sns.stripplot(data=frame, x=x, y=y, order=order, ax=ax, color="black", size=4)
        if reference is not None:
            ax.axhline(reference, color="firebrick", linestyle="--", linewidth=1)
            ax.text(len(order) - 0.5, reference, f" {reference_label}", color="firebrick", va="bottom", ha="right",
                    fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", rotation=20)
        return save_figure(figure, path)
