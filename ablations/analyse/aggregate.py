"""Statistics of an ablation: from `runs.csv` (and `trials.csv` when a sweep wrote one) to tidy tables.

Everything here is pandas/numpy with scipy's distributions and bootstrap (ablations/analyse/stats.py), and every
rule is a module constant or a keyword argument so the report can state exactly what it did:

* **Effective score.** A run that `diverged` or `failed` has no test metric; it counts as the task's chance
  level in every statistic (means, intervals, tests, normalised scores). A `pruned` run was stopped by the
  tuner, not by the model, and is left out of every statistic (it is only counted).
* **Per cell** (ablation, variant, task): mean and sample standard deviation over seeds, and a 95% Student-t
  interval for the mean intersected with the metric's feasible range (ablations/analyse/stats.py says why this and
  not a bootstrap at 2-5 seeds). Welch's unequal-variance t-test against the baseline; with fewer than 2 runs on
  either side, or zero variance on both, it is undefined (p = NaN). P-values are Holm-Bonferroni corrected over
  every tested non-baseline cell of the ablation.
* **Normalised score**: (score - chance) / (baseline mean - chance) for higher-is-better metrics and
  (chance - score) / (chance - baseline mean) for lower-is-better ones (bits per character), so chance is 0 and
  the baseline's mean is 1 on every task. Undefined (NaN) on a task where the baseline is no better than chance.
  The **normalised difference** is the variant's normalised mean minus the baseline's (positive: better), with
  its Welch interval at 1 - 2 alpha (90%), clipped to the feasible range of a difference.
* **Verdict** per cell, the first that applies: `no data`; `broken` when the mean normalised score is below 0.2
  or more than half of its (non-pruned) runs diverged or failed; `untested` with fewer than 2 runs on either
  side; `equivalent` when the 90% interval of the normalised difference lies inside +-margin (`report.margin`,
  default 0.05 of the chance-to-baseline range): the two one-sided tests (TOST, Schuirmann 1987) at alpha 0.05;
  `better` / `worse` when the Holm-corrected p < 0.05 (direction: the metric's better side); else
  `inconclusive`, with the seeds per side that would decide it at the observed difference and spread
  (`seeds_to_decide`, 80% power). The baseline's cells are `baseline` (or `broken`).
* **Resilience** of a variant: the mean over tasks of its normalised cell means, with a 95% percentile
  bootstrap interval that resamples seeds within every task, for the variant and the baseline alike (the
  baseline's mean, the normaliser, is re-estimated in each replicate); tasks are fixed, not resampled. Its cells
  that are `equivalent` or `better` count as resilient; `inconclusive` ones never do.
* **Robust aggregates** (rliable's, Agarwal et al. 2021): the interquartile mean of the normalised runs pooled
  over tasks, the probability of improvement over the baseline, and the performance profile, each with a
  stratified bootstrap interval (ablations/analyse/stats.py).
* **Optimisability** (only with trials.csv): per (variant, task), the width in decades of the contiguous
  learning-rate range around the variant's best trial whose trials reach within 5% of the task's normalised
  range (chance to the baseline's best trial) of that best. Diverged and failed trials end the range; pruned
  trials (final value unknown) are skipped.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse import stats
from ablations.analyse.stats import ALPHA, CONFIDENCE, MARGIN  # noqa: F401  (re-exported)
from ablations.store.directory import TRIAL_COLUMNS, ResultsDir  # TRIAL_COLUMNS: re-exported
from ablations.store.files import read_runs
from models.errors import ConfigError
from tasks.base import parse_task_label

BROKEN_BELOW = 0.2        # a mean normalised score below this is `broken` (near chance)
N_BOOTSTRAP = 2000        # bootstrap replicates of the resilience score
BOOTSTRAP_SEED = 0        # the bootstrap is deterministic, so a report is reproducible
LR_TOLERANCE = 0.05       # optimisability: within this fraction of the normalised range of the best trial

VERDICTS = ("better", "worse", "equivalent", "inconclusive", "broken", "untested", "baseline", "no data")
#: the verdicts that count towards a variant's resilience (never `inconclusive`: not significant is not no effect)
RESILIENT = ("equivalent", "better")
VERDICT_COUNTS = ("better", "worse", "equivalent", "inconclusive", "broken", "untested")
MARKS = {"better": "▲", "worse": "▼", "equivalent": "≈", "inconclusive": "?", "broken": "✗", "untested": "·",
         "baseline": "", "no data": ""}
FAILED = ("diverged", "failed")


# --------------------------------------------------------------------------------------------------- loading
@dataclass
class ResultSet:
    """One results directory as read from disk."""

    directory: Path
    runs: pd.DataFrame
    trials: pd.DataFrame | None
    manifest: dict | None
    ablation: str
    description: str
    baseline: str
    margin: float = MARGIN


def read_margin(manifest: dict | None) -> float:
    """The equivalence margin a results directory was run with: the last `report.margin=` among the manifest's
    overrides (`ablate run report.margin=0.1`), else the default of conf/config.yaml (MARGIN)."""
    margin = MARGIN
    for override in (manifest or {}).get("overrides") or []:
        key, _, value = str(override).partition("=")
        if key.lstrip("+") == "report.margin":
            try:
                margin = float(value)
            except ValueError:
                margin = math.nan
            if not (math.isfinite(margin) and 0 < margin < 1):
                from models.errors import ConfigError

                raise ConfigError(f"manifest.json: report.margin must be a number between 0 and 1, got {value!r}")
    return margin


def read_trials(directory: Path) -> pd.DataFrame | None:
    """trials.csv (one row per tuning trial) as a DataFrame, or None when there is none."""
    frame = ResultsDir(directory).read_trials_raw()
    if frame is None:
        return None
    for column in TRIAL_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    for column in ("lr", "warmup_frac", "weight_decay", "val_score", "steps", "wall_seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("ablation", "variant", "task", "status"):
        frame[column] = frame[column].map(lambda v: "" if pd.isna(v) else str(v)).astype(str)
    # Optuna's own state names, for a trial whose run never recorded a status of its own
    frame["status"] = frame["status"].replace({"complete": "ok", "fail": "failed"})
    return frame


def _as_bool(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.number)) and not pd.isna(value):
        return bool(value)
    return str(value).strip().lower() in ("true", "1", "yes")


def clean_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Typed columns and the effective score (see the module docstring)."""
    runs = runs.copy()
    for column in ("ablation", "variant", "task", "status", "metric", "run_dir", "error", "config_hash"):
        if column in runs.columns:
            runs[column] = runs[column].map(lambda v: "" if pd.isna(v) else str(v)).astype(str)
    for column in ("chance", "score", "val_score", "test_loss", "steps", "diverged_step", "wall_seconds",
                   "n_params", "tokens_per_second"):
        if column in runs.columns:
            runs[column] = pd.to_numeric(runs[column], errors="coerce")
    runs["seed"] = pd.to_numeric(runs["seed"], errors="coerce").astype("Int64")
    runs["higher_is_better"] = runs["higher_is_better"].map(_as_bool).astype(bool)
    ok = runs["status"] == "ok"
    effective = runs["score"].where(ok)
    effective = effective.where(~runs["status"].isin(FAILED), runs["chance"])
    runs["effective"] = effective.astype(float)
    return runs


