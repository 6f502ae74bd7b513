"""Tuning-budget curves: the expected best validation score of a variant after n tuning trials, n = 1 .. N.

Why: a variant's tuned score is the best of its N trials. A variant whose good configurations are rare looks fine
with 24 trials and poor with 8, and at a small budget it can win or lose by luck. The curve of the expected best
against the budget shows how much tuning each variant needs (Dodge et al. 2019, "Show Your Work: Improved
Reporting of Experimental Results", https://arxiv.org/abs/1909.03004), so a variant that needs more tuning shows
as such.

Public API (ablations/report/tuning.py draws and words it):

    expected_best(values, *, higher_is_better=True, replacement=False, n_max=None) -> np.ndarray
    best_spread(values, *, higher_is_better=True, replacement=False, n_max=None) -> np.ndarray
    task_info(tasks, cells=None, *, metric=None, higher_is_better=None, chance=None) -> dict[str, TaskInfo]
    trial_scores(trials, info, *, pruned="last") -> pd.DataFrame
    budget_curves(trials, info, *, pruned="last", replacement=False) -> TuningCurves
    versus_baseline(curves: TuningCurves, baseline) -> pd.DataFrame

**The estimator.** Let v(1) <= ... <= v(N) be a cell's N trial scores, sorted (for a lower-is-better metric such
as bits per character the scores are negated first, so that the best is the minimum, and the result negated
back: the expected minimum).

* Unbiased, without replacement (Tang et al. 2020, "Showing Your Work Doesn't Always Work",
  https://arxiv.org/abs/2004.13705), the default: the mean of the best over all C(N, n) subsets of n trials,

      E_n = sum_i v(i) C(i-1, n-1) / C(N, n),        n = 1 .. N,

  because the best of a random n-subset sits at sorted position i with probability C(i-1, n-1) / C(N, n). It is
  a U-statistic (kernel: the max of n trials), hence unbiased for the expected best of n i.i.d. trials; E_1 is the
  mean of the trials, E_N their best, and E_n never decreases with n.
* With replacement (Dodge et al. 2019, their estimator): n i.i.d. draws from the empirical distribution,

      E_n = sum_i v(i) [(i/N)^n - ((i-1)/N)^n].

  Tang et al. show it is biased low (at n = N it is below the best trial: N draws with replacement repeat some
  trials) and that its errors favour the negative side; it is kept for comparison with papers that use it.

**The band** is the standard deviation of the best of n trials: how much one tuning run with budget n varies by
luck (Dodge et al. shade it). It is not a confidence interval for the curve. Without replacement its unbiased
estimate is the U-statistic (Hoeffding 1948) of Var(M) = E[(M - M')^2] / 2 over ordered pairs (A, B) of disjoint n-subsets, M and
M' their best:

      V_n = sum_{j<i} C(j-1, n-1) C(i-1-n, n-1) (v(i) - v(j))^2 / (C(N, n) C(N-n, n)),        2n <= N

(B's best at j takes n - 1 trials below j; A's best at i > j takes n - 1 of the i - 1 - n trials below i that B
leaves). V_1 is the sample variance. With 2n > N the N trials hold no two disjoint budgets of n, no unbiased
estimate exists, and the band stops: the plug-in spread of a random n-subset would shrink to 0 at n = N, which
is a property of the N trials, not of tuning. No bootstrap either: Tang et al. find bootstrap intervals of this
estimator unreliable (the bootstrap of a maximum is inconsistent). With `replacement=True` the band is Dodge's
plug-in sd, sqrt(sum_i w_i v(i)^2 - E_n^2) with the weights w_i of E_n above, at every n.

**How trials count** (`trial_scores`), so that a variant is charged for what its tuning really produced:

* `ok`: its validation score. An `ok` trial without a score is an error (issue 18: "a trial without a score is an
  error the report shows"): it counts as the worst (below) and is counted apart, so the report can show it.
* `pruned` (`pruned="last"`, the default): the validation value it had when the median pruner stopped it (the
  `val_score` trials.csv records). That is a measured score of its configuration at a smaller budget, and these
  tasks' scores rise with training, so it understates what the configuration would have reached; the pruner stops
  only trials behind the median at the same step, so such a value seldom is the best of a subset. Counting them
  as the worst instead (`pruned="worst"`) charges the variant for the pruner's decision as if the configuration
  had failed; it is the rule for a reader who wants "the best the tuner could hand on" (the tuner never selects
  a pruned trial). A pruned trial without a recorded value counts as the worst under either rule.
* `diverged` and `failed`: the worst, which is the task's chance level when it is known, the same rule as every
  other statistic of the report (ablations/analyse/aggregate.py: a run that diverged or failed counts as chance):
  its final model is useless, and the tuner never selects it. Where no chance level is known, the worst score
  any trial of the task reached stands in.
* Any other status (a trial still running when trials.csv was written) is left out and counted.

**Assumptions, stated in the report's Methods.** The estimators treat a cell's N trials as i.i.d. draws from the
search space. The suite's TPE sampler draws its first trials at random and then models the finished ones, so later
trials are not independent of earlier ones: the curve is the expected best of n trials drawn at random from this
sweep's trials, an approximation to random search that is exact only for the random start-up trials. Every
variant of an ablation gets the same sampler and the same budget, so the comparison between variants stays fair.
A cell whose configuration changed between two commands has trials in two studies (the study name carries a hash
of the configuration); trials of different configurations are not draws of one distribution, so only its study
with the most trials is used (ties: the last one listed) and a note names the others (`select_studies`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ablations.analyse import stats

#: how trials.csv's statuses are read; Optuna's own state names stand for a trial whose run recorded none
STATUS_ALIASES = {"complete": "ok", "fail": "failed"}
PRUNED_RULES = ("last", "worst")
#: relative size of a difference between two expected bests below which they count as equal (floating-point
#: noise of the sums above, not a difference between variants)
TIE = 1e-9


# ----------------------------------------------------------------------------------------------- estimator
def _log_comb(n, k) -> np.ndarray:
    """log C(n, k), elementwise; -inf where C(n, k) = 0 (k < 0 or k > n)."""
    from scipy.special import gammaln  # lazily: scipy is slow to import

    n, k = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(k, dtype=float))
    valid = (k >= 0) & (k <= n) & (n >= 0)
    safe_n, safe_k = np.where(valid, n, 0.0), np.where(valid, k, 0.0)
    value = gammaln(safe_n + 1) - gammaln(safe_k + 1) - gammaln(safe_n - safe_k + 1)
    return np.where(valid, value, -np.inf)


def _sorted(values, higher_is_better: bool) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError("expected_best/best_spread need finite scores (count diverged trials as a score first: "
                         "trial_scores)")
    return np.sort(values if higher_is_better else -values)


def _budgets(n_values: int, n_max: int | None, replacement: bool) -> np.ndarray:
    n_max = n_values if n_max is None else int(n_max)
    if n_max < 1:
        raise ValueError(f"n_max must be at least 1, got {n_max}")
    if not replacement and n_max > n_values:
        raise ValueError(f"without replacement the budget cannot exceed the {n_values} trials (n_max={n_max})")
    return np.arange(1, n_max + 1)


def _weights(n_values: int, budgets: np.ndarray, replacement: bool) -> np.ndarray:
    """weights[k, i]: the probability that the best of budgets[k] trials sits at sorted position i + 1."""
    position = np.arange(1, n_values + 1)[None, :]
    n = budgets[:, None]
    if replacement:  # Dodge et al. 2019 (https://arxiv.org/abs/1909.03004): P(best <= v(i)) = (i/N)^n
        return (position / n_values) ** n - ((position - 1) / n_values) ** n
    # Tang et al. 2020 (https://arxiv.org/abs/2004.13705): C(i-1, n-1) / C(N, n), without replacement
    return np.exp(_log_comb(position - 1, n - 1) - _log_comb(n_values, n))


def expected_best(values, *, higher_is_better: bool = True, replacement: bool = False,
                  n_max: int | None = None) -> np.ndarray:
    """The expected best of n trials for n = 1 .. n_max (default: the number of values), as the module docstring
    defines it: Tang et al.'s unbiased estimator (without replacement) by default, Dodge et al.'s with
    `replacement=True` (which allows n_max beyond the number of values). The best is the minimum when
    `higher_is_better` is False."""
    ordered = _sorted(values, higher_is_better)
    if len(ordered) == 0:
        return np.array([])
    budgets = _budgets(len(ordered), n_max, replacement)
    sign = 1.0 if higher_is_better else -1.0
    return sign * (_weights(len(ordered), budgets, replacement) @ ordered)


def best_spread(values, *, higher_is_better: bool = True, replacement: bool = False,
                n_max: int | None = None) -> np.ndarray:
    """The standard deviation of the best of n trials, n = 1 .. n_max (of the minimum when `higher_is_better` is
    False: the spread of a maximum is not that of a minimum). Without replacement: the square root of the unbiased V_n of the module docstring where 2n <= N,
    NaN beyond (no unbiased estimate exists there). With replacement: Dodge et al.'s plug-in sd at every n."""
    ordered = _sorted(values, higher_is_better)  # negated for a minimum: the same spread as the minimum's
    count = len(ordered)
    if count == 0:
        return np.array([])
    budgets = _budgets(count, n_max, replacement)
    ordered = ordered - ordered.mean()  # the spread is shift-invariant; centring keeps the sums below accurate
    if replacement:
        weights = _weights(count, budgets, True)
        mean = weights @ ordered
        return np.sqrt(np.maximum(weights @ ordered ** 2 - mean ** 2, 0.0))
    spread = np.full(len(budgets), np.nan)
    position = np.arange(1, count + 1)
    for k, n in enumerate(budgets):
        if 2 * n > count:
            break
        # V_n = sum_{j<i} a_j b_i (v_i - v_j)^2 with a_j = C(j-1, n-1) / C(N, n), b_i = C(i-1-n, n-1) / C(N-n, n);
        # expanded as sum_i b_i (v_i^2 S0_i - 2 v_i S1_i + S2_i), S*_i the sums of a_j v_j^* over j < i
        a = np.exp(_log_comb(position - 1, n - 1) - _log_comb(count, n))
        b = np.exp(_log_comb(position - 1 - n, n - 1) - _log_comb(count - n, n))
        below = [np.concatenate(([0.0], np.cumsum(a * ordered ** p)[:-1])) for p in (0, 1, 2)]
        variance = float(np.sum(b * (ordered ** 2 * below[0] - 2 * ordered * below[1] + below[2])))
        spread[k] = math.sqrt(max(variance, 0.0))
    return spread


