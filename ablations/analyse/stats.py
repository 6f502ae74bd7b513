"""The statistical tools behind the verdicts and aggregates, each small enough to check against scipy by hand.

* **Bounded intervals.** `t_interval` is the Student-t interval for a mean, intersected with the metric's feasible
  range (`METRIC_BOUNDS`: an accuracy lies in [0, 1], bits per character in [0, inf)). The true mean lies in that
  range, so the intersection keeps the t-interval's coverage and never shows an impossible value. Why not a
  bootstrap over seeds: with 2 or 3 seeds a percentile (or BCa) bootstrap interval cannot reach beyond the
  observed seeds, so it covers far less often than it claims (at 2 seeds about half the time; the test
  `test_clipped_t_keeps_its_coverage_where_the_percentile_bootstrap_does_not` measures it), while the t-interval
  widens as it should.
* **Difference to the baseline.** `welch_interval`: the Welch-Satterthwaite interval for mean(a) - mean(b)
  (Welch 1947), clipped to the feasible range of a difference. `tost_p`: the two one-sided tests of Schuirmann
  (1987) against an equivalence margin; TOST at level alpha rejects "|difference| >= margin" exactly when the
  (1 - 2 alpha) interval lies inside (-margin, margin).
* **Seeds to decide.** `seeds_to_decide`: the smallest number of seeds per side at which, if the observed
  difference and spreads were the truth, a Welch test (two-sided) or TOST would decide with the given power;
  power from the noncentral t distribution (the usual approximation for TOST: P(both one-sided tests reject)
  >= P(lower rejects) + P(upper rejects) - 1; Chow, Shao & Wang 2008, "Sample Size Calculations in Clinical
  Research", ch. 3).
* **Aggregates across tasks** as rliable computes them (Agarwal et al. 2021, "Deep Reinforcement Learning at the
  Edge of the Statistical Precipice", https://arxiv.org/abs/2108.13264): the interquartile mean of normalised
  run scores pooled over tasks, the probability of improvement (the Mann-Whitney U statistic over n*m, averaged
  over tasks), the performance profile (the fraction of runs above tau, averaged over tasks), each with a
  stratified bootstrap interval: scipy.stats.bootstrap with one sample per task (and per variant), so runs are
  resampled within their task and tasks are kept fixed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

ALPHA = 0.05          # level of every test: the Holm-corrected difference test and each one-sided test of TOST
CONFIDENCE = 0.95     # level of the intervals shown for means and aggregates
MARGIN = 0.05         # equivalence margin, in normalised units (a fraction of the chance-to-baseline range)
POWER = 0.8           # power at which `seeds_to_decide` counts seeds
MAX_SEEDS = 1000      # beyond this many seeds per side, `seeds_to_decide` gives up (None)

#: the feasible range of each metric's value; a metric not named here is unbounded
METRIC_BOUNDS = {"accuracy": (0.0, 1.0), "bits_per_char": (0.0, math.inf)}


def metric_bounds(metric: str) -> tuple[float, float]:
    return METRIC_BOUNDS.get(str(metric), (-math.inf, math.inf))


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _t(df: float, level: float) -> float:
    """`scipy.stats.t.ppf(level, df)`. Why not call it always: its argument checks cost about 30 times the quantile
    itself, and `seeds_to_decide` takes dozens per cell at every look of a sequential replay. Where those checks
    pass (0 < level < 1, df > 0), `t.ppf` is `special.stdtrit(df, level) * 1 + 0`, so this is the same number."""
    if 0 < level < 1 and df > 0:
        from scipy import special

        return float(special.stdtrit(df, level) * 1.0 + 0.0)
    from scipy import stats  # lazily: scipy is slow to import

    return float(stats.t.ppf(level, df))


def t_interval(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval for the mean, intersected with `bounds`; low/high NaN with fewer
    than 2 values."""
    values = finite(values)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = _t(len(values) - 1, 0.5 + confidence / 2) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, max(mean - half, bounds[0]), min(mean + half, bounds[1])


def welch_se_df(var_a: float, n_a: int, var_b: float, n_b: int) -> tuple[float, float]:
    """Standard error of mean(a) - mean(b) and its Welch-Satterthwaite degrees of freedom (inf at zero spread)."""
    va, vb = var_a / n_a, var_b / n_b
    se = math.sqrt(va + vb)
    denominator = (va ** 2 / (n_a - 1) if va else 0.0) + (vb ** 2 / (n_b - 1) if vb else 0.0)
    df = (va + vb) ** 2 / denominator if denominator > 0 else math.inf
    return se, df