def load(directory: Path, *, ablation: str | None = None, description: str | None = None,
         baseline: str | None = None) -> ResultSet:
    """Read a results directory. `ablation`, `description` and `baseline` default to manifest.json's, then to
    the data (the variant called `baseline`, else the first variant in runs.csv)."""
    directory = Path(directory)
    manifest = ResultsDir(directory).manifest()  # None when there is none; corrupted: one line
    spec = (manifest or {}).get("ablation") or {}
    runs = clean_runs(read_runs(directory))
    trials = read_trials(directory)
    ablation = ablation or spec.get("name") or (runs["ablation"].iloc[0] if len(runs) else directory.name)
    if ablation in set(runs["ablation"]):
        runs = runs[runs["ablation"] == ablation].reset_index(drop=True)
    if trials is not None and ablation in set(trials["ablation"]):
        trials = trials[trials["ablation"] == ablation].reset_index(drop=True)
    variants = list(dict.fromkeys(runs["variant"]))
    if baseline is None:
        baseline = spec.get("baseline") or ("baseline" if "baseline" in variants or not variants else variants[0])
    description = description if description is not None else str(spec.get("description") or "")
    return ResultSet(directory=directory, runs=runs, trials=trials, manifest=manifest, ablation=str(ablation),
                     description=description, baseline=str(baseline), margin=read_margin(manifest))


