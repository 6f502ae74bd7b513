"""The report's figures, as PNG files (seaborn on the toolkit's Agg canvas, `ablations.report.toolkit`).

Every function takes what analyse computed (an `Aggregate`, and where it needs more the tidy frames of
ablations/analyse/diagnostics.py or ablations/report/cost.py), writes one PNG atomically and returns its path,
or None when there is nothing to draw. Figures never go through pyplot, so drawing one changes no global state.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse import stats
from ablations.analyse.aggregate import BROKEN_BELOW, MARKS, Aggregate, normalised_runs, read_curves
from ablations.analyse.diagnostics import MOMENTS, depth_profile, read_diagnostics, read_training_loss
from ablations.report.toolkit import (figure_style, legend_outside, new_figure, num, palette, panel_figure,
                                      save_figure, write_bytes_atomic)

#: the training loss is a cross-entropy, never negative: the range its bands are clipped to
LOSS_BOUNDS = (0.0, math.inf)

#: the per-layer diagnostics every report draws: (metric, axis label, x-axis label, log scale)
LAYER_DIAGNOSTICS = (
    ("branch_ratio", "branch contribution\n‖branch‖ / ‖stream‖", "block", False),
    ("grad_norm", "gradient norm of\nthe layer's parameters", "layer (0: embedding, last: output head)", True),
    ("token_spread", "token spread\n‖X − 1x̄ᵀ‖ / ‖X‖", "after block (0: the embedding)", False),
)


def verdict_legend(margin: float, sequential: bool = False) -> str:
    """What the marks of the heatmap mean, with the equivalence margin of this report; `sequential`: the verdicts
    of ablation.seeds=auto, each tested at its look's share of alpha (the report's Methods give the levels)."""
    if sequential:
        tests = ("▲ better   ▼ worse   (Welch t-test vs baseline at the look's α over the cells)   ≈ equivalent "
                 f"(TOST within ±{margin:g} at the look's α)")
    else:
        tests = ("▲ better   ▼ worse   (Welch t-test vs baseline, Holm-corrected p < 0.05)   ≈ equivalent (90% CI "
                 f"of the normalised difference within ±{margin:g}: TOST)")
    return (f"{tests}\n? inconclusive (neither shown)   "
            f"✗ broken (normalised score < {BROKEN_BELOW:g} or most runs diverged/failed)   "
            f"· untested (< 2 runs on a side)")


def direction_label(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def _variants(agg: Aggregate) -> list[str]:
    return list(agg.resilience["variant"]) or list(dict.fromkeys(agg.cells["variant"]))


def _tasks(agg: Aggregate) -> list[str]:
    return list(dict.fromkeys(agg.cells["task"]))


def _baseline_last(variants: list[str], baseline: str) -> list[str]:
    """Drawing order: the baseline last, so that it lies on top of variants that match it."""
    return [v for v in variants if v != baseline] + [v for v in variants if v == baseline]


def _compact(value: float) -> str:
    """A learning rate as a short tick label: `1e-3`, `3e-3`, `2.5e-2`."""
    if not (value > 0 and math.isfinite(value)):
        return ""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def log_ticks(axis, low: float, high: float, formatter=None) -> None:
    """A legible log axis over [low, high]: labelled ticks at 1 and 3 of each decade (only 1 beyond two decades,
    every other decade beyond six; 1, 2 and 5, or else every integer multiple, in a range too short for two of
    those), compact labels (`3e-3`), no labels on minor ticks. Matplotlib's default labels every minor tick
    (`4×10⁻³`) when the range is under a decade, and those labels overlap. `formatter(value)` writes a label
    (default: `_compact`)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(high / low) if high > low > 0 else 1.0

    def ticks(subs) -> list[float]:
        exponents = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
        return [m * 10.0 ** e for e in exponents for m in subs if low <= m * 10.0 ** e <= high]

    chosen = ticks((1.0, 3.0) if decades <= 2 else (1.0,))
    if decades > 6:
        chosen = chosen[::2]
    if len(chosen) < 2:
        chosen = ticks((1.0, 2.0, 5.0))
    if len(chosen) < 2:  # a fraction of a decade: every integer multiple, at most six of them
        chosen = ticks(tuple(float(m) for m in range(1, 10)))
        chosen = chosen[::math.ceil(len(chosen) / 6)] if chosen else chosen
    if len(chosen) < 2:  # a range inside one step of those: its ends
        chosen = [low, high]
    axis.set_major_locator(FixedLocator(chosen))
    label = formatter or _compact
    axis.set_major_formatter(FuncFormatter(lambda v, _: label(v)))
    axis.set_minor_locator(LogLocator(base=10.0, subs=tuple(range(2, 10)), numticks=12))
    axis.set_minor_formatter(NullFormatter())


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
            shown = "n/a" if not math.isfinite(row["norm_mean"]) else num(row["norm_mean"], 2)
            text[i, j] = f"{shown} {MARKS.get(row['verdict'], '')}".strip()
            if bad:
                kind = ("diverged" if row["n_failed"] == 0 else "failed" if row["n_diverged"] == 0
                        else "div./failed")
                text[i, j] += f"\n{bad}/{row['n_runs'] - row['n_pruned']} {kind}"
        res = agg.resilience[agg.resilience["variant"] == variant]
        if len(res):
            res = res.iloc[0]
            values[i, -1] = res["resilience"]
            text[i, -1] = "n/a" if not math.isfinite(res["resilience"]) else num(res["resilience"], 2)
            if math.isfinite(res["ci_low"]):
                text[i, -1] += f"\n[{num(res['ci_low'], 2)}, {num(res['ci_high'], 2)}]"
    finite = values[np.isfinite(values)]
    vmax = max(1.5, float(finite.max()) if len(finite) else 1.5)
    width = min(3.0 + 1.7 * len(columns), 22)
    height = min(1.8 + 0.62 * len(variants), 20)
    figure = new_figure(width, height)
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
    figure.supxlabel(verdict_legend(agg.margin, agg.sequence is not None), fontsize=8, color="0.25")
    return save_figure(figure, path)



