"""ablations/analyse/sequential.py: the sequential rule of `ablation.seeds=auto` on synthetic cells whose answer is
known: it stops early on a large effect, on identical scores, runs to max_seeds on a noisy null, spends at most
alpha over its looks, keeps its false-verdict rate near or below alpha where looking without spending does not, and
is a pure function of the runs (the same runs, the same looks and record)."""

import json
import math

import numpy as np
import pytest

from ablations.analyse import sequential
from ablations.analyse.aggregate import clean_runs, summarise
from ablations.analyse.sequential import Design, Sequence, overlay, pocock_spending, read, replay
from models.errors import ConfigError
from tests.ablations.fixtures.synthetic import runs_frame, scores


def _runs(spec):
    return clean_runs(runs_frame(spec))


def _design(n_cells=1, **changes):
    values = dict(min_seeds=3, max_seeds=8, step=2, n_cells=n_cells)
    values.update(changes)
    return Design(**values)


# ---------------------------------------------------------------------------------------------- the design
@pytest.mark.parametrize("low, high, step", [(3, 8, 2), (2, 2, 1), (3, 4, 2), (2, 20, 1), (5, 12, 3), (3, 1000, 7)])
def test_the_spent_alphas_sum_to_at_most_alpha_and_each_look_gets_a_share(low, high, step):
    design = Design(low, high, step, n_cells=4, alpha=0.05)
    looks, alphas = design.looks, design.alphas
    assert looks[0] == low and looks[-1] == high and list(looks) == sorted(set(looks))
    assert all(b - a <= step for a, b in zip(looks, looks[1:]))
    assert len(alphas) == len(looks) and all(a > 0 for a in alphas)
    assert sum(alphas) <= 0.05 + 1e-12 and sum(alphas) == pytest.approx(0.05)
    assert list(design.spent) == sorted(design.spent) and design.spent[-1] == pytest.approx(0.05)
    assert design.difference_alpha(0) == pytest.approx(alphas[0] / 4)


def test_the_default_design_spends_pocock_type_shares_as_the_readme_states():
    design = _design()
    assert design.looks == (3, 5, 7, 8)
    assert [round(a, 4) for a in design.alphas] == [0.0249, 0.0116, 0.0094, 0.0041]
    # Lan & DeMets' alpha_2*(t) = alpha ln(1 + (e - 1) t): 0 at t = 0, alpha at t = 1
    assert pocock_spending(0.0) == 0.0 and pocock_spending(1.0) == pytest.approx(0.05)
    text = design.methods()
    assert "Lan & DeMets (1983)" in text and "0.0249, 0.0116, 0.0094, 0.0041" in text
    assert "3, 5, 7, 8" in text and "Bonferroni" in text and "\n" not in text


def test_a_design_that_cannot_be_run_is_refused():
    for low, high, step in ((1, 8, 2), (5, 4, 1), (3, 8, 0)):
        with pytest.raises(ValueError):
            Design(low, high, step, n_cells=1)


