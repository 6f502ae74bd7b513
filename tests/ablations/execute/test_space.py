"""Search spaces over any config key (float, int, categorical), every pruner, a sqlite storage for one process,
and studies that optuna-dashboard names well: ablations/config/sweep.py and ablations/execute/worker.py."""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations.cli import main
from ablations.config.sweep import SweepConfig
from ablations.execute.storage import open_storage
from models.errors import ConfigError

GOOD = dict(name="q", trials=2, seeds=1, space={"lr": {"low": 1e-4, "high": 1e-2, "log": True}}, pruner="median",
            pruner_startup_trials=1, sampler_seed=0, storage=None, workers=1, grace_seconds=60)
#: 2 variants (baseline, post_norm) x copy, tiny runs.
SWEEP = ["task=copy", "~ablation.variants.no_residual", "sweep=quick", "sweep.trials=4", "sweep.seeds=1",
         "trainer.max_steps=12", "trainer.val_every=4", "trainer.log_every=4", "model.d_model=16", "model.d_ff=32",
         "model.n_heads=2", "task.n_train=128", "task.n_eval=32"]


def test_a_space_entry_is_a_float_an_int_or_a_choice_under_any_model_task_or_optim_key():
    space = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model": {"d_ff": {"low": 32, "high": 128, "type": "int",
                                                                                "log": True}},
             "model.attention": {"choices": ["softmax", "linear"]}, "task": {"n_train": {"low": 64, "high": 256,
                                                                                        "type": "int"}}}
    sweep = SweepConfig.from_dict({**GOOD, "space": space})
    assert sorted(sweep.space) == ["lr", "model.attention", "model.d_ff", "task.n_train"]  # nested and dotted alike
    assert not sweep.stackable and SweepConfig.from_dict({**GOOD, "space": {"optim.lr": GOOD["space"]["lr"]}}).stackable
    for pruner in ("median", "hyperband", "successive_halving", "none"):
        SweepConfig.from_dict({**GOOD, "pruner": pruner})


@pytest.mark.parametrize("space,message", [
    ({"trainer.max_steps": {"low": 10, "high": 20, "type": "int"}}, r"unknown search-space key 'sweep.space.trainer"),
    ({"seed": {"low": 0, "high": 3}}, r"unknown search-space key 'sweep.space.seed'"),
    ({"task.name": {"choices": ["copy", "sort"]}}, r"the task is what a cell is"),
    ({"model.attention": {"choices": []}}, r"choices: a list of distinct plain values"),
    ({"model.attention": {"choices": ["a", "a"]}}, r"choices: a list of distinct plain values"),
    ({"model.d_ff": {"low": 32.5, "high": 64, "type": "int"}}, r"sweep.space.model.d_ff must be"),
    ({"model.d_ff": {"low": 32, "high": 64, "type": "integer"}}, r"type: float\|int"),
    ({"lr": {"low": 1e-4, "high": 1e-2}, "optim.lr": {"low": 1e-4, "high": 1e-2}}, r"both set optim.lr"),
    ({"lr": {"low": 1, "high": 3, "type": "int"}}, r"lr is a float setting"),
])
def test_a_bad_space_is_one_line_naming_what_is_valid(space, message):
    with pytest.raises(ConfigError, match=message) as info:
        SweepConfig.from_dict({**GOOD, "space": space})
    assert "\n" not in str(info.value)


def test_sqlite_is_refused_for_several_workers():
    SweepConfig.from_dict({**GOOD, "storage": "sqlite:///study.db"})
    with pytest.raises(ConfigError, match=r"sqlite is for one process.*sweep.workers=2"):
        SweepConfig.from_dict({**GOOD, "storage": "sqlite:///study.db", "workers": 2})