# ------------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TaskInfo:
    """What the curves need to know of a task: its metric (for the axis and its feasible range), the metric's
    direction and its chance level (NaN when unknown)."""

    metric: str = "val_score"
    higher_is_better: bool = True
    chance: float = math.nan


def _pick(value, task: str):
    if isinstance(value, dict):
        return value.get(task)
    return value


def task_info(tasks, cells: pd.DataFrame | None = None, *, metric=None, higher_is_better=None,
              chance=None) -> dict[str, TaskInfo]:
    """{task: TaskInfo} for every task named. Each field comes from the first that has it: the keyword argument
    (one value for every task, or a dict by task), the aggregate's cells table (metric, higher_is_better and chance
    from runs.csv), the task registry, else the default (higher is better, chance unknown)."""
    info = {}
    for task in dict.fromkeys(tasks):
        known = {}
        if cells is not None and len(cells) and "task" in cells.columns:
            rows = cells[cells["task"] == task]
            if len(rows):
                row = rows.iloc[0]
                known = {"metric": str(row["metric"]), "higher_is_better": bool(row["higher_is_better"])}
                values = pd.to_numeric(rows.get("chance", pd.Series(dtype=float)), errors="coerce").dropna()
                if len(values):
                    known["chance"] = float(values.iloc[0])
        if not known:
            try:
                from tasks import TASKS
                from tasks.base import parse_task_label

                instance = TASKS.get(parse_task_label(task)[0])()
                known = {"metric": instance.metric, "higher_is_better": bool(instance.higher_is_better),
                         "chance": float(instance.chance)}
            except Exception:  # noqa: BLE001 - an unknown task (or one costly to build): the defaults stand in
                known = {}
        given = {"metric": _pick(metric, task), "higher_is_better": _pick(higher_is_better, task),
                 "chance": _pick(chance, task)}
        known.update({k: v for k, v in given.items() if v is not None})
        info[task] = TaskInfo(metric=str(known.get("metric", TaskInfo.metric)),
                              higher_is_better=bool(known.get("higher_is_better", TaskInfo.higher_is_better)),
                              chance=float(known.get("chance", TaskInfo.chance)))
    return info


