"""Runs end to end: the grid, resume, divergence as data, determinism, and that the baseline learns."""

import json

import pandas as pd
import pytest

from ablations.cli import main
from ablations.config import compose_config, to_run_config
from ablations.execute.run import train

TINY = ["trainer.max_steps=12", "trainer.val_every=6", "trainer.log_every=3", "model.d_model=16",
        "model.d_ff=32", "model.n_heads=2", "task.n_train=256", "task.n_eval=64", "ablation.seeds=[0]"]


def _config(*overrides):
    return to_run_config(compose_config(list(overrides)))


@pytest.mark.slow
def test_run_writes_the_grid_the_report_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "-q", "task=copy", *TINY, "out=abl"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "abl/report.md"
    runs = pd.read_csv(tmp_path / "abl" / "runs.csv")
    assert len(runs) == 3 and set(runs["variant"]) == {"baseline", "post_norm", "no_residual"}
    assert set(runs["status"]) == {"ok"} and set(runs["task"]) == {"copy"}
    # each variant really ran its own configuration (run_dir is recorded relative to the results directory)
    assert set(runs["run_dir"]) == {f"runs/{v}/copy/s0" for v in runs["variant"]}
    configs = {v: json.loads((tmp_path / "abl" / d / "result.json").read_text())["config"]["model"]
               for v, d in zip(runs["variant"], runs["run_dir"])}
    assert configs["post_norm"]["norm_placement"] == "post" and configs["baseline"]["norm_placement"] == "pre"
    assert configs["no_residual"]["residual"] == "none" and configs["baseline"]["residual"] == "standard"
    report = (tmp_path / "abl" / "report.md").read_text()
    assert "| baseline |" in report and "| no_residual |" in report and "copy (accuracy)" in report

    first = json.loads((tmp_path / "abl" / "manifest.json").read_text())["seconds"]
    assert first > 0  # how long the command took, for the reports that state it

    # Running the same command again redoes nothing, and keeps the first command's time in the history.
    assert main(["run", *argv[1:]]) == 0
    assert len(pd.read_csv(tmp_path / "abl" / "runs.csv")) == 3
    manifest = json.loads((tmp_path / "abl" / "manifest.json").read_text())
    assert manifest["history"][-1]["seconds"] == first and 0 < manifest["seconds"]
    # The same directory with another config is refused, in one line, before any work.
    assert main(["run", "-q", "task=copy", *TINY, "optim.lr=1e-2", "out=abl"]) == 2
    assert "different config" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "abl" / "runs.csv")) == 3


@pytest.mark.slow
def test_a_diverging_run_is_a_result_not_a_crash(tmp_path):
    row = train(_config("task=copy", *TINY, "trainer.max_steps=60", "optim.lr=1e4", "optim.warmup_steps=0",
                        "model.norm_placement=post"), tmp_path / "run", variant="hot")
    assert row["status"] == "diverged"
    assert 0 < row["diverged_step"] < 60 and row["steps"] < 60
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "diverged"


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_on_cpu(tmp_path):
    rows = [train(_config("task=digits", *TINY[:5], "seed=3"), tmp_path / str(i), variant="v") for i in range(2)]
    assert rows[0]["score"] == rows[1]["score"] and rows[0]["test_loss"] == rows[1]["test_loss"]
    other = train(_config("task=digits", *TINY[:5], "seed=4"), tmp_path / "other", variant="v")
    assert other["test_loss"] != rows[0]["test_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("task, threshold", [("copy", 0.95), ("digits", 0.85)])
def test_the_baseline_learns_each_task_within_its_default_budget(task, threshold, tmp_path):
    row = train(_config(f"task={task}"), tmp_path / task, variant="baseline")
    assert row["status"] == "ok"
    assert row["score"] >= threshold


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_one_model(tmp_path):
    """Lightning's own distributed strategy (gloo on the CPU): two processes, one result written by rank 0."""
    import subprocess
    import sys
    from pathlib import Path

    ablate = str(Path(sys.executable).parent / "ablate")
    done = subprocess.run([ablate, "train", "-q", "task=copy", "trainer.accelerator=cpu", "trainer.devices=2",
                           "trainer.strategy=ddp", *TINY, "out=ddp"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["ddp/result.json"]  # printed once, by rank 0
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["status"] == "ok" and result["world_size"] == 2 and result["steps"] == 12


def test_ranks_see_disjoint_batches(monkeypatch):
    import torch

    from tasks.base import Split
    from tasks.datamodule import ShuffledBatches

    split = Split(torch.arange(40).view(40, 1), torch.zeros(40, dtype=torch.long))
    seen = {}
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
        stream = iter(ShuffledBatches(split, 4, seed=0))
        seen[rank] = torch.cat([next(stream)[0] for _ in range(5)]).flatten().tolist()
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(40))


class _Reports:
    """A stand-in for an Optuna trial: what `worker.PruningCallback` reports to it, never asked to prune."""

    def __init__(self):
        self.reported = []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return False


def _validation_rows(run_dir) -> list[int]:
    """The metrics.csv steps (Lightning's batch index: n updates are row n - 1) of the rows holding validation."""
    log = pd.read_csv(run_dir / "metrics.csv")
    return list(log.dropna(subset=["val/accuracy"])["step"])


@pytest.mark.parametrize("max_steps, val_every, rows", [(30, 100, [29]), (40, 20, [19, 39]), (30, 20, [19, 29])])
def test_every_run_validates_at_its_last_step_and_no_step_twice(max_steps, val_every, rows, tmp_path):
    """A budget below val_every (or off its multiples) still validates after its last update, once; the pruning
    callback sees that validation; a last step on a multiple of val_every is not validated twice."""
    from ablations.execute.worker import PruningCallback

    trial = _Reports()
    cfg = _config("task=copy", *TINY, "trainer.log_every=7", f"trainer.max_steps={max_steps}",
                  f"trainer.val_every={val_every}")
    row = train(cfg, tmp_path / "run", variant="v", callbacks=[PruningCallback(trial, "val/accuracy")])
    assert row["status"] == "ok" and row["steps"] == max_steps
    assert row["val_score"] is not None and 0.0 <= row["val_score"] <= 1.0
    assert _validation_rows(tmp_path / "run") == rows
    losses = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["train/loss"])["step"]
    assert losses.iloc[-1] == max_steps - 1  # the last checked loss (log_every=7 leaves one pending) is written
    assert [step for step, _ in trial.reported] == [r + 1 for r in rows]
    assert trial.reported[-1][1] == pytest.approx(row["val_score"])
