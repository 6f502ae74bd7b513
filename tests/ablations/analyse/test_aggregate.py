"""The statistics of a report, on synthetic runs with known answers."""

import json
import math

import numpy as np
import pytest

from ablations.analyse.aggregate import (aggregate, clean_runs, holm, load, normalise, optimisability, read_curves,
                                 read_trials, resilience, resolve_run_dir, summarise, t_interval, welch_test)
from tests.ablations.fixtures.synthetic import (make_results, runs_frame, scores, standard_spec, standard_trials,
                                                trials_frame)


def _cells(spec, baseline="baseline"):
    return summarise(clean_runs(runs_frame(spec)), baseline).set_index(["variant", "task"])


def test_a_variant_at_chance_is_broken_and_so_is_a_mostly_diverged_one():
    cells = _cells({("baseline", "copy"): scores(0.9, 0.02, 4), ("chance", "copy"): scores(0.1, 0.01, 4),
                    ("diverges", "copy"): [0.9, "diverged", "diverged", 0.88],
                    ("diverges_most", "copy"): [0.9, "diverged", "failed", "diverged"]})
    assert cells.loc[("chance", "copy"), "verdict"] == "broken"
    assert cells.loc[("chance", "copy"), "norm_mean"] == pytest.approx(0.0, abs=1e-9)
    # half diverged is not a majority: the diverged runs count as chance, the rest is tested
    half = cells.loc[("diverges", "copy")]
    assert half["verdict"] != "broken" and half["n_diverged"] == 2 and half["n_ok"] == 2
    assert half["mean"] == pytest.approx((0.9 + 0.1 + 0.1 + 0.88) / 4)
    most = cells.loc[("diverges_most", "copy")]
    assert most["verdict"] == "broken" and (most["n_diverged"], most["n_failed"]) == (2, 1)


def test_a_clearly_better_variant_with_several_seeds_is_better_and_a_worse_one_worse():
    cells = _cells({("baseline", "copy"): scores(0.80, 0.01, 5, 1), ("better", "copy"): scores(0.95, 0.01, 5, 2),
                    ("worse", "copy"): scores(0.60, 0.01, 5, 3)})
    assert cells.loc[("better", "copy"), "verdict"] == "better"
    assert cells.loc[("better", "copy"), "p_holm"] < 0.001
    assert cells.loc[("worse", "copy"), "verdict"] == "worse"
    assert cells.loc[("worse", "copy"), "delta"] == pytest.approx(-0.2)


def test_lower_is_better_metrics_are_judged_in_their_own_direction():
    cells = _cells({("baseline", "char_lm"): scores(2.0, 0.02, 4, 1), ("lower", "char_lm"): scores(1.5, 0.02, 4, 2),
                    ("higher", "char_lm"): scores(3.0, 0.02, 4, 3)})
    assert cells.loc[("lower", "char_lm"), "verdict"] == "better"
    assert cells.loc[("higher", "char_lm"), "verdict"] == "worse"
    # chance 4.7 bits, baseline 2.0: 1.5 bits is (4.7 - 1.5) / (4.7 - 2.0)
    assert cells.loc[("lower", "char_lm"), "norm_mean"] == pytest.approx(3.2 / 2.7)
    assert cells.loc[("higher", "char_lm"), "norm_mean"] == pytest.approx(1.7 / 2.7)


def test_normalisation_maps_chance_to_0_and_baseline_to_1_in_both_directions():
    assert normalise(0.5, 0.1, 0.9, True) == pytest.approx(0.5)
    assert normalise(0.1, 0.1, 0.9, True) == pytest.approx(0.0)
    assert normalise(3.35, 4.7, 2.0, False) == pytest.approx(0.5)
    assert normalise(4.7, 4.7, 2.0, False) == pytest.approx(0.0)
    assert normalise(2.0, 4.7, 2.0, False) == pytest.approx(1.0)
    assert normalise(1.0, 4.7, 2.0, False) == pytest.approx(3.7 / 2.7)
    # a baseline no better than chance leaves the scale undefined
    assert math.isnan(normalise(0.5, 0.1, 0.1, True)) and math.isnan(normalise(3.0, 4.7, 5.0, False))
    np.testing.assert_allclose(normalise(np.array([4.7, 2.0]), 4.7, 2.0, False), [0.0, 1.0])


