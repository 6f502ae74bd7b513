"""`trainer.logger=csv|tensorboard|mlflow|wandb`: the CSV log is always written, the named logger beside it (offline),
for a run alone and for a stacked member; a logger whose package is missing is a one-line error naming its extra."""

import importlib.util

import pandas as pd
import pytest

import ablations.execute.loggers as loggers
from ablations.config import compose_config, to_run_config
from ablations.execute.run import train
from ablations.execute.stack import Member, train_stack
from models.errors import ConfigError

TINY = ["task=copy", "model.d_model=16", "model.n_layers=1", "trainer.max_steps=10", "trainer.log_every=2",
        "trainer.val_every=5", "trainer.diagnostics_every=0", "task.n_train=500", "task.n_eval=50"]


def _config(*overrides):
    return to_run_config(compose_config([*TINY, *overrides]))


def installed(kind):
    return not loggers.missing(kind)


def _files(run_dir, kind):
    """The files `kind` writes under a run directory."""
    folder = {"tensorboard": "tensorboard", "mlflow": "mlruns", "wandb": "wandb"}[kind]
    return [p for p in (run_dir / folder).rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["tensorboard", "mlflow", "wandb"])
def test_a_missing_logger_is_a_one_line_error_naming_its_extra(kind, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in (kind, "tensorboardX") else real(name, *a))
    with pytest.raises(ConfigError) as error:
        _config(f"trainer.logger={kind}")
    message = str(error.value)
    assert f"transformer-resilience[{kind}]" in message and "\n" not in message


def test_an_unknown_logger_names_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: csv, tensorboard, mlflow, wandb"):
        _config("trainer.logger=neptune")


def test_the_logger_does_not_change_the_run():
    assert _config("trainer.logger=tensorboard" if installed("tensorboard") else "trainer.logger=csv").hash() == \
        _config().hash()


@pytest.mark.slow
@pytest.mark.parametrize("kind", [k for k in ("tensorboard", "mlflow", "wandb") if installed(k)])
def test_each_installed_logger_writes_its_files_beside_the_csv_log(kind, tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "WANDB_MODE"):  # unset, and unset again afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    reference = train(_config(), tmp_path / "csv", variant="v")
    row = train(_config(f"trainer.logger={kind}"), tmp_path / "alone", variant="v")
    assert row["status"] == reference["status"] == "ok" and row["score"] == reference["score"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "alone" / "metrics.csv"),
                                  pd.read_csv(tmp_path / "csv" / "metrics.csv"))  # the CSV log, unchanged
    assert _files(tmp_path / "alone", kind)
    stacked = train_stack([Member(_config(f"trainer.logger={kind}", f"seed={s}"), tmp_path / f"stacked{s}", "v")
                           for s in (0, 1)])
    assert [r["status"] for r in stacked] == ["ok", "ok"]
    for s in (0, 1):
        assert _files(tmp_path / f"stacked{s}", kind)
        assert (tmp_path / f"stacked{s}" / "metrics.csv").is_file()
    if kind == "tensorboard":  # the same rows as the run alone
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        def tags(run_dir):
            events = EventAccumulator(str(run_dir / "tensorboard"))
            events.Reload()
            return {t: [e.step for e in events.Scalars(t)] for t in events.Tags()["scalars"]}

        assert tags(tmp_path / "stacked0") == tags(tmp_path / "alone")


@pytest.mark.skipif(not installed("tensorboard"), reason="the tensorboard extra is not installed")
def test_a_rerun_replaces_the_earlier_runs_logger_files(tmp_path):
    for _ in range(2):
        train(_config("trainer.logger=tensorboard", "trainer.max_steps=4"), tmp_path, variant="v")
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    train(_config("trainer.max_steps=4"), tmp_path, variant="v")
    assert not (tmp_path / "tensorboard").exists()
