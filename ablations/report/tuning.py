"""The tuning-budget curves in the report: the figure, the findings and the Methods text.

ablations/analyse/tuning.py computes the curves (the estimator, its band and how pruned, diverged and failed
trials count are documented there); this module draws and words them. Every function returns nothing to show
(None, or an empty list) when the results directory has no trials.csv.

How the report builder calls it (ablations/report/ablation.py, `_build`), given its `agg` (an Aggregate):

    from ablations.report import tuning
    FIGURES["tuning_curves"] = tuning.CAPTION
    jobs.append(("tuning_curves", tuning.tuning_figure, agg))   # writes figures/tuning_curves.png, or None
    found.extend(tuning.tuning_findings(agg))                   # markdown lines for the Findings list
    methods lines: tuning.tuning_methods(agg)                   # markdown paragraphs for Methods

Lower level, for any trials.csv without an Aggregate:

    tuning_curves(trials, baseline, path, *, higher_is_better=None, chance=None, metric=None, pruned="last",
                  replacement=False, title=None) -> Path | None
    curves_for(agg, *, pruned="last", replacement=False) -> TuningCurves | None
    draw_curves(curves, baseline, path, *, title=None, order=None) -> Path | None
    findings_from(curves, baseline) -> list[str]
    methods_from(curves) -> list[str]
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse import tuning
from ablations.analyse.tuning import TuningCurves
from ablations.report.figures import direction_label
from ablations.report.toolkit import figure_style, legend_outside, new_figure, palette, save_figure

#: from this many trials on, the budget axis is logarithmic: the curves rise fastest over the first few trials,
#: and Dodge et al. plot the budget on a log scale for the same reason
LOG_AXIS_FROM = 16
#: from this many trials on, the curves are drawn without a marker at every budget (they would merge)
MARKERS_UP_TO = LOG_AXIS_FROM
#: how far apart the variants' band bars sit at one budget, in all (a fraction of one trial on a linear axis, of
#: a doubling on a log one): enough to tell them apart, little enough to read each at its budget
DODGE = 0.36

CAPTION = ("Expected best validation score after n tuning trials, per task and variant (Tang et al. 2020's "
           "unbiased estimator of the curve of Dodge et al. 2019). Bars: ± 1 sd of the best of n trials, "
           "where 2n ≤ N trials allow an unbiased estimate: the luck of one tuning run at that budget, not a "
           "confidence interval. Dotted: the baseline's expected best of 1 trial. Pruned trials count at their "
           "value when stopped, diverged and failed ones at chance.")


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:#.{digits}g}"


def _trials(n: float) -> str:
    n = int(n)
    return f"{n} trial{'s' * (n != 1)}"


# ------------------------------------------------------------------------------------------------- inputs
def curves_for(agg, *, pruned: str = "last", replacement: bool = False) -> TuningCurves | None:
    """The budget curves of an Aggregate's trials.csv (None when it has none); each task's metric, direction and
    chance level from the aggregate's cells (runs.csv), else from the task registry."""
    trials = agg.results.trials
    if trials is None or trials.empty:
        return None
    info = tuning.task_info(trials["task"], agg.cells)
    curves = tuning.budget_curves(trials, info, pruned=pruned, replacement=replacement)
    return None if curves.empty else curves


def _order(curves: TuningCurves, baseline: str, order: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(curves.curves["variant"]))
    ordered = [v for v in (order or []) if v in present] + [v for v in present if v not in (order or [])]
    return [v for v in ordered if v == baseline] + [v for v in ordered if v != baseline]


