"""Sweeps: exact budgets, statuses, resume after SIGKILL, several workers on a journal file and on PostgreSQL."""

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations.cli import main
from ablations.config.sweep import SweepConfig
from ablations.execute.storage import claim, open_storage, progress_of
from ablations.config.secrets import redact
from models.errors import ConfigError

ABLATE = str(Path(sys.executable).parent / "ablate")
# 2 variants x 1 task, 3 trials per cell, 2 final seeds: 2 * (3 + 2) = 10 units of work.
TINY_SWEEP = ["task=copy", "~ablation.variants.no_residual", "sweep=quick", "sweep.trials=3", "sweep.seeds=2",
              "sweep.pruner_startup_trials=1", "trainer.max_steps=12", "trainer.val_every=4", "trainer.log_every=4",
              "model.d_model=16", "model.d_ff=32", "model.n_heads=2", "task.n_train=128", "task.n_eval=32"]


def _check_exact_budget(out: Path, trials: int = 3, seeds: int = 2, variants=("baseline", "post_norm")):
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["variant"]) == sorted(v for v in variants for _ in range(seeds))
    assert not runs.duplicated(["variant", "task", "seed"]).any()
    assert set(runs["seed"]) == set(range(seeds))
    trial_rows = pd.read_csv(out / "trials.csv")
    assert trial_rows.groupby("variant").size().to_dict() == {v: trials for v in variants}
    assert set(trial_rows["status"]) <= {"ok", "pruned", "diverged", "failed"}
    assert not trial_rows.duplicated(["variant", "task", "trial"]).any()
    return runs, trial_rows


def test_sweep_config_is_strict():
    good = dict(name="q", trials=2, seeds=1, space={"lr": {"low": 1e-4, "high": 1e-2, "log": True}},
                pruner="median", pruner_startup_trials=1, sampler_seed=0, storage=None, workers=1, grace_seconds=60)
    SweepConfig.from_dict(good)
    with pytest.raises(ConfigError, match="sweep.space.lrr.*did you mean 'lr'"):
        SweepConfig.from_dict({**good, "space": {"lrr": {"low": 1, "high": 2}}})
    with pytest.raises(ConfigError, match="low > 0 on a log scale"):
        SweepConfig.from_dict({**good, "space": {"lr": {"low": 0.0, "high": 1.0, "log": True}}})
    with pytest.raises(ConfigError, match="sweep.pruner"):
        SweepConfig.from_dict({**good, "pruner": "hyperband?"})
    with pytest.raises(ConfigError, match="sweep.workers"):
        SweepConfig.from_dict({**good, "workers": 0})


def test_redact_hides_passwords_only():
    assert redact("postgresql://user:s3cret@db.example:5432/x") == "postgresql://user:***@db.example:5432/x"
    assert redact("postgresql://user@host/x") == "postgresql://user@host/x"
    assert redact(None) is None


def test_bad_storage_urls_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unsupported sweep.storage 'redis://u:\\*\\*\\*@h/0'"):
        open_storage("redis://u:pw@h/0", tmp_path)
    with pytest.raises(ConfigError, match=r"cannot open sweep storage postgresql://u:\*\*\*@127.0.0.1:9/x") as info:
        open_storage("postgresql://u:pw@127.0.0.1:9/x", tmp_path)
    assert "\n" not in str(info.value) and "pw@" not in str(info.value)


def test_claims_never_exceed_the_budget_and_surplus_is_ignored(tmp_path):
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    claimed = [claim(study, 2) for _ in range(3)]
    assert claimed[0] is not None and claimed[1] is not None and claimed[2] is None
    assert progress_of(study, 2) == (0, 2)
    study.tell(claimed[0], 1.0)
    assert progress_of(study, 2) == (1, 1)