@pytest.mark.slow
def test_a_categorical_and_an_integer_space_over_model_keys_run_a_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    space = ["+sweep.space.model.d_ff.low=16", "+sweep.space.model.d_ff.high=64", "+sweep.space.model.d_ff.type=int",
             "+sweep.space.model.d_ff.log=true", "+sweep.space.model.attention.choices=[softmax,linear]",
             "sweep.pruner=hyperband", f"sweep.storage=sqlite:///{tmp_path}/study.db"]
    assert main(["run", "-q", *SWEEP, *space, "out=res"]) == 0
    trials = pd.read_csv(tmp_path / "res" / "trials.csv")
    assert len(trials) == 8 and {"model.d_ff", "model.attention"} <= set(trials.columns)
    assert list(trials.columns).index("model.d_ff") > list(trials.columns).index("weight_decay")
    assert trials["model.d_ff"].between(16, 64).all() and set(trials["model.attention"]) <= {"softmax", "linear"}
    for _, row in trials.iterrows():  # each trial really ran with what was sampled
        config = json.loads((tmp_path / "res" / row["run_dir"] / "result.json").read_text())["config"]
        assert config["model"]["d_ff"] == row["model.d_ff"] and config["model"]["attention"] == row["model.attention"]
    runs = pd.read_csv(tmp_path / "res" / "runs.csv")
    for _, run in runs.iterrows():  # the finals re-run each cell's best trial
        tuned = json.loads(run["tuned_params"])
        cell = trials[(trials["variant"] == run["variant"]) & (trials["status"] == "ok")]
        best = cell.loc[cell["val_score"].idxmax()]
        assert tuned["model.d_ff"] == best["model.d_ff"] and tuned["model.attention"] == best["model.attention"]
        config = json.loads((tmp_path / "res" / run["run_dir"] / "result.json").read_text())["config"]
        assert config["model"]["d_ff"] == tuned["model.d_ff"]
    storage = open_storage(f"sqlite:///{tmp_path}/study.db", tmp_path)
    names = {s.study_name: s for s in storage.get_all_studies()}
    tuning = [s for s in names.values() if s.user_attrs.get("kind") == "tune"]
    assert len(tuning) == 2
    study = optuna.load_study(study_name=tuning[0].study_name, storage=storage)
    assert study.metric_names == ["val/accuracy"]
    capsys.readouterr()
    assert main(["worker", "res"]) == 2  # a second process on a sqlite storage: refused in one line
    err = capsys.readouterr().err.strip()
    assert "cannot share a sqlite storage" in err and len(err.splitlines()) == 1


def test_a_searched_key_that_a_variant_sets_or_that_does_not_exist_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", *SWEEP, "+sweep.space.model.norm_placement.choices=[pre,post]", "out=a"]) == 2
    err = capsys.readouterr().err.strip()
    assert "variant post_norm sets model.norm_placement" in err and len(err.splitlines()) == 1
    assert main(["run", "-q", *SWEEP, "+sweep.space.model.d_fff.low=16", "+sweep.space.model.d_fff.high=32",
                 "out=b"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'model.d_ff'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("kind,cls", [("median", optuna.pruners.MedianPruner), ("none", optuna.pruners.NopPruner),
                                      ("hyperband", optuna.pruners.HyperbandPruner),
                                      ("successive_halving", optuna.pruners.SuccessiveHalvingPruner)])
def test_each_pruner_counts_its_resource_in_training_steps(kind, cls):
    from types import SimpleNamespace

    from ablations.config import compose_config, to_run_config
    from ablations.execute.worker import Worker

    cfg = to_run_config(compose_config(["task=copy", "trainer.max_steps=90", "trainer.val_every=10"]))
    fake = SimpleNamespace(sweep=SweepConfig.from_dict({**GOOD, "pruner": kind}), _seeded=lambda plan, seed: cfg)
    pruner = Worker.pruner(fake, plan=None)
    assert type(pruner) is cls
    if kind == "hyperband":
        assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (10, 90, 3)
    if kind == "successive_halving":
        assert (pruner._min_resource, pruner._reduction_factor) == (10, 3)