# ------------------------------------------------------------------------------------------------- figure
def draw_curves(curves: TuningCurves, baseline: str, path: Path, *, title: str | None = None,
                order: list[str] | None = None) -> Path | None:
    """One panel per task: the expected best validation score against the number of tuning trials, a line per
    variant (the baseline black, on top), bars of ± 1 sd of the best of n trials where it can be estimated (2n <=
    N; bars, not a shaded band, since the variants' spreads overlap), the baseline's 1-trial value dotted and the
    chance level dashed where it falls inside the plotted range."""
    if curves is None or curves.empty:
        return None
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

    table, cells = curves.curves, curves.cells
    tasks = list(dict.fromkeys(table["task"]))
    variants = _order(curves, baseline, order)
    colours = palette(variants, baseline)
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    figure = new_figure(4.8 * ncols + 2.6, 3.6 * nrows + 0.7)
    axes = []
    banded = False
    with figure_style():
        for k, task in enumerate(tasks):
            ax = figure.add_subplot(nrows, ncols, k + 1)
            axes.append(ax)
            data = table[table["task"] == task]
            cell = cells[cells["task"] == task].iloc[0]
            n_max = int(data["n"].max())
            marker = "o" if n_max < MARKERS_UP_TO else None
            present = [v for v in variants if v in set(data["variant"])]
            for variant in [v for v in present if v != baseline] + [v for v in present if v == baseline]:
                own = data[data["variant"] == variant].sort_values("n")
                is_base = variant == baseline
                ax.plot(own["n"], own["expected"], marker=marker, markersize=4, color=colours[variant],
                        linewidth=2.4 if is_base else 1.6, label=variant, zorder=3 if is_base else 2)
                band = own[own["low"].notna()]
                if len(band):  # bars, dodged sideways so that the variants' bands stay apart where they overlap
                    shift = (present.index(variant) - (len(present) - 1) / 2) * DODGE / max(len(present), 1)
                    at = band["n"] * 2 ** shift if n_max >= LOG_AXIS_FROM else band["n"] + shift
                    spread = [band["expected"] - band["low"], band["high"] - band["expected"]]
                    ax.errorbar(at, band["expected"], yerr=spread, fmt="none", ecolor=colours[variant],
                                elinewidth=1.3, capsize=2.5, alpha=0.75, zorder=3 if is_base else 2)
                    banded = True
            if baseline in present:
                first = data[(data["variant"] == baseline) & (data["n"] == 1)]["expected"].iloc[0]
                ax.axhline(first, color=colours[baseline], linestyle=":", linewidth=1.1, zorder=1,
                           label=f"{baseline}: expected best of 1 trial")
            low, high = ax.get_ylim()
            if math.isfinite(cell["chance"]) and low <= cell["chance"] <= high:  # never stretch the axis for it
                ax.axhline(cell["chance"], color="0.5", linestyle="--", linewidth=1, label="chance")
            if n_max >= LOG_AXIS_FROM:
                ax.set_xscale("log", base=2)
                ticks = sorted({*(2 ** np.arange(int(math.log2(n_max)) + 1)), n_max})
                ax.xaxis.set_major_locator(FixedLocator(ticks))
                ax.xaxis.set_minor_locator(NullLocator())
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.set_xlabel("tuning trials n (log scale)")
                ax.set_xlim(2 ** -DODGE, n_max * 2 ** DODGE)  # room for the dodged bars at n = 1
            else:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_xlabel("tuning trials n")
                ax.set_xlim(0.7, n_max + 0.3)
            counts = cells[cells["task"] == task]["n_counted"]
            budget = (f"N = {int(counts.iloc[0])}" if counts.nunique() == 1
                      else f"N = {int(counts.min())}-{int(counts.max())}")
            ax.set_title(f"{task} ({budget} trials per variant)", fontsize=11)
            ax.set_ylabel(f"expected best validation {cell['metric'].replace('_', ' ')}\n"
                          f"({direction_label(bool(cell['higher_is_better']))})")
        if banded:
            axes[0].errorbar([], [], yerr=[], fmt="none", ecolor="0.35", elinewidth=1.3, capsize=2.5,
                             label="± 1 sd of the best of n trials\n(where 2n ≤ N)")
        # centred: at the top a long figure title runs into the legend
        legend_outside(figure, axes, "variant", variants, loc="outside right center")
        estimator = "Dodge et al. 2019, with replacement" if curves.replacement else "Tang et al. 2020, unbiased"
        figure.suptitle(title or f"Expected best validation score after n tuning trials ({estimator})",
                        fontsize=12)
    return save_figure(figure, path)


def tuning_figure(agg, path: Path) -> Path | None:
    """The figure for an Aggregate (the report builder's `jobs` signature), titled with its ablation."""
    curves = curves_for(agg)
    if curves is None:
        return None
    return draw_curves(curves, agg.baseline, path, order=list(agg.resilience["variant"]),
                       title=f"{agg.results.ablation}: expected best validation score after n tuning trials")


