"""The verdict vocabulary, bounded intervals, seeds-to-decide and the rliable aggregates, on synthetic cells whose
answer is known, cross-checked against scipy and against direct computations."""

import math
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ablations.analyse import stats
from ablations.analyse.aggregate import aggregate, clean_runs, load, normalised_runs, summarise
from tests.ablations.fixtures.synthetic import make_results, runs_frame, scores


def _cells(spec, baseline="baseline", **kwargs):
    return summarise(clean_runs(runs_frame(spec)), baseline, **kwargs).set_index(["variant", "task"])


# ----------------------------------------------------------------------------------------------- verdicts
def test_identical_scores_are_equivalent_only_when_the_interval_fits_inside_the_margin():
    from scipy import stats as st

    tight = scores(0.9, 0.02, 5)
    cells = _cells({("baseline", "copy"): tight, ("twin", "copy"): list(tight)})
    twin = cells.loc[("twin", "copy")]
    assert twin["verdict"] == "equivalent"
    assert twin["delta"] == pytest.approx(0.0) and twin["p_value"] == pytest.approx(1.0)
    assert twin["norm_mean"] == pytest.approx(1.0) and twin["norm_delta"] == pytest.approx(0.0)
    # the equivalence interval is scipy's 90% Welch interval (TOST at 0.05) over the chance-to-baseline range
    scale = np.mean(tight) - 0.1
    low, high = st.ttest_ind(tight, tight, equal_var=False).confidence_interval(0.90)
    assert twin["norm_delta_low"] == pytest.approx(low / scale)
    assert twin["norm_delta_high"] == pytest.approx(high / scale)
    assert high / scale < 0.05 and twin["p_tost"] < 0.05
    assert cells.loc[("baseline", "copy"), "verdict"] == "baseline"
    # the same identical copies at a spread whose interval overflows the margin: nothing is shown either way
    wide = scores(0.9, 0.1, 3)
    twin = _cells({("baseline", "copy"): wide, ("twin", "copy"): list(wide)}).loc[("twin", "copy")]
    assert twin["verdict"] == "inconclusive" and twin["norm_delta_high"] > 0.05 and twin["p_tost"] > 0.05
    assert twin["seeds_to_decide"] > 3
    # and the tight pair under a margin narrower than its interval
    narrow = _cells({("baseline", "copy"): tight, ("twin", "copy"): list(tight)}, margin=0.01)
    assert narrow.loc[("twin", "copy"), "verdict"] == "inconclusive"
    assert narrow.loc[("twin", "copy"), "seeds_to_decide"] > 5


def test_a_large_effect_over_three_seeds_is_worse_and_better_in_the_other_direction():
    cells = _cells({("baseline", "copy"): scores(0.80, 0.02, 3, 1), ("hurt", "copy"): scores(0.45, 0.03, 3, 2),
                    ("helps", "copy"): scores(0.97, 0.01, 3, 3)})
    hurt = cells.loc[("hurt", "copy")]
    assert hurt["verdict"] == "worse" and hurt["p_holm"] < 0.01
    assert hurt["norm_delta"] == pytest.approx(-0.5) and hurt["norm_delta_high"] < -0.05
    assert cells.loc[("helps", "copy"), "verdict"] == "better"


def test_a_significant_difference_inside_the_margin_is_equivalent():
    base = scores(0.900, 0.001, 6, 1)
    cells = _cells({("baseline", "copy"): base, ("v", "copy"): [x - 0.01 for x in base]})
    v = cells.loc[("v", "copy")]
    assert v["p_holm"] < 0.001 and v["verdict"] == "equivalent"  # 0.0125 of the range: negligible


def test_one_seed_is_untested():
    cells = _cells({("baseline", "copy"): [0.9, 0.91, 0.92], ("v", "copy"): [0.4]})
    assert cells.loc[("v", "copy"), "verdict"] == "untested"
    cells = _cells({("baseline", "copy"): [0.9], ("v", "copy"): [0.9, 0.91]})
    assert cells.loc[("v", "copy"), "verdict"] == "untested"
    # broken describes the runs themselves, and needs no second seed
    cells = _cells({("baseline", "copy"): [0.9], ("v", "copy"): [0.1]})
    assert cells.loc[("v", "copy"), "verdict"] == "broken"


def test_tost_rejects_exactly_when_the_90_percent_interval_is_inside_the_margin():
    rng = np.random.default_rng(3)
    agree = 0
    for _ in range(200):
        a, b = rng.normal(0.02 * rng.normal(), rng.uniform(0.005, 0.05), (2, rng.integers(2, 7)))
        diff, low, high, se, df = stats.welch_interval(a, b, 0.90)
        inside = -0.05 < low and high < 0.05
        agree += inside == (stats.tost_p(diff, se, df, 0.05) < 0.05)
    assert agree == 200