# ---------------------------------------------------------------------------------------------- statistics
def _finite(values) -> np.ndarray:
    values = np.asarray(pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce"), dtype=float)
    return values[np.isfinite(values)]


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy import stats  # lazily: scipy comes with scikit-learn and is slow to import

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def t_interval(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval for the mean, within `bounds`; low/high NaN with fewer than 2
    values (see ablations.analyse.stats.t_interval)."""
    return stats.t_interval(_finite(values), confidence, bounds)


def welch_test(a, b) -> tuple[float, str]:
    """Two-sided Welch t-test of mean(a) == mean(b): (p, why p is NaN or "")."""
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan, "fewer than 2 runs"
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return math.nan, "zero variance"
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return (p, "") if math.isfinite(p) else (math.nan, "undefined")


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values; NaN stays NaN and does not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def normalise(score, chance, baseline, higher_is_better=True):
    """Chance -> 0, baseline -> 1, whatever the metric's direction; NaN where the baseline is not above
    chance. Works on scalars and arrays."""
    score, chance, baseline = (np.asarray(x, dtype=float) for x in (score, chance, baseline))
    if higher_is_better:
        numerator, denominator = score - chance, baseline - chance
    else:
        numerator, denominator = chance - score, chance - baseline
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)
    return float(result) if result.ndim == 0 else result


# --------------------------------------------------------------------------------------------------- cells
def _verdict(variant: str, baseline: str, n_eff: int, n_base: int, n_bad: int, norm_mean: float, delta: float,
             p_holm: float, higher: bool, eq_low: float, eq_high: float, alpha: float, broken_below: float,
             margin: float) -> str:
    if n_eff == 0:
        return "no data"
    broken = n_bad > n_eff / 2 or (math.isfinite(norm_mean) and norm_mean < broken_below)
    if variant == baseline:
        return "broken" if n_bad > n_eff / 2 else "baseline"
    if broken:
        return "broken"
    if n_eff < 2 or n_base < 2:
        return "untested"
    # TOST (Schuirmann 1987) at alpha: the (1 - 2 alpha) interval of the normalised difference inside the margin.
    # It comes first: a difference shown to lie within the margin is negligible even when it is also significant.
    if math.isfinite(eq_low) and math.isfinite(eq_high) and -margin < eq_low and eq_high < margin:
        return "equivalent"
    if math.isfinite(p_holm) and p_holm < alpha and math.isfinite(delta) and delta != 0:
        return "better" if (delta > 0) == higher else "worse"
    return "inconclusive"


def _normaliser(chance: float, base_mean: float, higher: bool) -> float:
    """The chance-to-baseline range (NaN where the baseline is not above chance)."""
    gap = (base_mean - chance) if higher else (chance - base_mean)
    return gap if math.isfinite(gap) and gap > 0 else math.nan


def _positions(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, list[int]]:
    """The row positions of each group of `frame` by `keys`, in order of first appearance, rows with a missing key
    left out: what `frame.groupby(keys, sort=False)` gives, without its per-group overhead (a sequential replay
    summarises thousands of small tables, and pandas' grouping and indexing cost far more than the statistics)."""
    columns = [frame[key].to_numpy() for key in keys]
    missing = np.zeros(len(frame), dtype=bool)
    for column in columns:
        missing |= np.asarray(pd.isna(column), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*columns)):
        if not missing[i]:
            groups.setdefault(key, []).append(i)
    return groups


def _finite_array(values: np.ndarray) -> np.ndarray:
    """`_finite` of a column's values; a float column (as `clean_runs` leaves them) needs no conversion."""
    if values.dtype == np.float64:
        return values[np.isfinite(values)]
    return _finite(values)


def _sum(values: np.ndarray) -> float:
    """`Series.sum(min_count=1)`, as pandas computes it for a float column (NaN skipped; all NaN: NaN)."""
    if values.dtype != np.float64:
        return float(pd.Series(values).sum(min_count=1))
    missing = np.isnan(values)
    return math.nan if missing.all() else float(np.where(missing, 0.0, values).sum())


def _mean(values: np.ndarray) -> float:
    """`Series.mean()`, as pandas computes it for a float column (the sum with NaN as 0, over the count)."""
    if values.dtype != np.float64:
        return float(pd.Series(values).mean())
    missing = np.isnan(values)
    count = len(values) - int(missing.sum())
    return float(np.where(missing, 0.0, values).sum() / np.float64(count)) if count > 0 else math.nan


def _median(values: np.ndarray) -> float:
    """`Series.median()`, as pandas computes it for a number column (numpy's median of the values present)."""
    if values.dtype.kind in "iu":  # pandas takes the median of an integer column as floats
        values = values.astype("f8")
    if values.dtype != np.float64:
        return float(pd.Series(values).median())
    present = values[~np.isnan(values)]
    return float(np.nanmedian(present)) if len(present) else math.nan


def summarise(runs: pd.DataFrame, baseline: str, *, alpha: float = ALPHA, broken_below: float = BROKEN_BELOW,
              confidence: float = CONFIDENCE, margin: float = MARGIN) -> pd.DataFrame:
    """One row per (ablation, variant, task): counts, statistics, the tests against the baseline, verdict.

    The cells are grouped and read on numpy arrays, not pandas groups and rows: the same numbers, computed as
    pandas computes them, at a small part of the cost (a sequential replay calls this at every look)."""
    if "effective" not in runs.columns:
        runs = clean_runs(runs)
    column = {name: runs[name].to_numpy() for name in ("variant", "status", "effective", "metric",
                                                       "higher_is_better", "chance", "score", "wall_seconds",
                                                       "tokens_per_second", "n_params")}
    rows = []
    for (ablation, task), task_rows in _positions(runs, ["ablation", "task"]).items():
        task_rows = np.asarray(task_rows, dtype=np.intp)
        variants = column["variant"][task_rows]
        base_eff = _finite_array(column["effective"][task_rows[variants == baseline]])
        base_mean = float(base_eff.mean()) if len(base_eff) else math.nan
        by_variant: dict = {}
        for position, variant in zip(task_rows.tolist(), variants.tolist()):
            if not pd.isna(variant):
                by_variant.setdefault(variant, []).append(position)
        for variant, cell in by_variant.items():
            cell = np.asarray(cell, dtype=np.intp)
            status = column["status"][cell]
            statuses = status.tolist()
            counts = {s: statuses.count(s) for s in ("ok", "diverged", "pruned", "failed")}
            ok = np.asarray(status == "ok", dtype=bool)
            effective = _finite_array(column["effective"][cell])
            metric = column["metric"][cell[0]]
            bounds = stats.metric_bounds(metric)
            mean, low, high = stats.t_interval(effective, confidence, bounds)
            higher = bool(column["higher_is_better"][cell[0]])
            chances = column["chance"][cell]
            present = ~np.asarray(pd.isna(chances), dtype=bool)
            chance = float(chances[present][0]) if present.any() else math.nan
            scale = _normaliser(chance, base_mean, higher)
            ends = sorted(normalise(np.array([low, high]), chance, base_mean, higher))
            norm_mean = normalise(mean, chance, base_mean, higher) if len(effective) else math.nan
            norm_low, norm_high = ends if math.isfinite(norm_mean) else (math.nan, math.nan)
            norm_delta = eq_low = eq_high = p_tost = math.nan
            sd_norm = sd_norm_base = math.nan
            if variant == baseline:
                p, note, delta = math.nan, "baseline", 0.0 if len(effective) else math.nan
            else:
                p, note = welch_test(effective, base_eff) if len(base_eff) else (math.nan, "no baseline runs")
                delta = mean - base_mean
                if math.isfinite(scale) and len(effective) and len(base_eff):
                    a = normalise(effective, chance, base_mean, higher)
                    b = normalise(base_eff, chance, base_mean, higher)
                    # the normalised difference is oriented (positive: better) and a difference of two values
                    # of the metric cannot exceed its range
                    width = (bounds[1] - bounds[0]) / scale
                    norm_delta, eq_low, eq_high, se, df = stats.welch_interval(a, b, 1 - 2 * alpha, width)
                    p_tost = stats.tost_p(norm_delta, se, df, margin)
                    sd_norm = float(np.std(a, ddof=1)) if len(a) > 1 else math.nan
                    sd_norm_base = float(np.std(b, ddof=1)) if len(b) > 1 else math.nan
            ok_scores = _finite_array(column["score"][cell[ok]])
            rows.append({
                "ablation": ablation, "variant": variant, "task": task,
                "metric": metric, "higher_is_better": higher, "chance": chance,
                "n_runs": len(cell), "n_ok": counts["ok"], "n_diverged": counts["diverged"],
                "n_pruned": counts["pruned"], "n_failed": counts["failed"],
                "n_eff_": len(effective), "n_base_": len(base_eff), "sd_": sd_norm, "sd_base_": sd_norm_base,
                "mean": mean, "std": float(effective.std(ddof=1)) if len(effective) > 1 else math.nan,
                "ci_low": low, "ci_high": high,
                "mean_ok": float(ok_scores.mean()) if len(ok_scores) else math.nan,
                "baseline_mean": base_mean, "delta": delta, "p_value": p, "test_note": note,
                "norm_mean": norm_mean, "norm_ci_low": norm_low, "norm_ci_high": norm_high,
                "norm_delta": norm_delta, "norm_delta_low": eq_low, "norm_delta_high": eq_high, "p_tost": p_tost,
                "norm_delta_level": 1 - 2 * alpha if math.isfinite(eq_low) else math.nan,  # TOST's interval
                "wall_seconds": _sum(column["wall_seconds"][cell]),
                "tokens_per_second": _mean(column["tokens_per_second"][cell[ok]]),
                "n_params": _median(column["n_params"][cell]),
            })
    columns = ["ablation", "variant", "task", "metric", "higher_is_better", "chance", "n_runs", "n_ok",
               "n_diverged", "n_pruned", "n_failed", "mean", "std", "ci_low", "ci_high", "mean_ok",
               "baseline_mean", "delta", "p_value", "p_holm", "test_note", "norm_mean", "norm_ci_low",
               "norm_ci_high", "norm_delta", "norm_delta_low", "norm_delta_high", "norm_delta_level", "p_tost",
               "verdict", "seeds_to_decide", "wall_seconds", "tokens_per_second", "n_params"]
    if not rows:
        return pd.DataFrame(columns=columns)
    p_values = np.array([r["p_value"] for r in rows], dtype=float)
    p_holm = np.full(len(rows), np.nan)
    by_ablation: dict = {}
    for i, r in enumerate(rows):
        by_ablation.setdefault(r["ablation"], []).append(i)
    for index in by_ablation.values():
        p_holm[index] = holm(p_values[index])
    verdicts = []
    for r, p in zip(rows, p_holm.tolist()):
        verdicts.append(_verdict(r["variant"], baseline, r["n_eff_"], r["n_base_"], r["n_diverged"] + r["n_failed"],
                                 r["norm_mean"], r["delta"], p, r["higher_is_better"], r["norm_delta_low"],
                                 r["norm_delta_high"], alpha, broken_below, margin))
    # How many seeds would decide an inconclusive cell, if its observed difference and spreads were the truth; the
    # difference test at Holm's strictest level (alpha over the number of tested cells), TOST at alpha.
    tested = max(1, int((~np.isnan(p_values)).sum()))
    needed = [(stats.seeds_to_decide(r["norm_delta"], r["sd_"], r["sd_base_"], margin,
                                     alpha_difference=alpha / tested, alpha_equivalence=alpha)
               if verdict == "inconclusive" else None)
              for r, verdict in zip(rows, verdicts)]
    order = _variant_order(runs, baseline)
    for r, p, verdict, n in zip(rows, p_holm.tolist(), verdicts, needed):
        r.update(p_holm=p, verdict=verdict, seeds_to_decide=pd.NA if n is None else int(n))
    if all(isinstance(r["ablation"], str) for r in rows):  # sorted here, as sort_values below sorts them
        rank = {variant: i for i, variant in enumerate(order)}
        rows.sort(key=lambda r: (r["ablation"], rank[r["variant"]]))
        cells = pd.DataFrame(rows, columns=columns)
    else:
        cells = pd.DataFrame(rows)
        cells["_v"] = cells["variant"].map(order.index)
        cells = cells.sort_values(["ablation", "_v"], kind="stable").drop(columns="_v").reset_index(drop=True)
        cells = cells[columns]
    cells["seeds_to_decide"] = pd.array(cells["seeds_to_decide"].tolist(), dtype="Int64")
    return cells


def _variant_order(runs: pd.DataFrame, baseline: str) -> list[str]:
    variants = list(dict.fromkeys(runs["variant"]))
    return ([baseline] if baseline in variants else []) + [v for v in variants if v != baseline]


# ---------------------------------------------------------------------------------------------- resilience
def resilience(runs: pd.DataFrame, baseline: str, *, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
               confidence: float = CONFIDENCE, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per variant: the mean over tasks of its normalised score and a bootstrap interval.

    The interval is NaN, with the reason in `ci_note`, unless every task the score averages over has at least
    2 runs of the variant and of the baseline (with one seed there is nothing to resample), or when more than
    (1 - confidence) / 2 of the replicates resample a baseline no better than chance (its runs diverged), where
    the normalised scale itself is undefined and a percentile interval would be meaningless."""
    if "effective" not in runs.columns:
        runs = clean_runs(runs)
    cells = summarise(runs, baseline) if cells is None else cells
    rng = np.random.default_rng(seed)
    rows = []
    tasks = list(dict.fromkeys(runs["task"]))
    for variant in _variant_order(runs, baseline):
        own = cells[cells["variant"] == variant]
        replicates, point, defined, undefined, note = [], [], [], [], ""
        for task in tasks:
            row = own[own["task"] == task]
            if row.empty:
                continue
            row = row.iloc[0]
            if not math.isfinite(row["norm_mean"]):
                undefined.append(task)
                continue
            defined.append(task)
            point.append(row["norm_mean"])
            if variant == baseline or n_boot <= 0 or note:
                continue
            v = _finite(runs.loc[(runs["variant"] == variant) & (runs["task"] == task), "effective"])
            b = _finite(runs.loc[(runs["variant"] == baseline) & (runs["task"] == task), "effective"])
            if len(v) < 2 or len(b) < 2:
                note = "needs ≥ 2 runs per task"
                continue
            sign = 1.0 if row["higher_is_better"] else -1.0
            v_gap = (v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1) - row["chance"]) * sign
            b_gap = (b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1) - row["chance"]) * sign
            usable = b_gap > 1e-9 * max(1.0, abs(row["chance"]))
            replicates.append(np.where(usable, v_gap / np.where(usable, b_gap, 1.0), np.nan))
        score = float(np.mean(point)) if point else math.nan
        low = high = math.nan
        if not point:
            note = "undefined: no task where the baseline beats chance"
        elif variant == baseline:
            note = "the baseline is 1 by definition"
        elif n_boot <= 0:
            note = "no bootstrap"
        elif not note and replicates:
            stacked = np.vstack(replicates).mean(axis=0)  # NaN where any task's baseline resample is at chance
            if np.isnan(stacked).mean() > (1 - confidence) / 2:
                note = "unstable: the baseline resamples to chance (diverged runs)"
            else:
                stacked = stacked[np.isfinite(stacked)]
                low, high = (float(q) for q in np.percentile(stacked, [50 * (1 - confidence),
                                                                       50 * (1 + confidence)]))
        verdicts = own["verdict"].value_counts()
        rows.append({
            "variant": variant, "resilience": score, "ci_low": low, "ci_high": high, "ci_note": note,
            "n_tasks": len(defined), "tasks_undefined": ", ".join(undefined),
            "n_runs": int(own["n_runs"].sum()), "n_ok": int(own["n_ok"].sum()),
            "n_diverged": int(own["n_diverged"].sum()), "n_pruned": int(own["n_pruned"].sum()),
            "n_failed": int(own["n_failed"].sum()),
            **{f"n_{v}": int(verdicts.get(v, 0)) for v in VERDICT_COUNTS},
            "n_resilient": int(sum(verdicts.get(v, 0) for v in RESILIENT)),
        })
    return pd.DataFrame(rows, columns=["variant", "resilience", "ci_low", "ci_high", "ci_note", "n_tasks",
                                       "tasks_undefined", "n_runs", "n_ok", "n_diverged", "n_pruned", "n_failed",
                                       *[f"n_{v}" for v in VERDICT_COUNTS], "n_resilient"])


# ----------------------------------------------------------------------------------------- robust aggregates
def normalised_runs(runs: pd.DataFrame, baseline: str, cells: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """{variant: {task: normalised effective scores of its runs}} on the tasks where the baseline beats chance
    (each normalised by the baseline's mean on that task, as the cells are)."""
    if "effective" not in runs.columns:
        runs = clean_runs(runs)
    base = cells[cells["variant"] == baseline].set_index("task")
    tasks = [t for t in dict.fromkeys(runs["task"]) if t in base.index and math.isfinite(base.at[t, "norm_mean"])]
    out: dict[str, dict[str, np.ndarray]] = {}
    for variant in _variant_order(runs, baseline):
        own = {}
        for task in tasks:
            row = cells[(cells["variant"] == variant) & (cells["task"] == task)]
            values = _finite(runs.loc[(runs["variant"] == variant) & (runs["task"] == task), "effective"])
            if row.empty or not len(values):
                continue
            row = row.iloc[0]
            own[task] = np.atleast_1d(normalise(values, row["chance"], row["baseline_mean"],
                                                bool(row["higher_is_better"])))
        out[variant] = own
    return out


def robust(runs: pd.DataFrame, baseline: str, cells: pd.DataFrame, *, n_boot: int = N_BOOTSTRAP,
           seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per variant, as rliable reports (Agarwal et al. 2021, https://arxiv.org/abs/2108.13264): the IQM of
    its normalised runs pooled over tasks, and the probability that one of its runs beats one of the baseline's on
    the same task, each with a stratified-bootstrap percentile interval (runs resampled within tasks). Only the
    tasks both variant and baseline ran are used; intervals need >= 2 runs of each on every such task."""
    scores = normalised_runs(runs, baseline, cells)
    base = scores.get(baseline, {})
    rows = []
    for variant, own in scores.items():
        tasks = [t for t in own if t in base]
        row = {"variant": variant, "n_tasks": len(tasks), "n_runs": int(sum(len(own[t]) for t in tasks)),
               "iqm": math.nan, "iqm_low": math.nan, "iqm_high": math.nan, "p_improvement": math.nan,
               "p_improvement_low": math.nan, "p_improvement_high": math.nan, "note": ""}
        if not tasks:
            row["note"] = "no task where the baseline beats chance"
            rows.append(row)
            continue
        x = [own[t] for t in tasks]
        y = [base[t] for t in tasks]
        row["iqm"] = stats.iqm(np.concatenate(x))
        if variant != baseline:
            row["p_improvement"] = stats.probability_of_improvement(x, y)
        if n_boot <= 0:
            row["note"] = "no bootstrap"
        elif min(len(v) for v in x + y) < 2:
            row["note"] = "needs ≥ 2 runs per task"
        else:
            row["iqm_low"], row["iqm_high"] = stats.iqm_interval(x, n_boot=n_boot, confidence=confidence, seed=seed)
            if variant != baseline:
                row["p_improvement_low"], row["p_improvement_high"] = stats.improvement_interval(
                    x, y, n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append(row)
    return pd.DataFrame(rows, columns=["variant", "n_tasks", "n_runs", "iqm", "iqm_low", "iqm_high",
                                       "p_improvement", "p_improvement_low", "p_improvement_high", "note"])


# ----------------------------------------------------------------------------------------- optimisability
def _task_info(runs: pd.DataFrame, task: str) -> tuple[str, bool, float]:
    """(metric, higher_is_better, chance) of a task: from runs.csv, else from the task registry."""
    rows = runs[runs["task"] == task]
    if len(rows):
        chance = rows["chance"].dropna()
        return rows["metric"].iloc[0], bool(rows["higher_is_better"].iloc[0]), (
            float(chance.iloc[0]) if len(chance) else math.nan)
    try:
        from tasks import TASKS
        from tasks.base import parse_task_label

        instance = TASKS.get(parse_task_label(task)[0])()
        return instance.metric, bool(instance.higher_is_better), float(instance.chance)
    except Exception:  # an unknown or costly task: the caller falls back to the trials' own range
        return "val_score", True, math.nan


def optimisability(trials: pd.DataFrame | None, runs: pd.DataFrame, baseline: str, *,
                   tolerance: float = LR_TOLERANCE) -> pd.DataFrame | None:
    """Per (variant, task): how wide the learning-rate basin around the best trial is, in decades."""
    if trials is None or trials.empty:
        return None
    rows = []
    for task, task_trials in trials.groupby("task", sort=False):
        metric, higher, chance = _task_info(runs, task)
        sign = 1.0 if higher else -1.0
        ok = task_trials[(task_trials["status"] == "ok") & task_trials["val_score"].notna()]
        base_ok = ok[ok["variant"] == baseline]
        reference = (base_ok if len(base_ok) else ok)["val_score"]
        best_ref = (reference.max() if higher else reference.min()) if len(reference) else math.nan
        if not math.isfinite(chance):  # no chance level known: the worst trial of the task stands in
            chance = (ok["val_score"].min() if higher else ok["val_score"].max()) if len(ok) else math.nan
        scale = abs(best_ref - chance) if math.isfinite(best_ref) and math.isfinite(chance) else math.nan
        if not scale or not math.isfinite(scale):
            scale = float(ok["val_score"].max() - ok["val_score"].min()) if len(ok) else math.nan
        for variant, group in task_trials.groupby("variant", sort=False):
            # pruned trials were stopped early by the tuner: their final value is unknown, so they neither
            # count as reaching the best nor break the range (they are counted only)
            n_pruned = int((group["status"] == "pruned").sum())
            tried = group.loc[group["lr"] > 0, "lr"]
            group = group[(group["lr"] > 0) & (group["status"] != "pruned")]
            group = group.sort_values("lr", kind="stable").reset_index(drop=True)
            good_ok = (group["status"] == "ok") & group["val_score"].notna()
            row = {"variant": variant, "task": task, "metric": metric, "higher_is_better": higher,
                   "n_trials": len(group), "n_ok": int(good_ok.sum()),
                   "n_diverged": int((group["status"] == "diverged").sum()),
                   "n_pruned": n_pruned,
                   "n_failed": int((group["status"] == "failed").sum()),
                   "best_val": math.nan, "best_lr": math.nan, "lr_low": math.nan, "lr_high": math.nan,
                   "decades": math.nan, "decades_tried": math.nan}
            if len(tried):
                row["decades_tried"] = float(np.log10(tried.max() / tried.min()))
            if good_ok.any():
                values = group["val_score"].where(good_ok)
                best = int((values * sign).idxmax())
                best_val = float(values[best])
                tol = tolerance * scale if math.isfinite(scale) else 0.0
                near = good_ok & ((best_val - values) * sign <= tol + 1e-12)
                low = high = best
                while low - 1 >= 0 and near[low - 1]:
                    low -= 1
                while high + 1 < len(group) and near[high + 1]:
                    high += 1
                row.update(best_val=best_val, best_lr=float(group["lr"][best]), lr_low=float(group["lr"][low]),
                           lr_high=float(group["lr"][high]),
                           decades=float(np.log10(group["lr"][high] / group["lr"][low])))
            rows.append(row)
    frame = pd.DataFrame(rows)
    order = _variant_order(trials, baseline)
    frame["_v"] = frame["variant"].map(order.index)
    return frame.sort_values(["_v"], kind="stable").drop(columns="_v").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- together
@dataclass
class Aggregate:
    """Everything the report needs from one results directory."""

    results: ResultSet
    cells: pd.DataFrame
    resilience: pd.DataFrame
    optimisability: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    robust: pd.DataFrame | None = None
    margin: float = MARGIN
    n_boot: int = N_BOOTSTRAP
    sequence: object = None  # the sequential record whose verdicts the cells carry (None: absent, or stale)

    @property
    def runs(self) -> pd.DataFrame:
        return self.results.runs

    @property
    def baseline(self) -> str:
        return self.results.baseline


def aggregate(results: ResultSet, *, n_boot: int = N_BOOTSTRAP, margin: float | None = None) -> Aggregate:
    """Every statistic of a result set; `margin` (default: the one it was run with, `results.margin`) is the
    equivalence margin in normalised units."""
    runs, baseline = results.runs, results.baseline
    margin = results.margin if margin is None else float(margin)
    cells = summarise(runs, baseline, margin=margin)
    # With ablation.seeds=auto the verdicts are the sequential design's, each tested at its look's share of alpha
    # (ablations/analyse/sequential.py): a fixed-sample test of the seeds a cell ended with would not keep its
    # level after stopping on the data.
    from ablations.analyse import sequential

    record = sequential.read(results.directory) if results.directory is not None else None
    notes = []
    # A later fixed-seed command (`seed=3`, a list of seeds) may have added runs that no look judged: the recorded
    # verdicts then no longer describe the directory, so they are set aside and the cells keep the fixed-sample
    # verdicts of all their runs, with a note saying so (the record stays, for an `ablation.seeds=auto` rerun).
    unjudged = record.stale(runs) if record is not None and len(runs) else []
    if unjudged:
        notes.append(f"The sequential record ({sequential.RECORD}) is stale: {len(unjudged)} run(s) of its cells were "
                     f"added after it by another command ({', '.join(unjudged[:3])}{' ...' if len(unjudged) > 3 else ''})"
                     f", so the verdicts below are fixed-sample ones on every run, not the sequential design's; their "
                     f"level is approximate, since seeds were first chosen by data.")
        record = None
    cells = sequential.overlay(cells, record)
    table = resilience(runs, baseline, n_boot=n_boot, cells=cells)
    if len(runs) and baseline not in set(runs["variant"]):
        notes.append(f"The baseline variant `{baseline}` has no runs: nothing can be compared or normalised.")
    for row in cells[cells["variant"] == baseline].itertuples():
        if not math.isfinite(row.norm_mean) and row.n_runs - row.n_pruned > 0:
            notes.append(f"On {row.task} the baseline is no better than chance ({row.metric} {row.mean:.4g}, "
                         f"chance {row.chance:.4g}): normalised scores are undefined there and the task is left "
                         f"out of resilience scores.")
    return Aggregate(results=results, cells=cells, resilience=table,
                     optimisability=optimisability(results.trials, runs, baseline), notes=notes,
                     robust=robust(runs, baseline, cells, n_boot=n_boot), margin=margin, n_boot=n_boot,
                     sequence=record)


def compare(a: Aggregate, b: Aggregate, labels: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two result sets side by side: (per variant resilience, per cell normalised score and verdict).
    `difference` is a's resilience minus b's."""
    la, lb = labels
    ra = a.resilience[["variant", "resilience", "ci_low", "ci_high"]]
    rb = b.resilience[["variant", "resilience", "ci_low", "ci_high"]]
    variants = ra.merge(rb, on="variant", how="outer", suffixes=(f" {la}", f" {lb}"), sort=False)
    variants["difference"] = variants[f"resilience {la}"] - variants[f"resilience {lb}"]
    order = list(dict.fromkeys([*a.resilience["variant"], *b.resilience["variant"]]))
    variants = variants.set_index("variant").loc[order].reset_index()
    ca = a.cells[["variant", "task", "metric", "mean", "norm_mean", "verdict"]]
    cb = b.cells[["variant", "task", "metric", "mean", "norm_mean", "verdict"]]
    cells = ca.merge(cb, on=["variant", "task"], how="outer", suffixes=(f" {la}", f" {lb}"))
    cells["metric"] = cells[f"metric {la}"].fillna(cells[f"metric {lb}"])
    cells = cells.drop(columns=[f"metric {la}", f"metric {lb}"])
    cells["_v"] = cells["variant"].map(order.index)
    cells = cells.sort_values(["_v"], kind="stable").drop(columns="_v").reset_index(drop=True)
    return variants, cells


# ------------------------------------------------------------------------------------------ learning curves
def _same_task(result: dict, label) -> bool:
    """Whether a run's result.json is of the task that runs.csv names. runs.csv names a task level by its label
    (`copy@length=16`) while result.json names the task (`copy`) and holds the level in its config, so the two are
    compared by name and level."""
    if str(result.get("task")) == str(label):
        return True
    try:
        name, level = parse_task_label(str(label))
    except ConfigError:
        return False
    config = (result.get("config") or {}).get("task") or {}
    return str(result.get("task")) == name and all(str(config.get(k)) == v for k, v in level.items())


def resolve_run_dir(directory: Path, run: dict | pd.Series) -> Path | None:
    """Where a run's files are. `run_dir` in runs.csv is relative to the directory `ablate` ran in, which the
    report does not know: an absolute path is used as is; a relative one is tried against the results directory
    and each of its parents (nearest first), then the current directory, then the standard layout
    `<directory>/runs/<variant>/<task>/s<seed>`. A candidate whose result.json names another run is skipped, so
    two copies of `results/<name>` (e.g. in compare mode) never read each other's curves. None if not found."""
    directory = Path(directory).resolve()
    given = str(run.get("run_dir") or "")
    candidates = []
    if given:
        path = Path(given)
        if path.is_absolute():
            candidates.append(path)
        else:
            candidates += [base / path for base in (directory, *directory.parents)]
            candidates.append(Path.cwd() / path)
    seed = run.get("seed")
    if not pd.isna(seed):
        candidates.append(directory / "runs" / str(run.get("variant")) / str(run.get("task")) / f"s{int(seed)}")
    for candidate in candidates:
        if not candidate.is_dir():
            continue
        result = candidate / "result.json"
        if result.exists():
            try:
                data = json.loads(result.read_text())
                if str(data.get("variant")) != str(run.get("variant")) or not _same_task(data, run.get("task")):
                    continue
                if not pd.isna(seed) and data.get("seed") is not None and int(data["seed"]) != int(seed):
                    continue
            except (OSError, json.JSONDecodeError, TypeError, ValueError):
                pass
        if (candidate / "metrics.csv").exists() or result.exists():
            return candidate
    return None


def read_curves(results: ResultSet) -> pd.DataFrame:
    """Validation curves of every run: variant, task, seed, status, metric, step, value (the task's metric on
    the validation split, from Lightning's metrics.csv). Runs without a readable log are skipped."""
    frames = []
    for run in results.runs.to_dict("records"):
        run_dir = resolve_run_dir(results.directory, run)
        if run_dir is None or not (run_dir / "metrics.csv").exists():
            continue
        try:
            log = pd.read_csv(run_dir / "metrics.csv")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
            continue
        column = f"val/{run['metric']}"
        if column not in log.columns or "step" not in log.columns:
            continue
        log = log[["step", column]].apply(pd.to_numeric, errors="coerce").dropna()
        log = log.groupby("step", as_index=False)[column].last()  # one value per step
        if log.empty:
            continue
        frames.append(pd.DataFrame({"variant": run["variant"], "task": run["task"], "seed": run["seed"],
                                    "status": run["status"], "metric": run["metric"], "step": log["step"],
                                    "value": log[column]}))
    if not frames:
        return pd.DataFrame(columns=["variant", "task", "seed", "status", "metric", "step", "value"])
    return pd.concat(frames, ignore_index=True)