# ---------------------------------------------------------------------------------------------- curves
def curve_bands(frame: pd.DataFrame, value: str, bounds: tuple[float, float],
                confidence: float = stats.CONFIDENCE, *, log: bool = False) -> pd.DataFrame:
    """Per variant, task and step: the mean over the seeds still logging at that step, and the Student-t
    interval for it at `confidence` intersected with `bounds`, the metric's feasible range (stats.t_interval:
    the true mean lies in that range, so the intersection keeps the interval's coverage and never shows an
    accuracy above 1). With `log`, mean and interval are taken of the logarithm and exponentiated (the
    geometric mean and its multiplicative interval, which is what a log axis shows, and positive by
    construction; a loss spans many decades over training). Non-finite values (a diverging run) are left out.
    Columns: variant, task, step, mean, low, high, count (low/high NaN where fewer than 2 seeds log)."""
    rows = []
    data = frame.assign(**{value: pd.to_numeric(frame[value], errors="coerce").astype(float)})
    data = data[np.isfinite(data[value]) & ((data[value] > 0) if log else True)]
    for (variant, task, step), group in data.groupby(["variant", "task", "step"], sort=True):
        values = group[value].to_numpy(float)
        if log:
            low_bound = math.log(bounds[0]) if bounds[0] > 0 else -math.inf
            high_bound = math.log(bounds[1]) if math.isfinite(bounds[1]) else math.inf
            mean, low, high = (math.exp(v) for v in stats.t_interval(np.log(values), confidence,
                                                                     (low_bound, high_bound)))
        else:
            mean, low, high = stats.t_interval(values, confidence, bounds)
        rows.append({"variant": variant, "task": task, "step": step, "mean": mean, "low": low, "high": high,
                     "count": len(group)})
    return pd.DataFrame(rows, columns=["variant", "task", "step", "mean", "low", "high", "count"])


def _draw_bands(ax, bands: pd.DataFrame, variants: list[str], colours: dict, baseline: str, *,
                markers: bool) -> None:
    for variant in _baseline_last([v for v in variants if v in set(bands["variant"])], baseline):
        own = bands[bands["variant"] == variant]
        is_base = variant == baseline
        ax.plot(own["step"], own["mean"], marker="o" if markers else None, markersize=3.5, color=colours[variant],
                linewidth=2.2 if is_base else 1.5, label=variant, zorder=3 if is_base else 2)
        band = own[own["count"] > 1]
        if len(band):
            ax.fill_between(band["step"], band["low"], band["high"], color=colours[variant], alpha=0.18,
                            linewidth=0)


