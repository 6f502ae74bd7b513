"""Figures of the claims report: layer diagnostics over training and depth, and loss curves by condition.

Each function takes tidy frames (see ablations/diagnostics.py for the diagnostic rows), writes one PNG
atomically and returns its path, or None when there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ablations.report.figures import _figure, _save, _style


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
    with _style():
        figure = _figure(4.2 * len(present) + 1.0, 3.4)
        axes = figure.subplots(1, len(present), squeeze=False)[0]
        for i, (ax, variant) in enumerate(zip(axes, present)):
            grid = grids[variant]
            sns.heatmap(grid, ax=ax, vmin=0.0, vmax=vmax, cmap="viridis", cbar=i == len(present) - 1,
                        cbar_kws={"label": "‖branch‖ / ‖stream‖"})
            ax.set_title(variant)
            ax.set_xlabel("training step")
            ax.set_ylabel("layer (block)" if i == 0 else "")
            ticks = ax.get_xticks()
            labels = [str(c) for c in grid.columns]
            keep = max(1, len(labels) // 6)
            ax.set_xticks(ticks[::keep])
            ax.set_xticklabels(labels[::keep], rotation=0)
        figure.suptitle("Branch contribution by layer over training (mean over attention/MLP branches and seeds)")
        return _save(figure, path)


def by_depth(diag: pd.DataFrame, metric: str, variants: list[str], path: Path, *, ylabel: str,
             log: bool = False) -> Path | None:
    """A diagnostic against depth (x: layer), at the first and the last measured step of each run, one line per
    variant (mean over seeds, with the seeds' range as a band)."""
    frame = diag[(diag["metric"] == metric) & diag["variant"].isin(variants)].copy()
    if frame.empty:
        return None
    import seaborn as sns

    first = frame.groupby(["variant", "seed"])["step"].transform("min")
    last = frame.groupby(["variant", "seed"])["step"].transform("max")
    frame["when"] = np.where(frame["step"] == first, "initialisation", np.where(frame["step"] == last, "end", ""))
    frame = frame[frame["when"] != ""]
    frame = frame.groupby(["variant", "seed", "when", "layer"], as_index=False)["value"].mean()
    if log:
        frame = frame[frame["value"] > 0]
    with _style():
        figure = _figure(10.0, 3.8)
        axes = figure.subplots(1, 2, sharey=True)
        order = [v for v in variants if v in set(frame["variant"])]
        for ax, when in zip(axes, ("initialisation", "end")):
            data = frame[frame["when"] == when]
            sns.lineplot(data=data, x="layer", y="value", hue="variant", hue_order=order, marker="o", ax=ax,
                         errorbar=("pi", 100), legend=when == "end")
            ax.set_title(f"at {when}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("layer (0: embedding)")
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
        if axes[1].get_legend() is not None:
            sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.02, 1.0), title="variant")
        return _save(figure, path)


def loss_curves(curves: pd.DataFrame, panels: dict[str, list[str]], path: Path) -> Path | None:
    """Training loss against step, one panel per condition (e.g. depth and warmup), one line per variant and
    seed. `curves` has columns variant, seed, step, loss."""
    if curves.empty:
        return None
    import seaborn as sns

    with _style():
        figure = _figure(4.0 * len(panels) + 1.5, 3.6)
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
        return _save(figure, path)


def score_bars(frame: pd.DataFrame, x: str, y: str, path: Path, *, title: str, ylabel: str,
               reference: float | None = None, reference_label: str = "") -> Path | None:
    """One bar per category (mean over seeds, seeds as dots), with an optional horizontal reference line."""
    if frame.empty:
        return None
    import seaborn as sns

    with _style():
        figure = _figure(max(5.0, 1.1 * frame[x].nunique() + 2.0), 3.6)
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
        return _save(figure, path)
