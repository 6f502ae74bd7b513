"""Divergence is data (issue #10): a tuning trial whose loss blows up is recorded as `diverged` with the step,
uses up its share of the budget, and the sweep goes on to its final runs. (The same for a grid, with the report
showing it: test_kill_resume.py, whose grid has a diverging variant.)"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ablations.cli import main
from tests.reliability.helpers import TINY


@pytest.mark.slow
def test_a_sweep_whose_trials_diverge_records_them_and_finishes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", "sweep=quick", "sweep.trials=2", "sweep.seeds=1", "sweep.pruner=none", "task=copy",
                 "~ablation.variants.post_norm", "~ablation.variants.no_residual",  # the baseline alone
                 "sweep.space.lr.low=1e3", "sweep.space.lr.high=1e4", *TINY, "out=res"]) == 0
    trials = pd.read_csv(tmp_path / "res" / "trials.csv")
    assert trials["status"].tolist() == ["diverged", "diverged"]  # both count against the budget
    assert (trials["steps"] < 30).all()
    for run_dir in trials["run_dir"]:
        result = json.loads((tmp_path / "res" / run_dir / "result.json").read_text())  # relative to the results dir
        assert result["status"] == "diverged" and 0 <= result["diverged_step"] < 30
    runs = pd.read_csv(tmp_path / "res" / "runs.csv")
    assert runs["status"].tolist() == ["ok"] and runs["tuned_params"].isna().all()  # the task's defaults
    assert "diverged" in (tmp_path / "res" / "report.md").read_text()