@pytest.mark.slow
def test_a_tiny_sweep_has_exact_counts_and_is_not_redone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", *TINY_SWEEP, "out=sw"]) == 0
    runs, trials = _check_exact_budget(tmp_path / "sw")
    assert set(runs["status"]) <= {"ok", "diverged"}
    assert (tmp_path / "sw" / "report.md").exists()
    mtime = (tmp_path / "sw" / "runs.csv").stat().st_mtime_ns
    first = trials.sort_values(["variant", "trial"]).reset_index(drop=True)
    # The same command again: every unit is done, nothing is redone, the tables are unchanged.
    assert main(["run", "-q", *TINY_SWEEP, "out=sw"]) == 0
    again = pd.read_csv(tmp_path / "sw" / "trials.csv").sort_values(["variant", "trial"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)
    assert len(pd.read_csv(tmp_path / "sw" / "runs.csv")) == 4
    assert (tmp_path / "sw" / "runs.csv").stat().st_mtime_ns >= mtime


def _journal_trials(out: Path) -> int:
    if not (out / "studies.journal").exists():
        return 0
    return sum(s.n_trials for s in optuna.get_all_study_summaries(open_storage(None, out)))


@pytest.mark.slow
def test_two_local_workers_share_one_journal_exactly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", *TINY_SWEEP, "sweep.workers=2", "out=sw"]) == 0
    _check_exact_budget(tmp_path / "sw")


@pytest.mark.slow
def test_run_and_a_worker_share_one_postgresql_sweep_exactly(tmp_path, postgres_url):
    password = re.match(r"[^:]+://[^:/@]+:([^@]+)@", postgres_url)
    assert password, f"the PostgreSQL URL must carry a password: {redact(postgres_url)}"
    name = f"pg_{uuid.uuid4().hex[:8]}"  # fresh study names on a server that outlives the test
    out = tmp_path / "sw"
    command = [ABLATE, "run", "-q", *TINY_SWEEP, f"ablation.name={name}", f"sweep.storage={postgres_url}",
               f"out={out}"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "manifest.json").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    worker = subprocess.run([ABLATE, "worker", "-q", str(out), "--storage", postgres_url], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    _check_exact_budget(out)
    manifest = (out / "manifest.json").read_text()
    assert f":{password.group(1)}@" not in manifest and ":***@" in manifest  # the password never reaches results


def test_a_trial_without_a_validation_score_is_a_failure_said_so(tmp_path, monkeypatch, capsys):
    """A trial that trains to its end but records no validation score (here: a validation that does not compute the
    task's metric) is `failed` with an error saying why, told to Optuna as FAIL, and the final run that then has no
    tuned parameters says in one line that it uses the defaults."""
    import torch

    from ablations.execute.module import AblationModule, metrics_from_totals

    def loss_only(self):
        totals = torch.stack(self._val_totals).sum(0).tolist()
        self._val_totals.clear()
        self.log("val/loss", metrics_from_totals(*totals)["loss"])  # no val/accuracy: the task's metric is missing

    monkeypatch.setattr(AblationModule, "on_validation_epoch_end", loss_only)
    monkeypatch.chdir(tmp_path)
    sweep = [*TINY_SWEEP, "~ablation.variants.post_norm", "sweep.trials=2", "sweep.seeds=1", "sweep.pruner=none",
             "trainer.max_steps=6", "trainer.val_every=100"]
    assert main(["run", "-q", *sweep, "out=sw"]) == 0
    trials = pd.read_csv(tmp_path / "sw" / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"failed"} and trials["val_score"].isna().all()
    for error in trials["error"]:
        assert error.startswith("no validation score was recorded (val/accuracy after 6 of 6 steps, "
                                "trainer.val_every=100)") and "did not compute the task's metric" in error
    storage = open_storage(None, tmp_path / "sw")
    states = [t.state for s in storage.get_all_studies() if s.user_attrs.get("kind") == "tune"
              for t in storage.get_all_trials(s._study_id)]
    assert states == [optuna.trial.TrialState.FAIL] * 2
    runs = pd.read_csv(tmp_path / "sw" / "runs.csv")
    assert list(runs["status"]) == ["ok"] and runs["tuned_params"].isna().all()
    assert "no tuning trial of baseline x copy has a validation score" in capsys.readouterr().err