def test_one_seed_or_zero_variance_gives_no_p_value_and_no_significance():
    assert math.isnan(welch_test([0.9], [0.5, 0.6])[0])
    p, note = welch_test([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    assert math.isnan(p) and note == "zero variance"
    cells = _cells({("baseline", "copy"): [0.9], ("v", "copy"): [0.4]})
    assert cells.loc[("v", "copy"), "verdict"] == "untested"
    assert math.isnan(cells.loc[("v", "copy"), "p_holm"])
    assert math.isnan(cells.loc[("v", "copy"), "ci_low"])


def test_welch_and_t_interval_match_a_hand_computation():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    from scipy import stats
    assert welch_test(a, b)[0] == pytest.approx(2 * stats.t.sf(abs(t), df))
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)


def test_holm_correction_matches_a_hand_computation():
    # m = 4 tested: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, np.nan, 0.02])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1
    cells = summarise(clean_runs(runs_frame(standard_spec())), "baseline")
    tested = cells[cells["variant"] != "baseline"]
    np.testing.assert_allclose(tested["p_holm"], holm(tested["p_value"].to_numpy()))


def test_intervals_shrink_with_more_seeds():
    widths, res_widths = [], []
    for n in (3, 8, 30):
        spec = {("baseline", "copy"): scores(0.9, 0.03, n, 1), ("v", "copy"): scores(0.7, 0.03, n, 2),
                ("baseline", "digits"): scores(0.8, 0.03, n, 3), ("v", "digits"): scores(0.6, 0.03, n, 4)}
        runs = clean_runs(runs_frame(spec))
        cells = summarise(runs, "baseline")
        v = cells[(cells["variant"] == "v") & (cells["task"] == "copy")].iloc[0]
        widths.append(v["ci_high"] - v["ci_low"])
        r = resilience(runs, "baseline", cells=cells).set_index("variant").loc["v"]
        assert r["ci_low"] < r["resilience"] < r["ci_high"]
        res_widths.append(r["ci_high"] - r["ci_low"])
    assert widths[0] > widths[1] > widths[2] > 0
    assert res_widths[0] > res_widths[1] > res_widths[2] > 0


def test_resilience_counts_diverged_runs_as_chance_and_is_reproducible():
    runs = clean_runs(runs_frame(standard_spec()))
    table = resilience(runs, "baseline").set_index("variant")
    assert table.loc["baseline", "resilience"] == pytest.approx(1.0)
    assert table.loc["same", "resilience"] == pytest.approx(1.0)
    cells = summarise(runs, "baseline").set_index(["variant", "task"])
    dead_copy = cells.loc[("dead", "copy"), "norm_mean"]
    assert cells.loc[("dead", "char_lm"), "norm_mean"] == pytest.approx(0.0)
    assert table.loc["dead", "resilience"] == pytest.approx((dead_copy + 0.0) / 2)
    assert table.loc["dead", "n_diverged"] == 4 and table.loc["dead", "n_broken"] == 2
    again = resilience(runs, "baseline").set_index("variant")
    assert again.loc["no_residual", "ci_low"] == table.loc["no_residual", "ci_low"]


def test_pruned_runs_are_counted_but_not_scored():
    cells = _cells({("baseline", "copy"): [0.9, 0.91, 0.89], ("v", "copy"): [0.9, "pruned", 0.92]})
    v = cells.loc[("v", "copy")]
    assert v["n_pruned"] == 1 and v["n_ok"] == 2 and v["mean"] == pytest.approx(0.91)


def test_a_task_where_the_baseline_is_at_chance_is_left_out_of_resilience(tmp_path):
    make_results(tmp_path / "r", {("baseline", "copy"): [0.1, 0.1], ("baseline", "digits"): [0.9, 0.92],
                                  ("v", "copy"): [0.5, 0.6], ("v", "digits"): [0.5, 0.52]})
    agg = aggregate(load(tmp_path / "r"))
    row = agg.resilience.set_index("variant").loc["v"]
    assert row["n_tasks"] == 1 and row["tasks_undefined"] == "copy"
    assert any("no better than chance" in note for note in agg.notes)


def test_optimisability_measures_the_lr_basin_in_decades():
    runs = clean_runs(runs_frame(standard_spec()))
    table = optimisability(standard_trials(), runs, "baseline").set_index(["variant", "task"])
    # copy: chance 0.1, baseline's best trial 0.90 -> tolerance 0.05 * 0.8 = 0.04.
    # baseline best 0.90 at 1e-3; 0.87 (3e-4) and 0.89 (3e-3) are within 0.04 of it, 0.5 and 0.7 are not
    base = table.loc[("baseline", "copy")]
    assert (base["lr_low"], base["lr_high"]) == (3e-4, 3e-3)
    assert base["decades"] == pytest.approx(1.0)
    assert base["n_diverged"] == 1 and base["decades_tried"] == pytest.approx(math.log10(300))
    # no_residual best 0.6 at 1e-3; its neighbours 0.5 and 0.4 are more than 0.04 below: a single point
    assert table.loc[("no_residual", "copy"), "decades"] == 0.0
    # lower is better: baseline best 2.0 at 1e-3, tolerance 0.05 * (4.7 - 2.0) = 0.135 -> 2.05 within, 2.3 not
    lm = table.loc[("baseline", "char_lm")]
    assert (lm["lr_low"], lm["lr_high"]) == (1e-3, 3e-3)
    assert optimisability(None, runs, "baseline") is None


def test_pruned_trials_neither_count_nor_break_the_lr_range():
    runs = clean_runs(runs_frame({("baseline", "copy"): [0.9]}))
    trials = trials_frame({("baseline", "copy"): [(1e-4, 0.89), (1e-3, "pruned"), (1e-2, 0.9), (1e-1, "diverged")]})
    row = optimisability(trials, runs, "baseline").iloc[0]
    assert (row["lr_low"], row["lr_high"], row["decades"]) == (1e-4, 1e-2, pytest.approx(2.0))
    assert (row["n_ok"], row["n_pruned"], row["n_diverged"]) == (2, 1, 1)


def test_trials_are_optional(tmp_path):
    assert read_trials(tmp_path) is None
    make_results(tmp_path / "r", standard_spec(2))
    agg = aggregate(load(tmp_path / "r"))
    assert agg.optimisability is None and agg.results.trials is None
    make_results(tmp_path / "t", standard_spec(2), trials=standard_trials())
    assert len(aggregate(load(tmp_path / "t")).optimisability) == 4


def test_the_baseline_comes_from_the_manifest_else_the_data(tmp_path):
    spec = {("ref", "copy"): [0.9, 0.91], ("v", "copy"): [0.5, 0.52]}
    make_results(tmp_path / "m", spec, baseline="ref")
    assert load(tmp_path / "m").baseline == "ref"
    make_results(tmp_path / "n", spec, manifest=False)
    assert load(tmp_path / "n").baseline == "ref"  # no variant called baseline: the first one


def test_run_dirs_resolve_against_the_results_directory_and_its_parents(tmp_path, monkeypatch):
    directory = make_results(tmp_path / "work" / "results" / "abl", {("baseline", "copy"): [0.9]},
                             run_dir_prefix="results/abl")
    run = load(directory).runs.iloc[0]
    expected = directory / "runs" / "baseline" / "copy" / "s0"
    monkeypatch.chdir(tmp_path)  # ablate ran in tmp_path/work, the report runs elsewhere
    assert resolve_run_dir(directory, run) == expected.resolve()
    # a same-named directory under the current directory holding another run is not taken for it
    decoy = tmp_path / "results" / "abl" / "runs" / "baseline" / "copy" / "s0"
    decoy.mkdir(parents=True)
    (decoy / "result.json").write_text(json.dumps({"variant": "baseline", "task": "copy", "seed": 7}))
    assert resolve_run_dir(directory, run) == expected.resolve()
    # moved: the recorded path is stale, the standard layout still finds it
    assert resolve_run_dir(directory, dict(run, run_dir="gone/elsewhere")) == expected.resolve()
    assert resolve_run_dir(tmp_path / "nowhere", dict(run, run_dir="gone")) is None


def test_a_task_level_finds_its_run_whose_result_json_names_the_task_and_holds_the_level(tmp_path):
    """runs.csv names a level by its label (copy@length=16); result.json names the task and keeps the level in
    its config. The run is found, and a run of another level in its place is not taken for it."""
    run_dir = tmp_path / "abl" / "runs" / "baseline" / "copy@length=16" / "s0"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("step,val/accuracy\n9,0.5\n")
    result = {"variant": "baseline", "task": "copy", "seed": 0, "config": {"task": {"name": "copy", "length": 16}}}
    (run_dir / "result.json").write_text(json.dumps(result))
    run = {"variant": "baseline", "task": "copy@length=16", "seed": 0, "run_dir": "runs/baseline/copy@length=16/s0"}
    assert resolve_run_dir(tmp_path / "abl", run) == run_dir.resolve()
    result["config"]["task"]["length"] = 8
    (run_dir / "result.json").write_text(json.dumps(result))
    assert resolve_run_dir(tmp_path / "abl", run) is None


def test_learning_curves_are_read_from_each_runs_metrics_csv(tmp_path):
    directory = make_results(tmp_path / "abl", {("baseline", "copy"): [0.9, 0.8], ("v", "copy"): ["diverged"]})
    curves = read_curves(load(directory))
    assert set(curves["variant"]) == {"baseline", "v"}
    base = curves[(curves["variant"] == "baseline") & (curves["seed"] == 0)]
    assert base["step"].tolist() == [9, 19, 29, 39] and base["value"].iloc[-1] == pytest.approx(0.9)
    assert curves[curves["variant"] == "v"]["step"].max() == 19