def tuning_curves(trials: pd.DataFrame | Path | str, baseline: str, path: Path, *, higher_is_better=None,
                  chance=None, metric=None, pruned: str = "last", replacement: bool = False,
                  title: str | None = None) -> Path | None:
    """The figure from a trials table (or the path of a trials.csv) without an Aggregate. `higher_is_better`,
    `chance` and `metric` are one value for every task or a dict by task; a task they leave out is looked up in
    the task registry (see ablations.analyse.tuning.task_info)."""
    if not isinstance(trials, pd.DataFrame):
        trials = pd.read_csv(trials, index_col=False)
    if trials.empty:
        return None
    info = tuning.task_info(trials["task"], None, metric=metric, higher_is_better=higher_is_better, chance=chance)
    curves = tuning.budget_curves(trials, info, pruned=pruned, replacement=replacement)
    return draw_curves(curves, baseline, path, title=title)


# ------------------------------------------------------------------------------------------------ findings
def _clause(row, baseline: str) -> str:
    """What one variant's curve says against the baseline's on one task (see tuning.versus_baseline): where it
    stands at 1 trial, then at the largest budget both have. Semicolons only separate variants."""
    b = f"**{baseline}**"
    first, last = row["gap_first"], row["gap_last"]
    level_first, level_last = bool(row["level_first"]), bool(row["level_last"])
    at_n = _trials(row["n_common"])
    if level_first:
        start = f"is level with {b} at 1 trial ({_fmt(row['variant_first'])})"
    elif first < 0:
        if math.isfinite(row["reach"]):
            start = (f"needs about {_trials(row['reach'])} to reach {b}'s expected best of 1 trial "
                     f"({_fmt(row['baseline_first'])}, its own {_fmt(row['variant_first'])})")
        else:
            start = (f"never reaches {b}'s expected best of 1 trial ({_fmt(row['baseline_first'])}) within its "
                     f"{_trials(row['n_variant'])} (its best {_fmt(row['variant_last'])})")
    else:
        start = f"is ahead at 1 trial ({_fmt(row['variant_first'])} vs {_fmt(row['baseline_first'])}, "
        start += (f"{b} needs about {_trials(row['baseline_reach'])} to match it)"
                  if math.isfinite(row["baseline_reach"])
                  else f"{b} never matches it within its {_trials(row['n_baseline'])})")
    pair = f"{_fmt(row['variant_last'])} vs {_fmt(row['baseline_last'])}"
    if math.isfinite(row["flip_at"]):
        side = "ahead of" if first < 0 else "behind"
        end = f"but the ranking flips with budget: {side} {b} from {_trials(row['flip_at'])} on ({pair} at {at_n})"
    elif level_last:
        end = f"and is level at {at_n} ({_fmt(row['variant_last'])})"
    else:
        end = f"and is {'ahead of' if last > 0 else 'behind'} {b} at {at_n} ({pair})"
    if row["n_variant"] != row["n_baseline"]:
        end += f" (unequal budgets: {row['n_variant']} vs {row['n_baseline']} trials)"
    return f"{start}, {end}"


def _counts(cells: pd.DataFrame, curves: TuningCurves) -> str:
    """How the trials of one task that are not plain scores were counted, by variant ('' when all are); variants
    with the same counts share one clause."""
    parts: dict[str, list[str]] = {}
    for row in cells.itertuples():
        bits = []
        if row.n_pruned:
            rule = ("at the value when stopped" if curves.pruned == "last" else "as the worst")
            if curves.pruned == "last" and row.n_pruned_value < row.n_pruned:
                rule += f", {row.n_pruned - row.n_pruned_value} without a value as the worst"
            bits.append(f"{row.n_pruned} pruned ({rule})")
        bad = row.n_diverged + row.n_failed
        if bad:
            worst = "chance" if math.isfinite(row.chance) else "the worst trial"
            bits.append(f"{bad} diverged/failed (as {worst})")
        if bits:
            parts.setdefault(f"{', '.join(bits)} of {_trials(row.n_trials)}", []).append(row.variant)
    return "; ".join(f"{', '.join(variants)}: {text}" for text, variants in parts.items())


