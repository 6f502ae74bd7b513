"""The tuning-budget estimators against brute-force enumeration, and the rules by which trials count."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ablations.analyse import tuning
from ablations.analyse.tuning import TaskInfo, best_spread, expected_best

ACCURACY = {"copy": TaskInfo("accuracy", True, 0.1)}
BPC = {"char_lm": TaskInfo("bits_per_char", False, 5.0)}


def _samples():
    """Small score vectors, with and without ties, of every length from 1 to 7."""
    rng = np.random.default_rng(18)
    out = [rng.uniform(0, 1, size) for size in range(1, 8)]
    out += [np.array([0.5, 0.5, 0.5]), np.array([0.2, 0.9, 0.2, 0.9, 0.5]), np.round(rng.uniform(0, 1, 6), 1)]
    return out


# -------------------------------------------------------------------------------------- brute force
def brute_without(values, n, best=max):
    return np.mean([best(subset) for subset in itertools.combinations(values, n)])


def brute_with(values, n, best=max):
    return np.mean([best(draw) for draw in itertools.product(values, repeat=n)])


@pytest.mark.parametrize("values", _samples(), ids=lambda v: f"N{len(v)}")
def test_unbiased_estimator_is_the_mean_best_over_all_subsets(values):
    expected = [brute_without(values, n) for n in range(1, len(values) + 1)]
    np.testing.assert_allclose(expected_best(values), expected, rtol=1e-12, atol=1e-12)
    lowest = [brute_without(values, n, min) for n in range(1, len(values) + 1)]
    np.testing.assert_allclose(expected_best(values, higher_is_better=False), lowest, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("values", _samples()[:5], ids=lambda v: f"N{len(v)}")
def test_dodge_estimator_is_the_mean_best_over_all_draws_with_replacement(values):
    n_max = len(values) + 1  # with replacement the budget may exceed the trials
    expected = [brute_with(values, n) for n in range(1, n_max + 1)]
    np.testing.assert_allclose(expected_best(values, replacement=True, n_max=n_max), expected, rtol=1e-12)
    lowest = [brute_with(values, n, min) for n in range(1, n_max + 1)]
    np.testing.assert_allclose(expected_best(values, higher_is_better=False, replacement=True, n_max=n_max), lowest,
                               rtol=1e-12)


@pytest.mark.parametrize("values", _samples(), ids=lambda v: f"N{len(v)}")
def test_one_trial_is_the_mean_all_trials_the_best_and_more_trials_never_hurt(values):
    for higher in (True, False):
        for replacement in (False, True):
            curve = expected_best(values, higher_is_better=higher, replacement=replacement)
            assert curve[0] == pytest.approx(values.mean(), rel=1e-12)
            steps = np.diff(curve) if higher else -np.diff(curve)
            assert np.all(steps >= -1e-12)
        best = values.max() if higher else values.min()
        assert expected_best(values, higher_is_better=higher)[-1] == pytest.approx(best, rel=1e-12)


def test_dodge_falls_short_of_the_best_trial_at_the_full_budget():
    values = np.array([0.1, 0.4, 0.5, 0.9])
    assert expected_best(values, replacement=True)[-1] < values.max()


def test_many_trials_stay_accurate():
    values = np.random.default_rng(3).normal(size=500)
    curve = expected_best(values)
    assert curve[0] == pytest.approx(values.mean(), abs=1e-9)
    assert curve[-1] == pytest.approx(values.max(), rel=1e-9)
    assert np.all(np.diff(curve) >= -1e-9)
    spread = best_spread(values, n_max=250)
    assert spread[0] == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert np.all(np.isfinite(spread))


def test_estimates_need_finite_scores_and_a_budget_within_the_trials():
    with pytest.raises(ValueError, match="finite"):
        expected_best([0.5, math.nan])
    with pytest.raises(ValueError, match="cannot exceed"):
        expected_best([0.5, 0.6], n_max=3)
    assert len(expected_best([])) == 0


# ------------------------------------------------------------------------------------------- unbiased
def _exact(support, probs, n):
    """E[max] and Var[max] of n i.i.d. draws from a discrete distribution."""
    cdf = np.cumsum(probs)
    below = np.concatenate(([0.0], cdf[:-1]))
    mass = cdf ** n - below ** n
    mean = float(mass @ support)
    return mean, float(mass @ support ** 2) - mean ** 2


def _over_all_samples(support, probs, size, statistic):
    """The expectation of `statistic` over every sample of `size` i.i.d. draws, exactly."""
    total = 0.0
    for index in itertools.product(range(len(support)), repeat=size):
        total += np.prod(probs[list(index)]) * statistic(support[list(index)])
    return total


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_without_replacement_is_unbiased_and_with_replacement_is_not(n):
    support, probs, size = np.array([0.0, 0.3, 1.0]), np.array([0.5, 0.3, 0.2]), 4
    truth, _ = _exact(support, probs, n)
    unbiased = _over_all_samples(support, probs, size, lambda s: expected_best(s)[n - 1])
    assert unbiased == pytest.approx(truth, rel=1e-12)
    lowest = -_exact(-support[::-1], probs[::-1], n)[0]
    unbiased = _over_all_samples(support, probs, size, lambda s: expected_best(s, higher_is_better=False)[n - 1])
    assert unbiased == pytest.approx(lowest, rel=1e-12)
    if n > 1:
        dodge = _over_all_samples(support, probs, size, lambda s: expected_best(s, replacement=True)[n - 1])
        assert dodge < truth - 1e-6  # Tang et al.: biased low


@pytest.mark.parametrize("higher", [True, False])
@pytest.mark.parametrize("n", [1, 2])
def test_band_variance_is_unbiased_where_two_budgets_fit(n, higher):
    support, probs, size = np.array([0.0, 0.3, 1.0]), np.array([0.5, 0.3, 0.2]), 4
    # the minimum of draws is minus the maximum of the negated draws (support reversed to stay sorted)
    _, truth = _exact(support, probs, n) if higher else _exact(-support[::-1], probs[::-1], n)
    estimate = _over_all_samples(support, probs, size,
                                 lambda s: best_spread(s, higher_is_better=higher)[n - 1] ** 2)
    assert estimate == pytest.approx(truth, rel=1e-12)


# ----------------------------------------------------------------------------------------------- band
def brute_variance_without(values, n):
    """The U-statistic of Var(best of n): half the mean squared difference of the bests of two disjoint n-sets."""
    total, count = 0.0, 0
    for a in itertools.combinations(range(len(values)), n):
        rest = [i for i in range(len(values)) if i not in a]
        for b in itertools.combinations(rest, n):
            total += 0.5 * (max(values[list(a)]) - max(values[list(b)])) ** 2
            count += 1
    return total / count


@pytest.mark.parametrize("values", _samples()[1:], ids=lambda v: f"N{len(v)}")
def test_band_is_the_u_statistic_of_the_spread_of_the_best(values):
    spread = best_spread(values)
    half = len(values) // 2
    expected = [math.sqrt(brute_variance_without(values, n)) for n in range(1, half + 1)]
    np.testing.assert_allclose(spread[:half], expected, rtol=1e-9, atol=1e-12)
    assert np.all(np.isnan(spread[half:]))  # no two disjoint budgets of n trials: no unbiased estimate
    assert spread[0] == pytest.approx(values.std(ddof=1), rel=1e-12)
    # the spread of the minimum (lower is better) is that of the maximum of the negated scores, not the maximum's
    lowest = [math.sqrt(brute_variance_without(-values, n)) for n in range(1, half + 1)]
    np.testing.assert_allclose(best_spread(values, higher_is_better=False)[:half], lowest, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(best_spread(-values, higher_is_better=False)[:half], spread[:half], rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("values", _samples()[:5], ids=lambda v: f"N{len(v)}")
def test_dodge_band_is_the_spread_of_the_best_of_draws_with_replacement(values):
    n_max = len(values) + 1
    for best, higher in ((max, True), (min, False)):
        expected = [np.std([best(d) for d in itertools.product(values, repeat=n)]) for n in range(1, n_max + 1)]
        np.testing.assert_allclose(best_spread(values, higher_is_better=higher, replacement=True, n_max=n_max),
                                   expected, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------- trials
def _trials(rows, task="copy", variant="baseline", study="s1"):
    frame = pd.DataFrame([{"ablation": "abl", "variant": variant, "task": task, "trial": i, "status": status,
                           "val_score": value, "study": study} for i, (status, value) in enumerate(rows)])
    return frame


def test_how_each_status_counts():
    trials = _trials([("ok", 0.9), ("pruned", 0.4), ("pruned", None), ("diverged", 0.7), ("failed", None),
                      ("ok", None), ("running", 0.8), ("complete", 0.6), ("fail", None)])
    scored = tuning.trial_scores(trials, ACCURACY)
    assert list(scored["counted_as"]) == ["score", "value when pruned", "chance", "chance", "chance", "chance",
                                          "left out", "score", "chance"]
    np.testing.assert_allclose(scored["effective"], [0.9, 0.4, 0.1, 0.1, 0.1, 0.1, np.nan, 0.6, 0.1])
    assert list(scored["missing_score"]) == [False, False, False, False, False, True, False, False, False]
    worst = tuning.trial_scores(trials, ACCURACY, pruned="worst")
    assert worst["effective"][1] == 0.1 and worst["counted_as"][1] == "chance"
    with pytest.raises(ValueError, match="pruned"):
        tuning.trial_scores(trials, ACCURACY, pruned="drop")


@pytest.mark.parametrize("higher, worst", [(True, 0.3), (False, 0.9)])
def test_without_a_chance_level_the_worst_trial_stands_in(higher, worst):
    trials = _trials([("ok", 0.5), ("ok", 0.9), ("pruned", 0.3), ("diverged", None)], task="mystery")
    scored = tuning.trial_scores(trials, {"mystery": TaskInfo("val_score", higher, math.nan)})
    assert scored["effective"].iloc[-1] == worst and scored["counted_as"].iloc[-1] == "worst trial"


def test_one_study_per_cell_is_used_and_the_others_named():
    trials = pd.concat([_trials([("ok", 0.2)] * 2, study="old"), _trials([("ok", 0.9)] * 3, study="new")])
    kept, notes = tuning.select_studies(trials.reset_index(drop=True))
    assert set(kept["study"]) == {"new"} and len(kept) == 3
    assert len(notes) == 1 and "`old` (2)" in notes[0] and "`new`" in notes[0]
    curves = tuning.budget_curves(trials.reset_index(drop=True), ACCURACY)
    assert curves.curves["expected"].tolist() == pytest.approx([0.9] * 3) and curves.notes == notes


# ---------------------------------------------------------------------------------------------- curves
def test_budget_curves_per_cell_with_a_band_inside_the_metric_range():
    trials = pd.concat([_trials([("ok", v) for v in (0.2, 0.99, 1.0, 0.98, 0.5, 1.0)]),
                        _trials([("ok", v) for v in (0.2, 0.4, 0.6, "x")], variant="post_norm")])
    trials["val_score"] = pd.to_numeric(trials["val_score"], errors="coerce")  # "x": no score: counted worst
    curves = tuning.budget_curves(trials, ACCURACY)
    table = curves.curves
    assert list(dict.fromkeys(table["variant"])) == ["baseline", "post_norm"]
    base = table[table["variant"] == "baseline"]
    assert list(base["n"]) == [1, 2, 3, 4, 5, 6]
    assert base["sd"].iloc[:3].notna().all() and base["sd"].iloc[3:].isna().all()
    assert (base["high"].dropna() <= 1.0).all() and (base["low"].dropna() >= 0.0).all()
    cell = curves.cells.set_index("variant").loc["post_norm"]
    assert cell["n_missing"] == 1 and cell["n_counted"] == 4 and cell["n_scored"] == 3


def test_lower_is_better_curves_fall():
    trials = _trials([("ok", 2.5), ("ok", 2.0), ("ok", 3.1), ("diverged", None)], task="char_lm")
    curve = tuning.budget_curves(trials, BPC).curves["expected"].to_numpy()
    assert curve[0] == pytest.approx((2.5 + 2.0 + 3.1 + 5.0) / 4) and curve[-1] == pytest.approx(2.0)
    assert np.all(np.diff(curve) <= 0)


def test_empty_or_missing_trials_give_empty_curves():
    assert tuning.budget_curves(None, {}).empty
    assert tuning.budget_curves(_trials([]).reindex(columns=["task", "variant", "status", "val_score"]), {}).empty


def test_task_info_prefers_arguments_then_cells_then_the_registry():
    cells = pd.DataFrame([{"task": "copy", "metric": "accuracy", "higher_is_better": True, "chance": 0.125}])
    info = tuning.task_info(["copy", "char_lm", "nope"], cells, chance={"nope": 0.5})
    assert info["copy"] == TaskInfo("accuracy", True, 0.125)
    assert info["char_lm"].metric == "bits_per_char" and info["char_lm"].higher_is_better is False
    assert info["nope"].chance == 0.5 and info["nope"].higher_is_better is True
    assert tuning.task_info(["copy"], cells, higher_is_better=False)["copy"].higher_is_better is False


# ------------------------------------------------------------------------------------ versus baseline
def test_trials_to_reach_the_baseline_and_a_ranking_that_flips():
    trials = pd.concat([_trials([("ok", 0.8)] * 4), _trials([("ok", v) for v in (0.2, 0.4, 0.6, 1.0)],
                                                                variant="rare_good")])
    curves = tuning.budget_curves(trials, ACCURACY)
    mine = curves.curves[curves.curves["variant"] == "rare_good"]["expected"].to_numpy()
    np.testing.assert_allclose(mine, [0.55, 4.6 / 6, 0.9, 1.0])  # by hand from the formula
    row = tuning.versus_baseline(curves, "baseline").iloc[0]
    assert row["reach"] == 3 and row["flip_at"] == 3 and row["baseline_reach"] == 1
    assert row["gap_first"] == pytest.approx(-0.25) and row["gap_last"] == pytest.approx(0.2)
    assert not row["level_first"] and not row["level_last"]


def test_lower_is_better_reach_and_level_curves():
    trials = pd.concat([_trials([("ok", 2.0)] * 3, task="char_lm"),
                        _trials([("ok", v) for v in (3.0, 2.5, 1.9)], task="char_lm", variant="slow"),
                        _trials([("ok", 2.0)] * 3, task="char_lm", variant="same")])
    versus = tuning.versus_baseline(tuning.budget_curves(trials, BPC), "baseline").set_index("variant")
    assert versus.loc["slow", "reach"] == 3 and versus.loc["slow", "flip_at"] == 3
    assert versus.loc["same", "level_first"] and versus.loc["same", "level_last"]
    assert versus.loc["same", "reach"] == 1 and math.isnan(versus.loc["same", "flip_at"])


def test_a_variant_that_never_reaches_the_baseline():
    trials = pd.concat([_trials([("ok", 0.9)] * 3), _trials([("ok", 0.5), ("diverged", None), ("ok", 0.6)],
                                                                variant="worse")])
    row = tuning.versus_baseline(tuning.budget_curves(trials, ACCURACY), "baseline").iloc[0]
    assert math.isnan(row["reach"]) and math.isnan(row["flip_at"]) and row["gap_last"] < 0