# ------------------------------------------------------------------------------------------- intervals
def test_a_bounded_metrics_intervals_never_leave_its_range():
    from scipy import stats as st

    base = [1.0, 1.0, 0.98]
    cells = _cells({("baseline", "copy"): base, ("v", "copy"): [1.0, 1.0, 0.9], ("w", "copy"): [1.0, 0.1],
                    ("baseline", "char_lm"): [0.30, 0.05, 2.0], ("v", "char_lm"): [0.1, 0.05, 2.5]})
    for key in [("v", "copy"), ("w", "copy"), ("baseline", "copy")]:
        row = cells.loc[key]
        assert 0.0 <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= 1.0
    v = cells.loc[("v", "copy")]
    m, s = np.mean([1.0, 1.0, 0.9]), np.std([1.0, 1.0, 0.9], ddof=1)
    assert m + st.t.ppf(0.975, 2) * s / math.sqrt(3) > 1.0 and v["ci_high"] == 1.0  # clipped at the top
    assert v["ci_low"] == pytest.approx(m - st.t.ppf(0.975, 2) * s / math.sqrt(3))  # the t-interval below
    assert v["norm_ci_high"] == pytest.approx(0.9 / (np.mean(base) - 0.1))  # accuracy 1, normalised
    assert cells.loc[("w", "copy"), "ci_low"] == 0.0  # two seeds far apart: the t-interval spans all of [0, 1]
    # a difference of two accuracies lies in [-1, 1]: in normalised units, [-1, 1] / (baseline - chance)
    w = cells.loc[("w", "copy")]
    width = 1.0 / (np.mean(base) - 0.1)
    assert w["norm_delta_low"] == pytest.approx(-width) and w["norm_delta_high"] <= width
    for key in [("baseline", "char_lm"), ("v", "char_lm")]:  # bits per character are never negative
        assert cells.loc[key, "ci_low"] == 0.0 < cells.loc[key, "ci_high"]


def test_clipped_t_keeps_its_coverage_where_the_percentile_bootstrap_does_not():
    """Why cells use the t-interval: at 3 seeds of a bounded score, scipy's percentile bootstrap covers the true
    mean far less often than 95%; the clipped t-interval keeps about its nominal coverage."""
    from scipy import stats as st

    a, b = 18.0, 2.0  # Beta(18, 2): accuracies near 0.9, bounded by 1
    truth = a / (a + b)
    data = st.beta.rvs(a, b, size=(400, 3), random_state=np.random.default_rng(0))
    t_hits = np.mean([lo <= truth <= hi for _, lo, hi in (stats.t_interval(x, 0.95, (0.0, 1.0)) for x in data)])
    boot = st.bootstrap((data,), np.mean, axis=-1, n_resamples=999, method="percentile",
                        rng=np.random.default_rng(1)).confidence_interval
    boot_hits = np.mean((boot.low <= truth) & (truth <= boot.high))
    assert t_hits >= 0.92 and boot_hits < 0.85


# ------------------------------------------------------------------------------------------ seeds to decide
def test_seeds_to_decide_reaches_the_stated_power_by_simulation():
    from scipy import stats as st

    delta, sd = 0.3, 0.25
    n = stats.seeds_to_decide(delta, sd, sd, 0.05)
    assert 5 <= n <= 20
    rng = np.random.default_rng(0)

    def decided(k):
        a = rng.normal(delta, sd, (4000, k))
        b = rng.normal(0.0, sd, (4000, k))
        return np.mean(st.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05)

    assert decided(n) >= 0.77 and decided(max(2, n - 2)) < 0.8
    # no difference, small spread: equivalence decides, with fewer seeds the smaller the spread
    assert stats.seeds_to_decide(0.0, 0.02, 0.02, 0.05) < stats.seeds_to_decide(0.0, 0.05, 0.05, 0.05)
    assert stats.seeds_to_decide(0.049, 0.2, 0.2, 0.05, max_seeds=50) is None  # at the margin's edge: hopeless
    assert stats.seeds_to_decide(0.1, 0.0, 0.0, 0.05) is None  # no spread: nothing to compute