def learning_curves(agg: Aggregate, path: Path, curves: pd.DataFrame | None = None,
                    losses: pd.DataFrame | None = None) -> Path | None:
    """Per task, two panels against the training step: the validation metric (top) and the training loss
    (bottom, metrics.csv `train/loss`, log scale), variants overlaid: the mean over the seeds still training at
    each step with its 95% t-interval clipped to the metric's range (`curve_bands`; for the loss the geometric
    mean and its interval, as the log axis shows them); ✗ marks the last point of a run that diverged or
    failed."""
    curves = read_curves(agg.results) if curves is None else curves
    losses = read_training_loss(agg.results.directory, agg.runs) if losses is None else losses
    if curves.empty and losses.empty:
        return None
    present = set(curves["task"]) | set(losses["task"])
    tasks = [t for t in _tasks(agg) if t in present] + sorted(present - set(_tasks(agg)))
    variants = list(dict.fromkeys([*_variants(agg), *curves["variant"], *losses["variant"]]))
    colours = palette(variants, agg.baseline)
    ncols = min(3, len(tasks))
    blocks = math.ceil(len(tasks) / ncols)
    figure = new_figure(4.6 * ncols + 2.4, 5.6 * blocks + 0.6)
    grid = figure.add_gridspec(2 * blocks, ncols)
    axes = []
    with figure_style():
        for k, task in enumerate(tasks):
            row, col = 2 * (k // ncols), k % ncols
            top = figure.add_subplot(grid[row, col])
            bottom = figure.add_subplot(grid[row + 1, col], sharex=top)
            axes += [top, bottom]
            info = agg.cells[agg.cells["task"] == task]
            data = curves[curves["task"] == task]
            metric = (data["metric"].iloc[0] if len(data) else info["metric"].iloc[0] if len(info) else "metric")
            higher = bool(info["higher_is_better"].iloc[0]) if len(info) else True
            if len(data):
                _draw_bands(top, curve_bands(data, "value", stats.metric_bounds(metric)), variants, colours,
                            agg.baseline, markers=True)
                ends = data[data["status"].isin(("diverged", "failed"))].sort_values("step").groupby(
                    ["variant", "seed"]).tail(1)
                for variant, own in ends.groupby("variant"):
                    top.plot(own["step"], own["value"], "x", color=colours[variant], markersize=8, mew=2, zorder=4)
                if len(ends):
                    top.plot([], [], "x", color="0.3", markersize=8, mew=2, label="run diverged / failed")
            else:
                top.text(0.5, 0.5, "no validation logged", ha="center", va="center", transform=top.transAxes,
                         color="0.4")
            if len(info) and math.isfinite(info["chance"].iloc[0]):
                top.axhline(info["chance"].iloc[0], color="0.5", linestyle="--", linewidth=1, label="chance")
            low, high = stats.metric_bounds(metric)
            if math.isfinite(low) and math.isfinite(high):  # a bounded metric: show its whole range
                pad = 0.03 * (high - low)
                top.set_ylim(low - pad, high + pad)
            top.set_title(task)
            top.set_ylabel(f"validation {metric.replace('_', ' ')}\n({direction_label(higher)})")
            top.tick_params(labelbottom=False)
            loss = losses[(losses["task"] == task)]
            loss = loss[np.isfinite(loss["loss"].astype(float)) & (loss["loss"].astype(float) > 0)]
            if len(loss):
                _draw_bands(bottom, curve_bands(loss, "loss", LOSS_BOUNDS, log=True), variants, colours,
                            agg.baseline, markers=False)
                bottom.set_yscale("log")
                # The axis spans the losses the runs logged (a factor of 2 either side), not the bands: at 2 or 3
                # seeds a geometric t-interval can reach 1e-20 once a loss nears zero, and would squash every
                # curve into the top of the panel. A band that leaves the axis is cut at its edge.
                values = loss["loss"].astype(float)
                bottom.set_ylim(values.min() / 2, values.max() * 2)
            else:
                bottom.text(0.5, 0.5, "no training loss logged", ha="center", va="center",
                            transform=bottom.transAxes, color="0.4")
            bottom.set_ylabel("training loss, geometric mean\n(log scale; lower is better)")
            bottom.set_xlabel("training step")
        legend_outside(figure, axes, title="variant (mean, 95% CI\nover seeds, clipped\nto the metric's range)",
                       order=variants)
        figure.suptitle(f"{agg.results.ablation}: learning curves", fontsize=12)
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------- LR sensitivity
def lr_sensitivity(agg: Aggregate, path: Path, space: dict | None = None) -> Path | None:
    """Validation metric of every tuning trial against its learning rate: one panel per variant and task (rows:
    tasks, so a panel never pools tasks whose metrics differ; one variant per panel, so variants never hide one
    another), the baseline's trials in grey in every other panel of its task as the reference.

    In each panel: the variant's best trial (★), the learning-rate range whose trials reach within tolerance of
    it (the bar under it), the searched range `space["lr"]` (an `ablations.report.search.Range`; its lowest and
    highest 10% shaded: a best trial there may have an optimum outside the range). When the sweep varied other
    hyper-parameters too (warmup, weight decay), the trials are drawn as points, not joined by a line: a line
    would read as the effect of the learning rate alone."""
    from ablations.report.search import EDGE_FRACTION

    trials, table = agg.results.trials, agg.optimisability
    if trials is None or trials.empty or table is None:
        return None
    trials = trials[trials["lr"] > 0]
    if trials.empty:
        return None
    tasks = list(dict.fromkeys(trials["task"]))
    variants = [v for v in dict.fromkeys([*_variants(agg), *trials["variant"]]) if v in set(trials["variant"])]
    colours = palette(variants, agg.baseline)
    others = [k for k in ("warmup_frac", "weight_decay") if k in trials.columns
              and pd.to_numeric(trials[k], errors="coerce").nunique(dropna=True) > 1]
    lr = (space or {}).get("lr")
    low = lr.low if lr is not None else float(trials["lr"].min())
    high = lr.high if lr is not None else float(trials["lr"].max())
    low, high = min(low, float(trials["lr"].min())), max(high, float(trials["lr"].max()))
    pad = 10 ** (0.06 * max(math.log10(high / low), 0.5))
    ncols = min(4, len(variants))
    per_task = math.ceil(len(variants) / ncols)
    figure = new_figure(3.3 * ncols + 2.6, 2.9 * per_task * len(tasks) + 0.9)
    axes = []
    with figure_style():
        grid = figure.subplots(per_task * len(tasks), ncols, squeeze=False)
        for t, task in enumerate(tasks):
            data = trials[trials["task"] == task]
            rows = table[table["task"] == task]
            higher = bool(rows["higher_is_better"].iloc[0]) if len(rows) else True
            metric = rows["metric"].iloc[0] if len(rows) else "val_score"
            info = agg.cells[agg.cells["task"] == task]
            chance = float(info["chance"].iloc[0]) if len(info) else math.nan
            finite = data.loc[data["val_score"].notna(), "val_score"].astype(float)
            fallback = chance if math.isfinite(chance) else (float(finite.min()) if len(finite) else 0.0)
            shared = None
            for k, variant in enumerate(variants):
                ax = grid[t * per_task + k // ncols, k % ncols]
                if shared is None:
                    shared = ax
                else:
                    ax.sharey(shared)
                axes.append(ax)
                if lr is not None:
                    edge = 10 ** (EDGE_FRACTION * math.log10(lr.high / lr.low)) if lr.log else None
                    lo_edge = lr.low * edge if edge else lr.low + EDGE_FRACTION * (lr.high - lr.low)
                    hi_edge = lr.high / edge if edge else lr.high - EDGE_FRACTION * (lr.high - lr.low)
                    ax.axvspan(lr.low, lo_edge, color="#f4a261", alpha=0.18, linewidth=0,
                               label=f"edge of the searched range ({EDGE_FRACTION:.0%})")
                    ax.axvspan(hi_edge, lr.high, color="#f4a261", alpha=0.18, linewidth=0)
                    for end in (lr.low, lr.high):
                        ax.axvline(end, color="#e76f51", linewidth=1, linestyle=":")
                if variant != agg.baseline:
                    base = data[(data["variant"] == agg.baseline) & (data["status"] == "ok")
                                & data["val_score"].notna()].sort_values("lr")
                    if len(base):
                        ax.plot(base["lr"], base["val_score"], linestyle="none" if others else "-", marker="o",
                                color="0.72", markersize=3.5, linewidth=1, zorder=1,
                                label=f"{agg.baseline} (reference)")
                own = data[data["variant"] == variant].sort_values("lr")
                ok = own[(own["status"] == "ok") & own["val_score"].notna()]
                ax.plot(ok["lr"], ok["val_score"], linestyle="none" if others else "-", marker="o",
                        color=colours[variant], markersize=4.5, linewidth=1.2, label="trial (ok)", zorder=3)
                pruned = own[own["status"] == "pruned"]
                if len(pruned):
                    ax.plot(pruned["lr"], pruned["val_score"].fillna(fallback), "o", markerfacecolor="none",
                            color=colours[variant], markersize=6, mew=1.3, label="pruned (value when stopped)",
                            zorder=3)
                bad = own[~own.index.isin(ok.index) & (own["status"] != "pruned")]
                if len(bad):
                    ax.plot(bad["lr"], bad["val_score"].fillna(fallback), "x", color=colours[variant],
                            markersize=7, mew=2, label="diverged / failed (at chance)", zorder=3)
                best = rows[rows["variant"] == variant]
                if len(best) and math.isfinite(best["best_val"].iloc[0]):
                    best = best.iloc[0]
                    ax.hlines(best["best_val"], best["lr_low"], best["lr_high"], color=colours[variant],
                              linewidth=5, alpha=0.35, label="within tolerance of the best")
                    ax.plot([best["best_lr"]], [best["best_val"]], "*", color=colours[variant], markersize=13,
                            markeredgecolor="black", markeredgewidth=0.6, label="best trial", zorder=4)
                if math.isfinite(chance):
                    ax.axhline(chance, color="0.5", linestyle="--", linewidth=1, label="chance")
                ax.set_xscale("log")
                ax.set_xlim(low / pad, high * pad)
                log_ticks(ax.xaxis, low, high)
                ax.set_title(f"{variant}" + (f" · {task}" if len(tasks) > 1 else ""), fontsize=10,
                             color=colours[variant] if variant != agg.baseline else "black")
                if k % ncols == 0:
                    ax.set_ylabel(f"{task}: validation\n{metric.replace('_', ' ')} ({direction_label(higher)})",
                                  fontsize=9)
                ax.set_xlabel("learning rate" if k // ncols == per_task - 1 or k + ncols >= len(variants) else "",
                              fontsize=9)
                ax.tick_params(labelsize=8)
            for k in range(len(variants), per_task * ncols):  # the unused panels of the task's last row
                grid[t * per_task + k // ncols, k % ncols].set_visible(False)
        note = ("" if not others else f"\nthe trials also varied {' and '.join(o.replace('_', ' ') for o in others)}:"
                                      f" points, not a curve in the learning rate alone")
        legend_outside(figure, axes, title="trials of the panel's variant")
        searched = (f"searched range [{_compact(lr.low)}, {_compact(lr.high)}] (dotted)" if lr is not None
                    else "no searched range recorded")
        figure.suptitle(f"{agg.results.ablation}: learning-rate sensitivity of the tuning trials\n{searched}{note}",
                        fontsize=10.5)
    return save_figure(figure, path)


# ----------------------------------------------------------------------------------------------- cost
_TASK_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h", "<", ">")


def cost_bars(agg: Aggregate, path: Path, costs: pd.DataFrame | None = None) -> Path | None:
    """Three panels, one row per variant, one marker per task: parameters; training FLOPs per run (FLOPs per
    token x tokens trained, `ablations.report.cost`; log scale); and training throughput as the median over
    runs with the range over runs as a whisker. Throughput is machine-dependent and noisy on a shared CPU: it
    is never shown as a ratio, only with its spread, so that differences inside the spread read as noise."""
    import seaborn as sns

    from ablations.report.cost import cost_summary, human, run_costs

    if agg.runs.empty:
        return None
    costs = run_costs(agg.results) if costs is None else costs
    summary = cost_summary(costs)
    if summary.empty:
        return None
    variants = [v for v in _variants(agg) if v in set(summary["variant"])]
    variants += [v for v in dict.fromkeys(summary["variant"]) if v not in variants]
    tasks = list(dict.fromkeys(summary["task"]))
    colours = dict(zip(tasks, sns.color_palette("colorblind", len(tasks))))
    offsets = dict(zip(tasks, np.linspace(-0.22, 0.22, len(tasks)) if len(tasks) > 1 else [0.0]))
    y = {v: i for i, v in enumerate(variants)}
    base = summary[summary["variant"] == agg.baseline].set_index("task")
    figure = new_figure(14.5, 1.9 + 0.5 * len(variants))
    from matplotlib.ticker import FuncFormatter

    with figure_style():
        axes = figure.subplots(1, 3, sharey=True)
        panels = (("n_params", "parameters (log scale)", "Model size", True),
                  ("flops", "training FLOPs per run (log scale)", "Compute", True),
                  ("tps_median", "training tokens/s: median over runs,\nwhisker: range over runs", "Throughput",
                   False))
        for ax, (column, label, title, log) in zip(axes, panels):
            for task in tasks:
                own = summary[summary["task"] == task]
                ys = np.array([y[v] + offsets[task] for v in own["variant"]])
                values = own[column].to_numpy(float)
                shown = np.isfinite(values) & ((values > 0) if log else True)
                if column == "tps_median":
                    low, high = own["tps_min"].to_numpy(float), own["tps_max"].to_numpy(float)
                    has = shown & np.isfinite(low)
                    ax.errorbar(values[has], ys[has], xerr=[values[has] - low[has], high[has] - values[has]],
                                fmt="none", ecolor=colours[task], elinewidth=1.4, capsize=3)
                ax.plot(values[shown], ys[shown], _TASK_MARKERS[tasks.index(task) % len(_TASK_MARKERS)],
                        color=colours[task], markersize=6.5, linestyle="none", label=task)
                if log and task in base.index and base.at[task, column] > 0:
                    # deterministic costs: each beside its ratio to the baseline's on the same task
                    for variant, value, at in zip(own["variant"], values, ys):
                        if variant != agg.baseline and math.isfinite(value):
                            ax.annotate(f"{value / base.at[task, column]:.2f}×", (value, at), xytext=(6, 0),
                                        textcoords="offset points", va="center", fontsize=7.5, color="0.3")
            finite = summary[column].to_numpy(float)
            finite = finite[np.isfinite(finite) & ((finite > 0) if log else True)]
            if log and len(finite):
                low, high = float(finite.min()), float(finite.max())
                ax.set_xscale("log")
                ax.set_xlim(low / 1.25, high * 1.9)  # room for the ratio labels right of the markers
                log_ticks(ax.xaxis, low / 1.25, high * 1.9, formatter=human)
            elif not log:
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
                ax.set_xlim(left=0)
            ax.set_xlabel(label)
            ax.set_title(title)
        axes[0].set_yticks(range(len(variants)), variants)
        axes[0].set_ylim(len(variants) - 0.5, -0.5)
        axes[0].set_ylabel("variant")
        legend_outside(figure, axes, title="task")
        figure.suptitle(f"{agg.results.ablation}: cost per variant (×: the ratio to {agg.baseline} on the same "
                        f"task; throughput, which depends on the machine, has none)", fontsize=12)
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------ layer diagnostics
def depth_panel(ax, profile: pd.DataFrame, variants: list[str], colours: dict, *, moments=MOMENTS,
                log: bool = False, band: bool = True) -> None:
    """Draw one per-layer profile (`analyse.diagnostics.depth_profile`, one task) on `ax`: per variant the median
    over seeds against the layer, solid at the end of training with the seeds' range as a band, dashed at
    initialisation. The claims report and every ablation report draw depth with this one function."""
    from matplotlib.ticker import MaxNLocator

    for variant in [v for v in variants if v in set(profile["variant"])]:
        for moment in moments:
            own = profile[(profile["variant"] == variant) & (profile["moment"] == moment)].sort_values("layer")
            if log:
                own = own[own["median"] > 0]
            if own.empty:
                continue
            end = moment == MOMENTS[-1] or len(moments) == 1
            ax.plot(own["layer"], own["median"], marker="o" if end else None, markersize=4,
                    linestyle="-" if end else "--", linewidth=1.8 if end else 1.1, alpha=1.0 if end else 0.75,
                    color=colours[variant], label=variant if end else f"_{variant}")
            if band and end and (own["n_seeds"] > 1).any():
                low = own["low"].clip(lower=own["median"].min() * 1e-3) if log else own["low"]
                ax.fill_between(own["layer"], low, own["high"], color=colours[variant], alpha=0.13, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")


def layer_diagnostics(agg: Aggregate, path: Path, diag: pd.DataFrame | None = None) -> Path | None:
    """How each variant's layers behave, from every run's diagnostics.csv (`ablations.execute.diagnostics`):
    rows: branch contribution ‖branch‖/‖stream‖ (mean of a block's attention and MLP branches), gradient norm
    of each layer's parameters (log scale), token spread (0: every token the same vector, rank-one collapse);
    columns: tasks (three to a row); x: depth. Per variant the median over seeds at the end of training (band:
    the seeds' range) and, dashed, at initialisation."""
    diag = read_diagnostics(agg.results.directory, agg.runs) if diag is None else diag
    if diag.empty:
        return None
    present = set(diag["metric"])
    metrics = [m for m in LAYER_DIAGNOSTICS if m[0] in present]
    if not metrics:
        return None
    tasks = [t for t in _tasks(agg) if t in set(diag["task"])] + sorted(set(diag["task"]) - set(_tasks(agg)))
    variants = list(dict.fromkeys([*_variants(agg), *diag["variant"]]))
    colours = palette(variants, agg.baseline)
    profiles = {metric: depth_profile(diag, metric) for metric, *_ in metrics}
    ncols = min(3, len(tasks))  # tasks wrap after three columns: one block of metric rows per row of tasks
    blocks = math.ceil(len(tasks) / ncols)
    figure = new_figure(max(4.3 * ncols, 6.0) + 3.2, 2.9 * len(metrics) * blocks + 0.9)
    axes = []
    with figure_style():
        grid = figure.subplots(len(metrics) * blocks, ncols, squeeze=False)
        for k in range(len(tasks), blocks * ncols):  # the unused panels of the last row of tasks
            for i in range(len(metrics)):
                grid[(blocks - 1) * len(metrics) + i, k % ncols].set_visible(False)
        for i, (metric, ylabel, xlabel, log) in enumerate(metrics):
            for j, task in enumerate(tasks):
                ax = grid[(j // ncols) * len(metrics) + i, j % ncols]
                axes.append(ax)
                profile = profiles[metric]
                profile = profile[profile["task"] == task]
                if profile.empty:
                    ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes,
                            color="0.4")
                depth_panel(ax, profile, _baseline_last(variants, agg.baseline), colours, log=log)
                if i == 0:
                    ax.set_title(task)
                ax.set_xlabel(xlabel, fontsize=9)
                ax.set_ylabel(ylabel if j % ncols == 0 else "", fontsize=9)
                ax.tick_params(labelsize=8)
        from matplotlib.lines import Line2D

        axes[0].add_line(Line2D([], [], color="0.3", linestyle="-", marker="o", markersize=4,
                                label="end of training (median;\nband: range over seeds)"))
        axes[0].add_line(Line2D([], [], color="0.3", linestyle="--", label="initialisation (step 0)"))
        legend_outside(figure, axes, title="variant", order=variants, loc="outside right center")
        figure.suptitle(f"{agg.results.ablation}: per-layer diagnostics on a fixed validation batch", fontsize=12)
    return save_figure(figure, path)


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
    figure = new_figure(8.8, 4.6)
    with figure_style():
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
        legend_outside(figure, [ax], title="variant (band: 95% CI)", order=variants)
    return save_figure(figure, path)


# -------------------------------------------------------------------------------------------- compare
def compare_resilience(a: Aggregate, b: Aggregate, labels: tuple[str, str], path: Path) -> Path | None:
    """Resilience of every variant in two result sets, side by side, with the intervals."""
    variants = list(dict.fromkeys([*a.resilience["variant"], *b.resilience["variant"]]))
    if not variants:
        return None
    figure = new_figure(8.5, 1.4 + 0.55 * len(variants))
    with figure_style():
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
    return save_figure(figure, path)


__all__ = ["LAYER_DIAGNOSTICS", "LOSS_BOUNDS", "compare_resilience", "cost_bars", "curve_bands", "depth_panel", "direction_label",
           "layer_diagnostics", "learning_curves", "log_ticks", "lr_sensitivity", "palette", "performance_profile",
           "resilience_heatmap", "verdict_legend", "write_bytes_atomic"]
