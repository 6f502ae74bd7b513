"""The report's figures, as PNG files (seaborn on matplotlib's Agg canvas).

Figures are built on `matplotlib.figure.Figure` objects, never through pyplot, so drawing them changes no
global backend or state and works without a display. Each is written atomically (a temporary file renamed
over the target). Every function returns the path it wrote, or None when there is nothing to draw.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse import stats
from ablations.analyse.aggregate import BROKEN_BELOW, MARKS, Aggregate, normalised_runs, read_curves

DPI = 120


def verdict_legend(margin: float) -> str:
    """What the marks of the heatmap mean, with the equivalence margin of this report."""
    return (f"▲ better   ▼ worse   (Welch t-test vs baseline, Holm-corrected p < 0.05)   ≈ equivalent (90% CI of "
            f"the normalised difference within ±{margin:g}: TOST)\n? inconclusive (neither shown)   "
            f"✗ broken (normalised score < {BROKEN_BELOW:g} or most runs diverged/failed)   "
            f"· untested (< 2 runs on a side)")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the figures private
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _panels(n: int):
    """A figure for one panel per task, three to a row: (figure, rows, columns)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    return _figure(4.6 * ncols + 2.0, 3.4 * nrows + 0.6), nrows, ncols


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")  # constrained layout fits everything in
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def _style():
    import seaborn as sns

    return sns.axes_style("whitegrid")


def palette(variants: list[str], baseline: str) -> dict[str, tuple]:
    """One colour per variant, the same in every figure: the baseline black, the others from tab10."""
    import seaborn as sns

    others = [v for v in variants if v != baseline]
    colours = sns.color_palette("tab10", max(len(others), 1))
    mapping = {v: colours[i % len(colours)] for i, v in enumerate(others)}
    mapping[baseline] = (0.1, 0.1, 0.1)
    return mapping