# ------------------------------------------------------------------------------------------------ trials
def _text(column: pd.Series) -> pd.Series:
    return column.map(lambda v: "" if pd.isna(v) else str(v).strip())


def select_studies(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The trials of one study per (task, variant): the study with the most trials (ties: the last listed), and
    a note for each cell whose other studies were left out (see the module docstring)."""
    trials = trials.reset_index(drop=True)
    if "study" not in trials.columns:
        return trials, []
    study = _text(trials["study"])
    keep = pd.Series(True, index=trials.index)
    notes = []
    for (task, variant), group in trials.groupby(["task", "variant"], sort=False):
        names = study[group.index]
        counts = names.value_counts(sort=False)
        if len(counts) < 2:
            continue
        last = {name: i for i, name in enumerate(names)}
        chosen = max(counts.index, key=lambda name: (counts[name], last[name]))
        keep[group.index] = names == chosen
        others = ", ".join(f"`{name or '(unnamed)'}` ({counts[name]})" for name in counts.index if name != chosen)
        notes.append(f"{variant} on {task}: trials.csv holds trials of more than one configuration; the curve uses "
                     f"study `{chosen}` ({counts[chosen]} trials) and leaves out {others}.")
    return trials[keep], notes


def trial_scores(trials: pd.DataFrame, info: dict[str, TaskInfo], *, pruned: str = "last") -> pd.DataFrame:
    """trials.csv (with a fresh index) and three columns added: `effective`, the score a trial counts with in the
    curves; `counted_as`, which rule gave it: `score`, `value when pruned`, `chance` or `worst trial` (the worst,
    see the module docstring), or `left out` (effective NaN); `missing_score`, the `ok` trials without a score."""
    if pruned not in PRUNED_RULES:
        raise ValueError(f"pruned must be one of {', '.join(PRUNED_RULES)}, got {pruned!r}")
    frame = trials.reset_index(drop=True)  # a fresh index: the rules below assign by label
    frame["status"] = _text(frame["status"]).str.lower().replace(STATUS_ALIASES)
    for column in ("task", "variant"):
        frame[column] = _text(frame[column])
    value = pd.to_numeric(frame["val_score"], errors="coerce").astype(float)
    measured = np.isfinite(value)
    status = frame["status"]
    scored = (status == "ok") & measured
    kept_pruned = (status == "pruned") & measured & (pruned == "last")
    worst_rule = (status.isin(("diverged", "failed")) | ((status == "ok") & ~measured)
                  | ((status == "pruned") & ~kept_pruned))
    effective = pd.Series(np.nan, index=frame.index)
    counted = pd.Series("left out", index=frame.index, dtype=object)
    effective[scored | kept_pruned] = value[scored | kept_pruned]
    counted[scored] = "score"
    counted[kept_pruned] = "value when pruned"
    for task, rows in frame.groupby("task", sort=False):
        spec = info.get(task, TaskInfo())
        index = rows.index[worst_rule[rows.index].to_numpy()]
        if not len(index):
            continue
        if math.isfinite(spec.chance):
            worst, label = spec.chance, "chance"
        else:  # no chance level known: the worst score any trial of the task reached stands in
            reached = value[rows.index][measured[rows.index] & status[rows.index].isin(("ok", "pruned"))]
            if not len(reached):
                continue
            worst, label = float(reached.min() if spec.higher_is_better else reached.max()), "worst trial"
        effective[index] = worst
        counted[index] = label
    frame["effective"] = effective.astype(float)
    frame["counted_as"] = counted.astype(str)
    frame["missing_score"] = (status == "ok") & ~measured
    return frame


# ------------------------------------------------------------------------------------------------ curves
@dataclass
class TuningCurves:
    """The budget curves of an ablation's trials.

    `curves`: one row per (task, variant, n): `expected` (the expected best of n trials), `sd` (of the best of n;
    NaN where the module docstring says it cannot be estimated), `low` and `high` (expected -+ sd within the
    metric's feasible range). `cells`: one row per (task, variant): the study used, the metric, its direction and
    chance, and the trial counts (`n_trials` in the study, `n_counted` in the curve, then by status: `n_scored`,
    `n_pruned` with `n_pruned_value` of them at their value when pruned, `n_diverged`, `n_failed`, `n_missing`
    (ok without a score), `n_left_out`). `notes`: sentences for the report. `pruned`, `replacement`: the rules
    the curves were computed with."""

    curves: pd.DataFrame
    cells: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    pruned: str = "last"
    replacement: bool = False

    @property
    def empty(self) -> bool:
        return self.curves.empty


CURVE_COLUMNS = ["task", "variant", "n", "expected", "sd", "low", "high"]
CELL_COLUMNS = ["task", "variant", "study", "metric", "higher_is_better", "chance", "n_trials", "n_counted",
                "n_scored", "n_pruned", "n_pruned_value", "n_diverged", "n_failed", "n_missing", "n_left_out"]


def budget_curves(trials: pd.DataFrame | None, info: dict[str, TaskInfo], *, pruned: str = "last",
                  replacement: bool = False) -> TuningCurves:
    """The expected best of n trials for every (task, variant) of trials.csv, n = 1 .. its number of trials, with
    the band of the module docstring; tasks and variants in the order trials.csv lists them."""
    if trials is None or trials.empty:
        return TuningCurves(pd.DataFrame(columns=CURVE_COLUMNS), pd.DataFrame(columns=CELL_COLUMNS), [],
                            pruned, replacement)
    trials, notes = select_studies(trials)
    missing = [t for t in dict.fromkeys(_text(trials["task"])) if t not in info]
    info = {**task_info(missing), **info}  # a task the caller did not describe: the registry's, else defaults
    scored = trial_scores(trials, info, pruned=pruned)
    rows, cells = [], []
    for (task, variant), group in scored.groupby(["task", "variant"], sort=False):
        spec = info[task]
        counted = group[group["counted_as"] != "left out"]
        status = group["status"]
        study = _text(group["study"]).iloc[0] if "study" in group.columns else ""
        cells.append({"task": task, "variant": variant, "study": study, "metric": spec.metric,
                      "higher_is_better": spec.higher_is_better, "chance": spec.chance,
                      "n_trials": len(group), "n_counted": len(counted),
                      "n_scored": int((group["counted_as"] == "score").sum()),
                      "n_pruned": int((status == "pruned").sum()),
                      "n_pruned_value": int((group["counted_as"] == "value when pruned").sum()),
                      "n_diverged": int((status == "diverged").sum()), "n_failed": int((status == "failed").sum()),
                      "n_missing": int(group["missing_score"].sum()),
                      "n_left_out": int((group["counted_as"] == "left out").sum())})
        if counted.empty:
            continue
        values = counted["effective"].to_numpy()
        expected = expected_best(values, higher_is_better=spec.higher_is_better, replacement=replacement)
        spread = best_spread(values, higher_is_better=spec.higher_is_better, replacement=replacement)
        low_bound, high_bound = stats.metric_bounds(spec.metric)
        for n, (mean, sd) in enumerate(zip(expected, spread), start=1):
            low = max(mean - sd, low_bound) if math.isfinite(sd) else math.nan
            high = min(mean + sd, high_bound) if math.isfinite(sd) else math.nan
            rows.append({"task": task, "variant": variant, "n": n, "expected": float(mean), "sd": float(sd),
                         "low": low, "high": high})
    cells = pd.DataFrame(cells, columns=CELL_COLUMNS)
    for row in cells.itertuples():
        if row.n_left_out:
            notes.append(f"{row.variant} on {row.task}: {row.n_left_out} trial(s) left out of the curve (a status "
                         f"other than ok/pruned/diverged/failed, or no score and no chance level to count them as).")
    return TuningCurves(pd.DataFrame(rows, columns=CURVE_COLUMNS), cells, notes, pruned, replacement)


# ---------------------------------------------------------------------------------------- vs the baseline
VERSUS_COLUMNS = ["task", "variant", "metric", "higher_is_better", "n_variant", "n_baseline", "n_common",
                  "variant_first", "baseline_first", "variant_last", "baseline_last", "gap_first", "gap_last",
                  "level_first", "level_last", "reach", "baseline_reach", "flip_at"]


def tied(a: float, b: float) -> bool:
    """Whether two expected bests are equal up to floating-point noise (TIE)."""
    return abs(a - b) <= TIE * max(1.0, abs(a), abs(b))


def _first_reaching(curve: np.ndarray, target: float, sign: float) -> float:
    """The smallest budget n (1-based) whose expected best reaches `target` in the metric's direction; NaN when
    none within the curve."""
    for n, value in enumerate(curve, start=1):
        if sign * (value - target) >= 0 or tied(value, target):
            return float(n)
    return math.nan


def versus_baseline(curves: TuningCurves, baseline: str) -> pd.DataFrame:
    """Per (task, non-baseline variant) with a curve on both sides: the expected bests at 1 trial (`*_first`) and
    at the largest budget both have (`n_common`, `*_last`); the gaps variant minus baseline in the metric's
    direction (positive: the variant is better) and whether they are level (`level_first`, `level_last`: equal up
    to floating-point noise); `reach`, the budget at which the variant's expected best reaches
    the baseline's at 1 trial (1 when it starts there, NaN when it never does within its trials);
    `baseline_reach`, the same for the baseline against the variant's 1-trial value; `flip_at`, the first budget
    at which the order of the two differs from their order at 1 trial (NaN when it never does, or when they are
    level at 1 trial)."""
    rows = []
    table = curves.curves
    for task in dict.fromkeys(table["task"]):
        own = table[table["task"] == task]
        base = own[own["variant"] == baseline].sort_values("n")["expected"].to_numpy()
        if not len(base):
            continue
        cell = curves.cells[curves.cells["task"] == task].iloc[0]
        higher = bool(cell["higher_is_better"])
        sign = 1.0 if higher else -1.0
        for variant in dict.fromkeys(own["variant"]):
            if variant == baseline:
                continue
            mine = own[own["variant"] == variant].sort_values("n")["expected"].to_numpy()
            common = min(len(mine), len(base))
            gaps = sign * (mine[:common] - base[:common])
            order = [0 if tied(m, b) else int(np.sign(g)) for m, b, g in zip(mine, base, gaps)]
            flip_at = next((n for n, o in enumerate(order, start=1) if order[0] and o == -order[0]), math.nan)
            rows.append({"task": task, "variant": variant, "metric": cell["metric"], "higher_is_better": higher,
                         "n_variant": len(mine), "n_baseline": len(base), "n_common": common,
                         "variant_first": mine[0], "baseline_first": base[0], "variant_last": mine[common - 1],
                         "baseline_last": base[common - 1], "gap_first": gaps[0], "gap_last": gaps[-1],
                         "level_first": order[0] == 0, "level_last": order[-1] == 0,
                         "reach": _first_reaching(mine, base[0], sign),
                         "baseline_reach": _first_reaching(base, mine[0], sign), "flip_at": float(flip_at)})
    return pd.DataFrame(rows, columns=VERSUS_COLUMNS)