def findings_from(curves: TuningCurves | None, baseline: str) -> list[str]:
    """Markdown lines: per task, how many trials each variant needs to reach the baseline's expected best of 1
    trial, and whether their ranking flips with the budget; how non-ok trials were counted; errors (ok trials
    without a score) and notes."""
    if curves is None or curves.empty:
        return []
    lines = []
    versus = tuning.versus_baseline(curves, baseline)
    for task in dict.fromkeys(curves.curves["task"]):
        cells = curves.cells[curves.cells["task"] == task]
        metric = cells["metric"].iloc[0].replace("_", " ")
        base = curves.curves[(curves.curves["task"] == task) & (curves.curves["variant"] == baseline)]
        head = f"Tuning budget on **{task}** (expected best validation {metric} after n trials"
        if len(base):
            head += (f"; **{baseline}** {_fmt(base['expected'].iloc[0])} at 1 trial, "
                     f"{_fmt(base['expected'].iloc[-1])} at {_trials(base['n'].iloc[-1])}")
        head += ")"
        rows = versus[versus["task"] == task]
        if len(rows):
            body = "; ".join(f"**{r['variant']}** {_clause(r, baseline)}" for _, r in rows.iterrows())
        elif len(base):
            body = "no other variant has scored trials here"
        else:
            body = f"no trials of **{baseline}**, so nothing to compare with"
        counted = _counts(cells, curves)
        lines.append(f"{head}: {body}." + (f" Trials counted: {counted}." if counted else ""))
    missing = curves.cells[curves.cells["n_missing"] > 0]
    if len(missing):
        lines.append("⚠ Tuning trials recorded `ok` without a validation score (nothing validated them; they count "
                     "as the worst in the tuning curves): " + ", ".join(
                         f"{r.variant} on {r.task} ({r.n_missing} of {r.n_trials})" for r in missing.itertuples())
                     + ".")
    lines.extend(curves.notes)
    return lines


def tuning_findings(agg) -> list[str]:
    """The findings for an Aggregate ([] without trials.csv)."""
    return findings_from(curves_for(agg), agg.baseline)


# ------------------------------------------------------------------------------------------------- methods
def methods_from(curves: TuningCurves | None) -> list[str]:
    """Markdown paragraphs for Methods: the estimator, the band, how trials count, and what is assumed."""
    if curves is None or curves.empty:
        return []
    if curves.replacement:
        estimator = ("the estimator of Dodge et al. (2019), n draws with replacement from the trials' empirical "
                     "distribution: E_n = Σ_i v(i) [(i/N)^n − ((i−1)/N)^n], over the sorted scores v(1) ≤ … ≤ v(N) "
                     "(biased low, Tang et al. 2020)")
        band = "Dodge et al.'s plug-in standard deviation of that best"
    else:
        estimator = ("the unbiased estimator of Tang et al. (2020), the mean of the best over every subset of n of "
                     "the N trials: E_n = Σ_i v(i) C(i−1, n−1) / C(N, n), over the sorted scores v(1) ≤ … ≤ v(N), so "
                     "E_1 is the trials' mean and E_N their best")
        band = ("its unbiased estimate (a U-statistic over pairs of disjoint n-subsets), which exists only where "
                "2n ≤ N, so the band stops there")
    pruned = ("at the validation value they had when the median pruner stopped them (a measured score at a "
              "smaller budget, which understates the configuration)" if curves.pruned == "last"
              else "as the worst (the tuner never selects a pruned trial)")
    return [
        f"**Tuning budget.** For each variant and task, the expected best validation score after n tuning trials, "
        f"n = 1 … N (Dodge et al. 2019, \"Show Your Work\"), by {estimator}; for a lower-is-better metric, the "
        f"expected minimum. The band is ± 1 standard deviation of the best of n trials, {band}: how much one tuning "
        "run of that budget varies by luck, not a confidence interval for the curve; with N trials per cell the "
        "curve itself is uncertain, and two curves closer than their bands are within the luck of one tuning run.",
        f"Pruned trials count {pruned}. Diverged and failed trials count as the worst, the task's chance level, as "
        "in every other statistic here; so does a trial recorded `ok` without a score, which the findings report as "
        "an error. The estimator treats a cell's trials as independent draws from the search space; the TPE "
        "sampler draws its first trials at random and then models the finished ones, so the curve is that of n "
        "trials drawn at random from the sweep's own trials. Every variant gets the same space, sampler and budget.",
    ]


def tuning_methods(agg) -> list[str]:
    """The Methods paragraphs for an Aggregate ([] without trials.csv)."""
    return methods_from(curves_for(agg))