# ------------------------------------------------------------------------------------------------ the rule
def test_a_large_effect_stops_at_the_minimum_seeds_as_worse():
    runs = _runs({("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("hurt", "copy"): scores(0.45, 0.03, 8, 2)})
    sequence = replay(runs, "baseline", _design(), [("hurt", "copy")])
    decision = sequence.decisions[("hurt", "copy")]
    assert decision.verdict == "worse" and decision.look == 1 and decision.seeds == 3
    assert decision.alpha == pytest.approx(_design().alphas[0])
    assert sequence.done() and sequence.look == 1
    assert sequence.seeds() == {("hurt", "copy"): 3, ("baseline", "copy"): 3}


def test_identical_noiseless_scores_stop_at_the_minimum_seeds_as_equivalent():
    runs = _runs({("baseline", "copy"): [0.9] * 8, ("twin", "copy"): [0.9] * 8})
    sequence = replay(runs, "baseline", _design(), [("twin", "copy")])
    decision = sequence.decisions[("twin", "copy")]
    assert (decision.verdict, decision.look, decision.seeds) == ("equivalent", 1, 3)


def test_a_noisy_null_runs_to_max_seeds_and_ends_inconclusive():
    rng = np.random.default_rng(7)
    # normalised spread about 0.14 per seed: at 8 seeds TOST cannot fit a 0.05 margin, and there is no difference
    spec = {("baseline", "copy"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("null", "copy"): list(0.8 + 0.1 * rng.standard_normal(8))}
    sequence = replay(_runs(spec), "baseline", _design(), [("null", "copy")])
    decision = sequence.decisions[("null", "copy")]
    assert (decision.verdict, decision.look, decision.seeds) == ("inconclusive", 4, 8)
    assert [look["seeds"] for look in sequence.history] == [3, 5, 7, 8]
    assert sequence.seeds() == {("null", "copy"): 8, ("baseline", "copy"): 8}


def test_a_broken_variant_stops_at_once_and_a_decided_cell_gets_no_more_seeds():
    rng = np.random.default_rng(3)
    spec = {("baseline", "copy"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("null", "copy"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("dead", "copy"): ["diverged"] * 8}
    sequence = replay(_runs(spec), "baseline", _design(n_cells=2), [("null", "copy"), ("dead", "copy")])
    assert sequence.decisions[("dead", "copy")].verdict == "broken"
    assert sequence.decisions[("dead", "copy")].seeds == 3
    given = sequence.seeds()
    assert given[("dead", "copy")] == 3 and given[("null", "copy")] == 8 and given[("baseline", "copy")] == 8
    # the later looks judged only the cell still open
    assert [[c["variant"] for c in look["cells"]] for look in sequence.history] == [["null", "dead"], ["null"],
                                                                                     ["null"], ["null"]]


def test_the_baseline_gets_more_seeds_only_on_a_task_with_an_open_cell():
    rng = np.random.default_rng(5)
    spec = {("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("v", "copy"): scores(0.45, 0.03, 8, 2),
            ("baseline", "digits"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("v", "digits"): list(0.8 + 0.1 * rng.standard_normal(8))}
    sequence = replay(_runs(spec), "baseline", _design(n_cells=2), [("v", "copy"), ("v", "digits")])
    assert sequence.seeds()[("baseline", "copy")] == 3 and sequence.seeds()[("baseline", "digits")] == 8
    assert sequence.to_dict()["baseline_seeds"] == {"copy": 3, "digits": 8}


def test_the_difference_test_is_bonferroni_over_the_cells_of_the_design():
    # p at 3 seeds per side between the look's alpha over 1 cell and over 50 cells: decided alone, not among 50
    base, other = [0.80, 0.82, 0.84], [0.74, 0.76, 0.78]
    spec = {("baseline", "copy"): base + [0.82] * 5, ("v", "copy"): other + [0.76] * 5}
    row = summarise(_runs({("baseline", "copy"): base, ("v", "copy"): other}), "baseline").set_index("variant")
    p = row.loc["v", "p_value"]
    design_alone, design_many = _design(n_cells=1), _design(n_cells=50)
    assert design_many.difference_alpha(0) < p < design_alone.difference_alpha(0)
    alone = replay(_runs(spec), "baseline", design_alone, [("v", "copy")])
    assert alone.decisions[("v", "copy")].look == 1 and alone.decisions[("v", "copy")].verdict == "worse"
    many = replay(_runs(spec), "baseline", design_many, [("v", "copy")])
    assert many.decisions[("v", "copy")].look > 1


def _false_difference_rate(design: Design, sims: int, seed: int) -> float:
    """How often a null cell (same mean, normal noise) ends `better` or `worse` under `design`."""
    rng = np.random.default_rng(seed)
    false = 0
    for _ in range(sims):
        spec = {("baseline", "copy"): list(0.6 + 0.05 * rng.standard_normal(design.max_seeds)),
                ("null", "copy"): list(0.6 + 0.05 * rng.standard_normal(design.max_seeds))}
        sequence = replay(_runs(spec), "baseline", design, [("null", "copy")])
        false += sequence.decisions[("null", "copy")].verdict in ("better", "worse")
    return false / sims


@pytest.mark.slow
def test_the_false_difference_rate_stays_near_alpha_where_unspent_looks_exceed_it():
    """Monte Carlo over null cells: with spending the rate stays at most alpha (within 3 standard errors);
    testing every look at the full alpha (what adding seeds until p < 0.05 does) clearly exceeds it."""
    sims = 300
    spent = _false_difference_rate(_design(max_seeds=7, step=1), sims, seed=11)
    assert spent <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)

    class Unspent(Design):  # every look at the full alpha: the naive design the spending replaces
        @property
        def alphas(self):
            return tuple(self.alpha for _ in self.looks)

    naive = _false_difference_rate(Unspent(3, 7, 1, n_cells=1), sims, seed=11)
    assert naive > spent and naive > 0.07


# ------------------------------------------------------------------------------- resuming and the record
def test_a_look_needs_all_its_runs_and_a_replay_stops_where_they_end():
    rng = np.random.default_rng(7)
    full = {("baseline", "copy"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("null", "copy"): list(0.8 + 0.1 * rng.standard_normal(8))}
    partial = {key: values[:6] for key, values in full.items()}  # looks at 3 and 5 seeds, not at 7
    sequence = replay(_runs(partial), "baseline", _design(), [("null", "copy")])
    assert sequence.look == 2 and not sequence.done() and sequence.pending() == [("null", "copy")]
    assert sequence.missing(_runs(partial)) == ["baseline x copy seed 6", "null x copy seed 6"]
    with pytest.raises(ValueError, match="missing: baseline x copy seed 6"):
        sequence.observe(_runs(partial))
    assert "1 still open after look 2 of 4" in sequence.outcome()
    # given the rest, it goes on to the same end as a replay of the whole
    sequence.observe(_runs(full))
    sequence.observe(_runs(full))
    whole = replay(_runs(full), "baseline", _design(), [("null", "copy")])
    assert sequence.to_dict() == whole.to_dict() and sequence.done()


def test_the_same_runs_give_the_same_record_which_reads_back(tmp_path):
    spec = {("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("hurt", "copy"): scores(0.45, 0.03, 8, 2),
            ("twin", "copy"): scores(0.80, 0.02, 8, 1)}
    cells = [("hurt", "copy"), ("twin", "copy")]
    one = replay(_runs(spec), "baseline", _design(n_cells=2), cells)
    two = replay(_runs(spec), "baseline", _design(n_cells=2), cells)
    text = json.dumps(one.to_dict(), sort_keys=True)
    assert text == json.dumps(two.to_dict(), sort_keys=True)
    (tmp_path / sequential.RECORD).write_text(text)
    back = read(tmp_path)
    assert back.to_dict() == one.to_dict() and back.decisions == one.decisions and back.design == one.design
    assert read(tmp_path / "elsewhere") is None
    (tmp_path / sequential.RECORD).write_text('{"design": {}}')
    with pytest.raises(ConfigError, match="corrupted sequential record") as info:
        read(tmp_path)
    assert "\n" not in str(info.value)


def test_overlay_puts_the_sequential_verdicts_into_the_cells_table():
    # `mild` is worse by a fixed-sample test of all 8 seeds, but not yet at the first look's 3 seeds and alpha
    spec = {("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("mild", "copy"): scores(0.77, 0.02, 8, 4),
            ("hurt", "copy"): scores(0.45, 0.03, 8, 2)}
    runs = _runs(spec)
    fixed = summarise(runs, "baseline")
    assert fixed.set_index("variant").loc["mild", "verdict"] == "worse"
    sequence = Sequence(_design(n_cells=2), "baseline", [("mild", "copy"), ("hurt", "copy")])
    sequence.observe(runs)  # one look only: hurt is decided, mild still open
    cells = overlay(fixed, sequence).set_index("variant")
    assert cells.loc["hurt", "verdict"] == "worse" and cells.loc["hurt", "sequential_seeds"] == 3
    assert cells.loc["mild", "verdict"] == "inconclusive" and cells.loc["mild", "sequential_look"] is pd_na()
    assert cells.loc["baseline", "verdict"] == "baseline"
    assert "Of 2 cells, 1 was decided (1 at 3 seeds); 1 still open after look 1 of 4" in sequence.outcome()
    plain = summarise(runs, "baseline")
    assert overlay(plain, None) is plain


def pd_na():
    import pandas as pd

    return pd.NA


# ------------------------------------------------------------- the interval shown is the one the look tested
def _judged_once(spec: dict):
    """The runs of `spec`, a design over its non-baseline cells, and the cells table after the first look."""
    runs, design = _runs(spec), _design(n_cells=len(spec) - 1)
    sequence = Sequence(design, "baseline", [key for key in spec if key[0] != "baseline"])
    sequence.observe(runs)
    return runs, design, sequence, overlay(summarise(runs, "baseline"), sequence).set_index("variant")


def test_a_decided_cell_shows_the_looks_interval_at_its_alpha_and_an_open_one_its_seeds_at_the_next_alpha():
    spec = {("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("twin", "copy"): scores(0.80, 0.02, 8, 3),
            ("noisy", "copy"): scores(0.78, 0.08, 8, 5)}
    runs, design, sequence, cells = _judged_once(spec)
    alpha = design.alphas[0]
    # the interval of the first look: its 3 seeds per side at 1 - 2 alpha_1, not 90% over all 8 seeds
    look = summarise(runs[runs["seed"] < 3], "baseline", alpha=alpha).set_index("variant")
    fixed = summarise(runs, "baseline").set_index("variant")
    for variant in ("twin", "noisy"):
        low, high = cells.loc[variant, ["norm_delta_low", "norm_delta_high"]]
        assert (low, high) == pytest.approx(tuple(look.loc[variant, ["norm_delta_low", "norm_delta_high"]]))
        assert (low, high) != pytest.approx(tuple(fixed.loc[variant, ["norm_delta_low", "norm_delta_high"]]))
        assert cells.loc[variant, "norm_delta_level"] == pytest.approx(1 - 2 * alpha)
    assert fixed.loc["noisy", "norm_delta_level"] == pytest.approx(0.9)
    # the open cell's seeds to decide: at the second look's alphas, so stricter than the fixed-sample estimate
    assert cells.loc["noisy", "verdict"] == "inconclusive"
    from ablations.analyse import stats

    base = fixed.loc["baseline"]
    scale = base["mean"] - base["chance"]
    expected = stats.seeds_to_decide(cells.loc["noisy", "norm_delta"], fixed.loc["noisy", "std"] / scale,
                                     base["std"] / scale, design.margin, alpha_difference=design.difference_alpha(1),
                                     alpha_equivalence=design.alphas[1])
    assert expected is not None and cells.loc["noisy", "seeds_to_decide"] == expected
    assert sequence.next_alphas() == (design.alphas[1], design.difference_alpha(1))
    assert "1 − 2·alpha_k" in design.methods()


# ---------------------------------------------------- a later fixed-seed command makes the record stale
def test_runs_a_later_command_added_make_the_record_stale_and_the_report_falls_back_to_fixed_sample(tmp_path):
    from ablations.analyse.aggregate import aggregate, load
    from tests.ablations.fixtures.synthetic import make_results

    spec = {("baseline", "copy"): scores(0.80, 0.02, 3, 1), ("hurt", "copy"): scores(0.45, 0.03, 3, 2)}
    sequence = replay(_runs(spec), "baseline", _design(), [("hurt", "copy")])
    assert sequence.done() and sequence.stale(_runs(spec)) == []
    assert sorted(map(tuple, sequence.to_dict()["judged"])) == sorted(sequence.judged())
    directory = make_results(tmp_path / "res", spec)
    (directory / sequential.RECORD).write_text(json.dumps(sequence.to_dict()))
    agg = aggregate(load(directory), n_boot=50)
    assert agg.sequence is not None and not any("stale" in note for note in agg.notes)
    assert agg.cells.set_index("variant").loc["hurt", "sequential_look"] == 1
    # `ablate run ... seed=3` into the same directory: a run the sequence never judged
    more = {key: values + [values[0]] for key, values in spec.items()}
    directory = make_results(tmp_path / "res", more)
    (directory / sequential.RECORD).write_text(json.dumps(sequence.to_dict()))
    assert sequence.stale(_runs(more)) == ["baseline x copy seed 3", "hurt x copy seed 3"]
    agg = aggregate(load(directory), n_boot=50)
    (note,) = [n for n in agg.notes if "stale" in n]
    assert "hurt x copy seed 3" in note and "fixed-sample" in note and agg.sequence is None
    hurt = agg.cells.set_index("variant").loc["hurt"]
    assert "sequential_look" not in hurt.index  # no sequential verdict is claimed
    assert hurt["norm_delta_level"] == pytest.approx(0.9)


def test_the_runs_an_unfinished_look_awaits_are_not_stale():
    rng = np.random.default_rng(7)
    full = {("baseline", "copy"): list(0.8 + 0.1 * rng.standard_normal(8)),
            ("null", "copy"): list(0.8 + 0.1 * rng.standard_normal(8))}
    first = replay(_runs({k: v[:3] for k, v in full.items()}), "baseline", _design(), [("null", "copy")])
    assert first.look == 1 and not first.done()
    assert first.stale(_runs({k: v[:4] for k, v in full.items()})) == []   # seed 3: the next look's, awaited
    assert first.stale(_runs({k: v[:6] for k, v in full.items()})) == ["baseline x copy seed 5",
                                                                       "null x copy seed 5"]


def test_a_judged_cell_shows_the_looks_welch_p_and_level_and_no_holm_p_that_would_contradict_it():
    spec = {("baseline", "copy"): scores(0.80, 0.02, 8, 1), ("hurt", "copy"): scores(0.45, 0.03, 8, 2),
            ("twin", "copy"): scores(0.80, 0.02, 8, 3)}
    runs, design, _, cells = _judged_once(spec)
    look = summarise(runs[runs["seed"] < 3], "baseline").set_index("variant")  # the first look's 3 seeds
    assert cells.loc["hurt", "p_value"] == pytest.approx(look.loc["hurt", "p_value"])
    assert cells.loc["hurt", "p_value"] != pytest.approx(summarise(runs, "baseline").set_index("variant")
                                                         .loc["hurt", "p_value"])
    assert cells.loc["hurt", "sequential_difference_alpha"] == pytest.approx(design.difference_alpha(0))
    assert math.isnan(cells.loc["hurt", "p_holm"]) and math.isnan(cells.loc["baseline", "sequential_difference_alpha"])
    from ablations.report.ablation import _p_phrase

    phrase = _p_phrase(cells.loc["hurt"])
    assert phrase.startswith("p=") and f"Welch at α = {design.difference_alpha(0):.2g}" in phrase
    assert "Holm" not in phrase
    fixed = summarise(runs, "baseline").set_index("variant")
    assert _p_phrase(fixed.loc["hurt"]).endswith(" Holm")  # without a sequence: the fixed-sample test