# ------------------------------------------------------------------------------------------- aggregates
def test_iqm_and_probability_of_improvement_match_direct_computations():
    from scipy import stats as st

    values = np.array([0.1, 0.9, 0.4, 0.5, 0.3, 2.0, 0.6, 0.7])
    middle = np.sort(values)[2:6]  # 8 values: the middle half is the 3rd to the 6th
    assert stats.iqm(values) == pytest.approx(middle.mean())
    x_tasks = [np.array([0.9, 0.8, 1.0]), np.array([0.2, 0.5, 0.5, 0.7])]
    y_tasks = [np.array([0.85, 0.9]), np.array([0.5, 0.6, 0.1])]
    direct = np.mean([np.mean([(xi > yi) + 0.5 * (xi == yi) for xi in x for yi in y])
                      for x, y in zip(x_tasks, y_tasks)])
    via_u = np.mean([st.mannwhitneyu(x, y).statistic / (len(x) * len(y)) for x, y in zip(x_tasks, y_tasks)])
    assert stats.probability_of_improvement(x_tasks, y_tasks) == pytest.approx(direct) == pytest.approx(via_u)
    taus = np.array([0.0, 0.5, 0.85])
    expected = [np.mean([np.mean(t > tau) for t in x_tasks]) for tau in taus]
    np.testing.assert_allclose(stats.profile(x_tasks, taus), expected)


def test_the_stratified_bootstrap_resamples_within_tasks():
    """A direct numpy stratified bootstrap of the IQM agrees with the scipy-based one; resampling the runs pooled
    across tasks (not stratified) would give a much wider interval here."""
    rng = np.random.default_rng(0)
    tasks = [1.0 + 0.01 * rng.normal(size=4), 0.0 + 0.01 * rng.normal(size=4)]
    low, high = stats.iqm_interval(tasks, n_boot=4000, seed=0)
    draws = np.random.default_rng(1)
    direct = [stats.iqm(np.concatenate([t[draws.integers(0, len(t), len(t))] for t in tasks])) for _ in range(4000)]
    d_low, d_high = np.percentile(direct, [2.5, 97.5])
    assert low == pytest.approx(d_low, abs=0.01) and high == pytest.approx(d_high, abs=0.01)
    pooled = np.concatenate(tasks)
    wide = [stats.iqm(pooled[draws.integers(0, 8, 8)]) for _ in range(4000)]
    assert np.subtract(*np.percentile(wide, [97.5, 2.5])) > 3 * (high - low)
    p_low, p_high = stats.improvement_interval([tasks[0] + 0.5], [tasks[0]], n_boot=500)
    assert p_low == p_high == 1.0  # every run of the first beats every run of the second, in every resample


def test_aggregate_reports_iqm_and_probability_of_improvement(tmp_path):
    spec = {("baseline", "copy"): scores(0.9, 0.01, 3, 1), ("baseline", "digits"): scores(0.8, 0.02, 3, 2),
            ("twin", "copy"): scores(0.9, 0.01, 3, 1), ("twin", "digits"): scores(0.8, 0.02, 3, 2),
            ("worse", "copy"): scores(0.6, 0.01, 3, 3), ("worse", "digits"): scores(0.5, 0.02, 3, 4)}
    agg = aggregate(load(make_results(tmp_path / "r", spec)), n_boot=300)
    table = agg.robust.set_index("variant")
    assert table.loc["twin", "p_improvement"] == pytest.approx(0.5)
    assert table.loc["worse", "p_improvement"] == 0.0 and table.loc["worse", "p_improvement_high"] == 0.0
    runs = normalised_runs(agg.runs, agg.baseline, agg.cells)["worse"]
    assert table.loc["worse", "iqm"] == pytest.approx(stats.iqm(np.concatenate(list(runs.values()))))
    assert table.loc["worse", "iqm_low"] <= table.loc["worse", "iqm"] <= table.loc["worse", "iqm_high"]
    assert agg.resilience.set_index("variant").loc["twin", "n_resilient"] == 2


# ---------------------------------------------------------------------------------------------- margin
def test_the_margin_is_read_from_the_manifest_and_defaults_to_the_config(tmp_path):
    config = OmegaConf.load(Path(__file__).resolve().parents[3] / "conf" / "config.yaml")
    from ablations.config import ReportConfig

    assert config.report.margin == stats.MARGIN == ReportConfig().margin
    base = scores(0.9, 0.02, 4, 1)
    spec = {("baseline", "copy"): base, ("v", "copy"): [x - 0.04 for x in base]}  # 0.05 of the range lower
    default = aggregate(load(make_results(tmp_path / "a", spec)), n_boot=0)
    assert default.margin == 0.05
    assert default.cells.set_index("variant").loc["v", "verdict"] != "equivalent"
    wider = aggregate(load(make_results(tmp_path / "b", spec, overrides=["report.margin=0.2"])), n_boot=0)
    assert wider.margin == 0.2 and wider.cells.set_index("variant").loc["v", "verdict"] == "equivalent"