def welch_interval(a, b, confidence: float, width: float = math.inf) -> tuple[float, float, float, float, float]:
    """(difference, low, high, se, df) for mean(a) - mean(b): the Welch-Satterthwaite t-interval at `confidence`,
    clipped to [-width, width] (the feasible range of a difference of two values within a range of that width).
    NaN with fewer than 2 values on a side; zero spread on both sides gives the point [difference, difference]."""
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
        return diff, math.nan, math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    se, df = welch_se_df(float(a.var(ddof=1)), len(a), float(b.var(ddof=1)), len(b))
    half = 0.0 if se == 0 else _t(df, 0.5 + confidence / 2) * se
    return diff, max(diff - half, -width), min(diff + half, width), se, df


def tost_p(diff: float, se: float, df: float, margin: float) -> float:
    """p-value of the two one-sided tests (Schuirmann 1987) of H0: |true difference| >= margin: the larger of the
    two one-sided p-values. p < alpha exactly when the (1 - 2 alpha) Welch interval lies inside (-margin, margin)."""
    from scipy import stats

    if not (math.isfinite(diff) and math.isfinite(se)):
        return math.nan
    if se == 0:
        return 0.0 if abs(diff) < margin else 1.0
    p_lower = float(stats.t.sf((diff + margin) / se, df))   # H0: difference <= -margin
    p_upper = float(stats.t.cdf((diff - margin) / se, df))  # H0: difference >= +margin
    return max(p_lower, p_upper)


def _nct_sf(x: float, df: float, shift: float) -> float:
    """P(T > x) for a noncentral t; scipy's series fails (NaN) far in the tails at large df and shift, where the
    normal approximation of T - shift is accurate."""
    from scipy import stats

    if math.isfinite(df) and df > 0 and math.isfinite(x) and math.isfinite(shift):
        value = _nct_sf_value(x, df, shift)
    else:
        value = float(stats.nct.sf(x, df, shift)) if math.isfinite(df) else math.nan
    return value if math.isfinite(value) else float(stats.norm.sf(x - shift))


def _nct_sf_value(x: float, df: float, shift: float) -> float:
    """`scipy.stats.nct.sf(x, df, shift)` for finite x and shift and finite df > 0, where its argument checks pass
    and it is its `_sf`, the clipped special function (the same number at a small part of the cost); scipy's own
    call where that function is not where this scipy keeps it."""
    try:
        from scipy.special._ufuncs import _nct_sf
    except ImportError:
        from scipy import stats

        return float(stats.nct.sf(x, df, shift))
    with np.errstate(over="ignore"):
        return float(np.clip(_nct_sf(x, df, shift), 0, 1))


def _power_difference(delta: float, sd_a: float, sd_b: float, n: int, alpha: float) -> float:
    se, df = welch_se_df(sd_a ** 2, n, sd_b ** 2, n)
    if se == 0:
        return 1.0 if delta else 0.0
    crit = _t(df, 1 - alpha / 2)
    shift = abs(delta) / se
    return _nct_sf(crit, df, shift) + 1.0 - _nct_sf(-crit, df, shift)


def _power_tost(delta: float, sd_a: float, sd_b: float, n: int, margin: float, alpha: float) -> float:
    se, df = welch_se_df(sd_a ** 2, n, sd_b ** 2, n)
    if se == 0:
        return 1.0 if abs(delta) < margin else 0.0
    crit = _t(df, 1 - alpha)
    lower = _nct_sf(crit, df, (delta + margin) / se)          # P(the test of difference <= -margin rejects)
    upper = 1.0 - _nct_sf(-crit, df, (delta - margin) / se)   # P(the test of difference >= +margin rejects)
    return max(0.0, lower + upper - 1.0)


def seeds_to_decide(delta: float, sd_a: float, sd_b: float, margin: float, *, alpha_difference: float = ALPHA,
                    alpha_equivalence: float = ALPHA, power: float = POWER, max_seeds: int = MAX_SEEDS
                    ) -> int | None:
    """Seeds per side at which a cell with true difference `delta` and spreads `sd_a`, `sd_b` (all in the same
    units as `margin`) is decided with probability `power`: the Welch test at `alpha_difference` finds the
    difference, or TOST at `alpha_equivalence` finds equivalence, whichever needs fewer. None when more than
    `max_seeds` would be needed or the inputs are undefined."""
    if not all(math.isfinite(x) for x in (delta, sd_a, sd_b)) or (sd_a == 0 and sd_b == 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)

        def decides(n: int) -> bool:
            return (_power_difference(delta, sd_a, sd_b, n, alpha_difference) >= power
                    or _power_tost(delta, sd_a, sd_b, n, margin, alpha_equivalence) >= power)

        if not decides(max_seeds):
            return None
        low, high = 2, max_seeds  # powers grow with n: bisect for the smallest n that decides
        while low < high:
            mid = (low + high) // 2
            if decides(mid):
                high = mid
            else:
                low = mid + 1
        return low


