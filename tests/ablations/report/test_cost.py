"""Cost is FLOPs per run and parameters (models/flops.py on each run's config); tokens/s only with its spread."""

import math

import pytest

from ablations.analyse.aggregate import load
from ablations.report.cost import cost_summary, human, run_costs
from models.config import ModelConfig
from models.flops import training_flops_per_token
from tasks import TASKS
from tests.ablations.fixtures.synthetic import make_results
from tests.ablations.report.extra import add_configs


@pytest.fixture()
def costs(tmp_path):
    spec = {("baseline", "copy"): [0.9, 0.91, "diverged"], ("wide", "copy"): [0.92, 0.93, 0.94]}
    directory = make_results(tmp_path / "abl", spec)
    add_configs(directory, batch_size=8)
    return run_costs(load(directory))


def test_flops_per_run_is_flops_per_token_times_tokens_trained(costs):
    task = TASKS.get("copy")()
    seq_len = task.make_split("train", 1, 0).inputs.shape[1]
    per_token = training_flops_per_token(ModelConfig(), seq_len, task.n_classes)  # copy's head is per token
    for row in costs.to_dict("records"):
        assert row["seq_len"] == seq_len and row["seq_len_source"] == "training split"
        assert row["flops_per_token"] == per_token
        assert row["tokens"] == row["steps"] * 8 * seq_len  # the steps the run really took (15 if diverged)
        assert row["flops"] == per_token * row["tokens"]
    diverged = costs[costs["status"] == "diverged"].iloc[0]
    assert diverged["steps"] < costs["steps"].max()


def test_throughput_is_a_median_with_its_range_over_finished_runs(costs):
    summary = cost_summary(costs).set_index("variant")
    base = costs[(costs["variant"] == "baseline") & (costs["status"] == "ok")]["tokens_per_second"]
    assert summary.loc["baseline", "tps_runs"] == 2  # the diverged run's throughput is not a measurement
    assert summary.loc["baseline", "tps_median"] == pytest.approx(base.median())
    assert (summary.loc["baseline", "tps_min"], summary.loc["baseline", "tps_max"]) == (base.min(), base.max())
    assert "ratio" not in " ".join(summary.columns)


def test_a_run_without_a_config_has_no_flops_but_keeps_its_parameters(tmp_path):
    directory = make_results(tmp_path / "abl", {("baseline", "copy"): [0.9]})
    costs = run_costs(load(directory))
    assert math.isnan(costs["flops"].iloc[0]) and costs["n_params"].iloc[0] > 0


def test_human():
    assert human(1.5e9, "FLOPs") == "1.5GFLOPs" and human(830.0) == "830" and human(float("nan")) == "—"