def _direction(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def _variants(agg: Aggregate) -> list[str]:
    return list(agg.resilience["variant"]) or list(dict.fromkeys(agg.cells["variant"]))


def _tasks(agg: Aggregate) -> list[str]:
    return list(dict.fromkeys(agg.cells["task"]))


def _legend_outside(figure, axes, title: str | None = None, order: list[str] | None = None) -> None:
    """One legend for the whole figure, right of the plots, from every axes' labelled artists (the labels in
    `order` first, in that order)."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels and not label.startswith("_"):
                handles.append(handle)
                labels.append(label)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if order:
        rank = {label: i for i, label in enumerate(order)}
        pairs = sorted(zip(handles, labels), key=lambda p: (rank.get(p[1], len(rank)), labels.index(p[1])))
        handles, labels = [h for h, _ in pairs], [lab for _, lab in pairs]
    if handles:
        figure.legend(handles, labels, loc="outside right upper", title=title, frameon=False)


# ---------------------------------------------------------------------------------------------- heatmap
def resilience_heatmap(agg: Aggregate, path: Path) -> Path | None:
    """Variants x tasks coloured by normalised score (chance 0, baseline 1), annotated with the value and the
    verdict mark, plus a last column with the resilience score and its interval."""
    import seaborn as sns

    cells, variants, tasks = agg.cells, _variants(agg), _tasks(agg)
    if cells.empty:
        return None
    metric = cells.drop_duplicates("task").set_index("task")
    columns = [f"{t}\n({metric.at[t, 'metric'].replace('_', ' ')})" for t in tasks] + ["resilience\n(all tasks)"]
    values = np.full((len(variants), len(columns)), np.nan)
    text = np.full(values.shape, "", dtype=object)
    for i, variant in enumerate(variants):
        for j, task in enumerate(tasks):
            row = cells[(cells["variant"] == variant) & (cells["task"] == task)]
            if row.empty:
                text[i, j] = "no runs"
                continue
            row = row.iloc[0]
            values[i, j] = row["norm_mean"]
            bad = row["n_diverged"] + row["n_failed"]
            shown = "n/a" if not math.isfinite(row["norm_mean"]) else f"{row['norm_mean']:.2f}"
            text[i, j] = f"{shown} {MARKS.get(row['verdict'], '')}".strip()
            if bad:
                kind = ("diverged" if row["n_failed"] == 0 else "failed" if row["n_diverged"] == 0
                        else "div./failed")
                text[i, j] += f"\n{bad}/{row['n_runs'] - row['n_pruned']} {kind}"
        res = agg.resilience[agg.resilience["variant"] == variant]
        if len(res):
            res = res.iloc[0]
            values[i, -1] = res["resilience"]
            text[i, -1] = "n/a" if not math.isfinite(res["resilience"]) else f"{res['resilience']:.2f}"
            if math.isfinite(res["ci_low"]):
                text[i, -1] += f"\n[{res['ci_low']:.2f}, {res['ci_high']:.2f}]"
    finite = values[np.isfinite(values)]
    vmax = max(1.5, float(finite.max()) if len(finite) else 1.5)
    width = min(3.0 + 1.7 * len(columns), 22)
    height = min(1.8 + 0.62 * len(variants), 20)
    figure = _figure(width, height)
    ax = figure.add_subplot()
    frame = pd.DataFrame(values, index=variants, columns=columns)
    fontsize = 9 if len(columns) <= 8 else 7.5
    with warnings.catch_warnings():  # seaborn's own use of a deprecated colormap call
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(frame, ax=ax, cmap="RdBu", center=1.0, vmin=0.0, vmax=vmax, annot=text, fmt="",
                    annot_kws={"fontsize": fontsize}, linewidths=1, linecolor="white",
                    cbar_kws={"label": "normalised score", "shrink": 0.9})
    for i in range(len(variants)):  # NaN cells are left blank by seaborn: say why
        for j in range(len(columns)):
            if not np.isfinite(values[i, j]) and text[i, j]:
                ax.text(j + 0.5, i + 0.5, text[i, j], ha="center", va="center", fontsize=fontsize, color="0.35")
    ax.set_facecolor("0.93")
    ax.axvline(len(tasks), color="white", linewidth=6)
    ax.set_xlabel("")
    ax.set_ylabel("variant")
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(f"{agg.results.ablation}: normalised score per task (chance = 0, {agg.baseline} = 1)",
                 fontsize=11)
    figure.supxlabel(verdict_legend(agg.margin), fontsize=8, color="0.25")
    return _save(figure, path)


# -------------------------------------------------------------------------------------------- curves
def learning_curves(agg: Aggregate, path: Path, curves: pd.DataFrame | None = None) -> Path | None:
    """Validation metric against training step, one panel per task, variants overlaid: the mean over seeds
    and a band of ± one standard deviation; the last point of a run that diverged or failed is marked ✗."""
    curves = read_curves(agg.results) if curves is None else curves
    if curves.empty:
        return None
    tasks = [t for t in _tasks(agg) if t in set(curves["task"])] or list(dict.fromkeys(curves["task"]))
    variants = _variants(agg)
    colours = palette(list(dict.fromkeys([*variants, *curves["variant"]])), agg.baseline)
    figure, nrows, ncols = _panels(len(tasks))
    axes = []
    with _style():
        for k, task in enumerate(tasks):
            ax = figure.add_subplot(nrows, ncols, k + 1)
            axes.append(ax)
            data = curves[curves["task"] == task]
            info = agg.cells[agg.cells["task"] == task]
            present = [v for v in variants if v in set(data["variant"])]
            present += [v for v in dict.fromkeys(data["variant"]) if v not in present]
            # the baseline last, so that it is drawn on top of variants that match it
            for variant in [v for v in present if v != agg.baseline] + [v for v in present if v == agg.baseline]:
                own = data[data["variant"] == variant]
                stats = own.groupby("step")["value"].agg(["mean", "std", "count"]).reset_index()
                is_base = variant == agg.baseline
                ax.plot(stats["step"], stats["mean"], marker="o", markersize=3.5, color=colours[variant],
                        linewidth=2.2 if is_base else 1.5, label=variant, zorder=3 if is_base else 2)
                band = stats[stats["count"] > 1]
                if len(band):
                    ax.fill_between(band["step"], band["mean"] - band["std"], band["mean"] + band["std"],
                                    color=colours[variant], alpha=0.18, linewidth=0)
                ends = own[own["status"].isin(("diverged", "failed"))].sort_values("step").groupby("seed").tail(1)
                if len(ends):
                    ax.plot(ends["step"], ends["value"], "x", color=colours[variant], markersize=8, mew=2,
                            zorder=4)
            if (data["status"].isin(("diverged", "failed"))).any():
                ax.plot([], [], "x", color="0.3", markersize=8, mew=2, label="run diverged / failed")
            if len(info) and math.isfinite(info["chance"].iloc[0]):
                ax.axhline(info["chance"].iloc[0], color="0.5", linestyle="--", linewidth=1, label="chance")
            higher = bool(info["higher_is_better"].iloc[0]) if len(info) else True
            metric = data["metric"].iloc[0].replace("_", " ")
            ax.set_title(task)
            ax.set_xlabel("training step")
            ax.set_ylabel(f"validation {metric} ({_direction(higher)})")
        _legend_outside(figure, axes, title="variant (mean ± 1 sd over seeds)", order=variants)
        figure.suptitle(f"{agg.results.ablation}: learning curves", fontsize=12)
    return _save(figure, path)


# ------------------------------------------------------------------------------------- LR sensitivity
def lr_sensitivity(agg: Aggregate, path: Path) -> Path | None:
    """Validation metric of every tuning trial against its learning rate, one panel per task; the horizontal
    segment under each variant's best marks the learning-rate range that reaches within tolerance of it."""
    trials, table = agg.results.trials, agg.optimisability
    if trials is None or trials.empty or table is None:
        return None
    tasks = list(dict.fromkeys(trials["task"]))
    variants = list(dict.fromkeys([*_variants(agg), *trials["variant"]]))
    colours = palette(variants, agg.baseline)
    figure, nrows, ncols = _panels(len(tasks))
    axes = []
    with _style():
        for k, task in enumerate(tasks):
            ax = figure.add_subplot(nrows, ncols, k + 1)
            axes.append(ax)
            data = trials[(trials["task"] == task) & (trials["lr"] > 0)]
            rows = table[table["task"] == task]
            higher = bool(rows["higher_is_better"].iloc[0]) if len(rows) else True
            metric = rows["metric"].iloc[0] if len(rows) else "val_score"
            info = agg.cells[agg.cells["task"] == task]
            chance = float(info["chance"].iloc[0]) if len(info) else math.nan
            for variant in [v for v in variants if v in set(data["variant"])]:
                own = data[data["variant"] == variant].sort_values("lr")
                ok = own[(own["status"] == "ok") & own["val_score"].notna()]
                ax.plot(ok["lr"], ok["val_score"], "o-", color=colours[variant], markersize=4, linewidth=1,
                        label=variant, alpha=0.9)
                fallback = chance if math.isfinite(chance) else ok["val_score"].min()
                pruned = own[own["status"] == "pruned"]
                if len(pruned):
                    ax.plot(pruned["lr"], pruned["val_score"].fillna(fallback), "o", markerfacecolor="none",
                            color=colours[variant], markersize=6, mew=1.3)
                bad = own[~own.index.isin(ok.index) & (own["status"] != "pruned")]
                if len(bad):
                    ax.plot(bad["lr"], bad["val_score"].fillna(fallback), "x", color=colours[variant],
                            markersize=7, mew=2)
                best = rows[rows["variant"] == variant]
                if len(best) and math.isfinite(best["best_val"].iloc[0]):
                    best = best.iloc[0]
                    ax.hlines(best["best_val"], best["lr_low"], best["lr_high"], color=colours[variant],
                              linewidth=5, alpha=0.35)
            if (data["status"] == "pruned").any():
                ax.plot([], [], "o", color="0.3", markerfacecolor="none", mew=1.3,
                        label="pruned (value when stopped)")
            if data["status"].isin(("diverged", "failed")).any():
                ax.plot([], [], "x", color="0.3", mew=2, label="diverged / failed")
            if math.isfinite(chance):
                ax.axhline(chance, color="0.5", linestyle="--", linewidth=1, label="chance")
            ax.set_xscale("log")
            ax.set_title(task)
            ax.set_xlabel("learning rate (log scale)")
            ax.set_ylabel(f"validation {metric.replace('_', ' ')} ({_direction(higher)})")
        _legend_outside(figure, axes, title="variant (bar: LR range within\ntolerance of the best trial)",
                        order=variants)
        figure.suptitle(f"{agg.results.ablation}: learning-rate sensitivity of tuning trials", fontsize=12)
    return _save(figure, path)


# ----------------------------------------------------------------------------------------------- cost
def _human(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def cost_bars(agg: Aggregate, path: Path) -> Path | None:
    """Training throughput relative to the baseline (geometric mean over tasks of the ratio of mean tokens per
    second over ok runs; dots: single tasks) and parameter count (mean over tasks), one bar per variant."""
    runs = agg.runs
    if runs.empty:
        return None
    variants, baseline = _variants(agg), agg.baseline
    ok = runs[(runs["status"] == "ok") & runs["tokens_per_second"].notna()]
    speed = ok.groupby(["variant", "task"])["tokens_per_second"].mean().unstack("task")
    params = runs.groupby(["variant", "task"])["n_params"].median().unstack("task")
    figure = _figure(12.0, 1.6 + 0.42 * len(variants))
    with _style():
        axes = figure.subplots(1, 2, sharey=True)
        y = np.arange(len(variants))
        ax = axes[0]
        if baseline in speed.index and len(speed.columns):
            ratio = speed.div(speed.loc[baseline], axis=1).reindex(variants)
            with np.errstate(divide="ignore", invalid="ignore"):
                summary = np.exp(np.log(ratio).mean(axis=1, skipna=True))
            ax.barh(y, summary.fillna(0), color="#8fb9d8", height=0.6)
            for k, variant in enumerate(variants):
                points = ratio.loc[variant].dropna()
                ax.scatter(points, np.full(len(points), k), color="0.25", s=12, zorder=3,
                           label="one task" if k == 0 else None)
                shown = "no ok runs" if pd.isna(summary[variant]) else f"{summary[variant]:.2f}×"
                ax.text(0.01, k, f" {shown}", va="center", ha="left", fontsize=8, color="0.1",
                        transform=ax.get_yaxis_transform())
            ax.axvline(1.0, color="0.3", linestyle="--", linewidth=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                absolute = float(np.exp(np.log(speed.loc[baseline]).mean()))
            ax.set_xlabel(f"training tokens/s relative to {baseline} ({_human(absolute)} tokens/s; higher is faster)")
            if len(speed.columns) > 1:
                ax.legend(loc="lower right", fontsize=8, frameon=True)
        elif len(speed):
            values = speed.mean(axis=1).reindex(variants)
            ax.barh(y, values.fillna(0), color="#8fb9d8", height=0.6)
            ax.set_xlabel("training tokens/s (mean over tasks; higher is faster)")
        else:
            ax.text(0.5, 0.5, "no ok runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("Throughput (geometric mean over tasks)" if len(speed.columns) > 1 else "Throughput")
        ax = axes[1]
        sizes = params.mean(axis=1).reindex(variants)
        base_size = sizes.get(baseline, np.nan)
        ax.barh(y, sizes.fillna(0), color="#b8d8a8", height=0.6)
        for k, variant in enumerate(variants):
            if pd.notna(sizes[variant]):
                label = f" {_human(sizes[variant])}"
                if pd.notna(base_size) and base_size > 0 and variant != baseline:
                    label += f" ({sizes[variant] / base_size:.2f}×)"
                ax.text(0.01, k, label, va="center", ha="left", fontsize=8, color="0.1",
                        transform=ax.get_yaxis_transform())
        ax.xaxis.set_major_formatter(_formatter())
        ax.set_xlabel("parameters (mean over tasks)")
        ax.set_title("Model size")
        axes[0].set_yticks(y, variants)
        axes[0].invert_yaxis()
        axes[0].set_ylabel("variant")
        figure.suptitle(f"{agg.results.ablation}: cost per variant", fontsize=12)
    return _save(figure, path)


def _formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: _human(value))


# --------------------------------------------------------------------------------- performance profile
def performance_profile(agg: Aggregate, path: Path) -> Path | None:
    """rliable's performance profile (Agarwal et al. 2021, https://arxiv.org/abs/2108.13264): for each threshold
    tau of normalised score, the fraction of a variant's runs above tau (averaged over tasks), with pointwise 95%
    stratified-bootstrap bands where every task has >= 2 runs. A curve above another is better at every level."""
    scores = {v: t for v, t in normalised_runs(agg.runs, agg.baseline, agg.cells).items() if t}
    if not scores:
        return None
    pooled = np.concatenate([np.concatenate(list(t.values())) for t in scores.values()])
    high = max(1.2, float(np.nanmax(pooled)) + 0.05)
    low = min(0.0, float(np.nanmin(pooled)) - 0.05)
    taus = np.linspace(low, high, 241)
    variants = [v for v in _variants(agg) if v in scores]
    colours = palette(variants, agg.baseline)
    figure = _figure(8.8, 4.6)
    with _style():
        ax = figure.add_subplot()
        for variant in [v for v in variants if v != agg.baseline] + [agg.baseline] * (agg.baseline in scores):
            tasks = list(scores[variant].values())
            curve = stats.profile(tasks, taus)
            is_base = variant == agg.baseline
            ax.step(taus, curve, where="post", color=colours[variant], linewidth=2.4 if is_base else 1.6,
                    label=variant, zorder=3 if is_base else 2)
            if agg.n_boot > 0 and min(len(t) for t in tasks) >= 2:
                band_low, band_high = stats.profile_band(tasks, taus, n_boot=min(agg.n_boot, 1000))
                ax.fill_between(taus, band_low, band_high, step="post", color=colours[variant], alpha=0.15,
                                linewidth=0)
        ax.axvline(1.0, color="0.4", linestyle="--", linewidth=1, label=f"{agg.baseline}'s mean (1)")
        ax.axvline(0.0, color="0.6", linestyle=":", linewidth=1, label="chance (0)")
        ax.set_xlim(low, high)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("normalised score τ (chance 0, baseline mean 1)")
        ax.set_ylabel("fraction of runs with score > τ")
        ax.set_title(f"{agg.results.ablation}: performance profile over {len(agg.cells['task'].unique())} "
                     f"task(s)", fontsize=11)
        _legend_outside(figure, [ax], title="variant (band: 95% CI)", order=variants)
    return _save(figure, path)


# -------------------------------------------------------------------------------------------- compare
def compare_resilience(a: Aggregate, b: Aggregate, labels: tuple[str, str], path: Path) -> Path | None:
    """Resilience of every variant in two result sets, side by side, with the intervals."""
    variants = list(dict.fromkeys([*a.resilience["variant"], *b.resilience["variant"]]))
    if not variants:
        return None
    figure = _figure(8.5, 1.4 + 0.55 * len(variants))
    with _style():
        ax = figure.add_subplot()
        import seaborn as sns

        colours = sns.color_palette("colorblind", 2)
        for k, (agg, label) in enumerate(((a, labels[0]), (b, labels[1]))):
            table = agg.resilience.set_index("variant")
            y = np.array([i + (k - 0.5) * 0.3 for i in range(len(variants))])
            x = np.array([table.at[v, "resilience"] if v in table.index else np.nan for v in variants], float)
            low = np.array([table.at[v, "ci_low"] if v in table.index else np.nan for v in variants], float)
            high = np.array([table.at[v, "ci_high"] if v in table.index else np.nan for v in variants], float)
            has = np.isfinite(low)
            ax.errorbar(x[has], y[has], xerr=[x[has] - low[has], high[has] - x[has]], fmt="none",
                        ecolor=colours[k], capsize=3)
            ax.plot(x, y, "o", color=colours[k], label=label, markersize=7)
        ax.axvline(1.0, color="0.4", linestyle="--", linewidth=1)
        ax.axvline(0.0, color="0.6", linestyle=":", linewidth=1)
        ax.set_yticks(range(len(variants)), variants)
        ax.invert_yaxis()
        ax.set_xlabel("resilience: mean normalised score over tasks (chance 0, baseline 1; higher is better)")
        ax.set_ylabel("variant")
        ax.set_title("Resilience in two result sets (95% bootstrap intervals where there are ≥ 2 seeds)",
                     fontsize=11)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title="result set", frameon=False)
    return _save(figure, path)