# ---------------------------------------------------------------------------- aggregates, as rliable does
def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% of the values (Agarwal et al. 2021; rliable's
    `aggregate_iqm` is scipy.stats.trim_mean(scores, 0.25) over every run of every task)."""
    from scipy import stats

    values = finite(values)
    return float(stats.trim_mean(values, 0.25)) if len(values) else math.nan


def _iqm_along(values: np.ndarray) -> np.ndarray:
    from scipy import stats

    return stats.trim_mean(values, 0.25, axis=-1)


def probability_of_improvement(x_tasks: list, y_tasks: list) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run X of one variant and Y of the other on the same task, averaged over
    tasks (Agarwal et al. 2021, eq. in Sec. 4.3; the Mann-Whitney U statistic over n*m per task)."""
    values = [_pairwise(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(x_tasks, y_tasks)]
    return float(np.mean(values)) if values else math.nan


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 along the last axis of x and y (leading axes: bootstrap replicates)."""
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-1, -2))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-1, -2))
    return gt + 0.5 * eq


def profile(tasks: list, taus) -> np.ndarray:
    """Performance profile: for each tau, the fraction of runs with a score above tau, averaged over tasks
    (rliable's run-score distribution)."""
    taus = np.asarray(taus, dtype=float)
    return np.mean([(np.asarray(t, float)[None, :] > taus[:, None]).mean(axis=1) for t in tasks], axis=0)


def stratified_bootstrap(samples: list, statistic, *, n_boot: int, confidence: float = CONFIDENCE, seed: int = 0):
    """Percentile interval(s) of `statistic(*samples)` by scipy.stats.bootstrap with every sample resampled on its
    own (the stratified bootstrap of rliable: runs resampled within each task, tasks fixed). `statistic` takes the
    samples with a leading replicate axis allowed and returns a scalar or a 1-D array per replicate. Returns
    (low, high), arrays for a vector statistic."""
    from scipy import stats

    samples = [np.asarray(s, dtype=float) for s in samples]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap(samples, lambda *s, axis=-1: statistic(*s), n_resamples=n_boot,
                                 confidence_level=confidence, method="percentile", vectorized=True, paired=False,
                                 rng=np.random.default_rng(seed))
    return result.confidence_interval.low, result.confidence_interval.high


def iqm_interval(tasks: list, *, n_boot: int, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Stratified-bootstrap percentile interval of the IQM of the runs of all `tasks` pooled."""
    def statistic(*samples):
        return _iqm_along(np.concatenate(samples, axis=-1))

    low, high = stratified_bootstrap(tasks, statistic, n_boot=n_boot, confidence=confidence, seed=seed)
    return float(low), float(high)


def improvement_interval(x_tasks: list, y_tasks: list, *, n_boot: int, confidence: float = CONFIDENCE,
                         seed: int = 0) -> tuple[float, float]:
    """Stratified-bootstrap percentile interval of `probability_of_improvement` (both variants' runs resampled
    within each task)."""
    k = len(x_tasks)
    samples = [s for pair in zip(x_tasks, y_tasks) for s in pair]

    def statistic(*s):
        return np.mean([_pairwise(s[2 * i], s[2 * i + 1]) for i in range(k)], axis=0)

    low, high = stratified_bootstrap(samples, statistic, n_boot=n_boot, confidence=confidence, seed=seed)
    return float(low), float(high)


def profile_band(tasks: list, taus, *, n_boot: int, confidence: float = CONFIDENCE, seed: int = 0):
    """Pointwise stratified-bootstrap percentile band (low, high) of the performance profile at `taus`."""
    taus = np.asarray(taus, dtype=float)

    def statistic(*samples):
        values = np.mean([(s[..., None, :] > taus[:, None]).mean(axis=-1) for s in samples], axis=0)
        return np.moveaxis(values, -1, 0)  # scipy wants the statistic's own axis first, the replicates last

    return stratified_bootstrap(tasks, statistic, n_boot=n_boot, confidence=confidence, seed=seed)
