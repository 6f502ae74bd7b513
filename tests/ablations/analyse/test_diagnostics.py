"""ablations/analyse/diagnostics.py: reading every run's diagnostics and training loss, and the per-layer
profile that every report draws."""

import math

import pandas as pd
import pytest

from ablations.analyse.aggregate import load
from ablations.analyse.diagnostics import depth_profile, read_diagnostics, read_training_loss
from tests.ablations.fixtures.synthetic import make_results
from tests.ablations.report.extra import LAYERS, STEPS, add_diagnostics

SEED_FACTOR = {0: 1.0, 1: 2.0, 2: 10.0}


@pytest.fixture()
def directory(tmp_path):
    spec = {("baseline", "copy"): [0.9, 0.91, 0.92], ("v", "copy"): [0.5, 0.6, "diverged"]}
    directory = make_results(tmp_path / "abl", spec)

    def value(variant, seed, metric, step, layer, branch):
        if variant == "v" and seed == 2 and step == STEPS[-1]:
            return math.inf  # a diverging run's last measurement
        return SEED_FACTOR[seed] * (layer + 1) * (2.0 if branch == "ffn" else 1.0) + step

    add_diagnostics(directory, value)
    return directory


def test_depth_profile_is_the_median_over_seeds_of_the_branch_mean(directory):
    results = load(directory)
    profile = depth_profile(read_diagnostics(directory, results.runs), "branch_ratio")
    end = profile[(profile["variant"] == "baseline") & (profile["moment"] == "end")].set_index("layer")
    assert list(end.index) == list(range(1, LAYERS + 1))
    for layer, row in end.iterrows():
        per_seed = [f * (layer + 1) * 1.5 + STEPS[-1] for f in SEED_FACTOR.values()]  # mean of attn (1x), ffn (2x)
        assert row["median"] == pytest.approx(sorted(per_seed)[1])
        assert (row["low"], row["high"]) == pytest.approx((min(per_seed), max(per_seed)))
        assert row["n_seeds"] == 3
    start = profile[(profile["variant"] == "baseline") & (profile["moment"] == "initialisation")]
    assert start["median"].tolist() == pytest.approx([2.0 * 1.5 * (layer + 1) for layer in range(1, LAYERS + 1)])


def test_a_non_finite_value_is_left_out_and_counted_out(directory):
    results = load(directory)
    profile = depth_profile(read_diagnostics(directory, results.runs), "token_spread")
    end = profile[(profile["variant"] == "v") & (profile["moment"] == "end")]
    assert (end["n_seeds"] == 2).all() and end["median"].map(math.isfinite).all()


def test_no_measurement_gives_an_empty_profile(directory):
    results = load(directory)
    assert depth_profile(read_diagnostics(directory, results.runs), "attention_entropy").empty
    assert depth_profile(pd.DataFrame(columns=["metric"]), "grad_norm").empty


def test_read_training_loss_of_every_run(directory):
    results = load(directory)
    loss = read_training_loss(directory, results.runs)
    assert set(loss.columns) == {"variant", "task", "seed", "status", "step", "loss"}
    assert len(loss.groupby(["variant", "seed"])) == len(results.runs)
    assert set(loss.loc[loss["status"] == "diverged", "variant"]) == {"v"}
