"""ablations/execute/worker.py: one executor for grids and sweeps, and its correctness contract.

- a grid is a sweep with no tuning trials, shared by `ablate run` and `ablate worker`s, doing each run once;
- killed at random moments and resumed, a tuned sweep ends with the tables of an uninterrupted one (a redone
  trial keeps its slot, its parameters and its seed);
- the same command twice gives the same tables;
- later commands into one directory accumulate seeds, tasks and budgets, and a different ablation is refused.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablations.cli import main
from ablations.execute.storage import SLOT, open_storage
from ablations.execute.worker import gpu_assignment
from ablations.store.directory import TRIAL_COLUMNS
from ablations.store.files import read_runs
from tests.reliability.helpers import ABLATE, GRID, TINY, env

#: A config directory of the tests' own, with the two-variant ablation `pair` (baseline, post_norm on copy).
CONF = Path(__file__).resolve().parents[1] / "fixtures" / "conf"
#: The columns of the tables that depend on what ran, not on when or how fast.
TIMING = ["wall_seconds", "tokens_per_second"]
#: A small tuned sweep: 2 variants x copy, 3 trials each (searching the learning rate), then 2 final seeds.
SWEEP = ["ablation=pair", *TINY, "sweep=quick", "sweep.trials=3", "sweep.seeds=2", "sweep.pruner=none"]
#: The same with 2 trials and 1 seed (6 units), for the test that runs it several times.
SMALL_SWEEP = [*SWEEP, "sweep.trials=2", "sweep.seeds=1"]


@pytest.fixture(autouse=True)
def _pair(monkeypatch):
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(CONF))  # subprocesses inherit it too


def _tables(directory: Path) -> tuple[list[dict], list[dict]]:
    runs = read_runs(directory).drop(columns=TIMING)
    trials = pd.read_csv(directory / "trials.csv") if (directory / "trials.csv").exists() else pd.DataFrame()
    trials = trials.drop(columns=[c for c in TIMING if c in trials.columns])
    as_rows = lambda f: json.loads(f.to_json(orient="records"))  # noqa: E731  (NaN == NaN as null)
    return as_rows(runs), as_rows(trials)


def _finished_trials(directory: Path, kind: str = "final") -> list:
    """The trials of one kind (tune, final) that finished and count, from the directory's storage."""
    storage = open_storage(None, directory)
    trials = []
    for study in storage.get_all_studies():
        if study.user_attrs.get("kind") == kind:
            trials += [t for t in storage.get_all_trials(study._study_id)
                       if t.state != optuna.trial.TrialState.RUNNING and not t.user_attrs.get("surplus")
                       and not t.user_attrs.get("stale")]
    return trials


@pytest.mark.slow
def test_a_grid_shared_by_a_run_and_two_workers_does_each_run_exactly_once(tmp_path):
    out = tmp_path / "grid"
    grid = [*GRID, "ablation.seeds=[0,1,2]", f"out={out}"]
    first = subprocess.Popen([ABLATE, "run", "-q", *grid], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "manifest.json").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    workers = [subprocess.Popen([ABLATE, "worker", "-q", str(out)], cwd=tmp_path, env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in [first, *workers]:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    runs = read_runs(out)
    assert len(runs) == 9 and not runs.duplicated(["variant", "task", "seed"]).any()
    finals = _finished_trials(out)
    assert len(finals) == 9, "each of the 9 runs was trained and told once"
    owners = {t.user_attrs["owner"] for t in finals}
    assert len(owners) >= 2, f"the runs were shared between processes, got {owners}"


def test_ablate_worker_joins_a_plain_grid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", "ablation=pair", *TINY, "out=g"]) == 0
    assert main(["worker", "-q", "g"]) == 0  # nothing left to claim: it finishes at once, with the report
    assert len(read_runs(tmp_path / "g")) == 2


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_sweep(tmp_path):
    reference = subprocess.run([ABLATE, "run", "-q", *SMALL_SWEEP, "out=A"], cwd=tmp_path, env=env(),
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    expected = _tables(tmp_path / "A")
    assert len(expected[0]) == 2 and len(expected[1]) == 4

    rng = random.Random(3)
    kills = 0
    for _ in range(12):
        process = subprocess.Popen([ABLATE, "run", "-q", *SMALL_SWEEP, "out=B"], cwd=tmp_path, env=env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(1.5, 4.0))
        if process.poll() is not None:
            assert process.returncode == 0, process.communicate()[1]
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    else:
        final = subprocess.run([ABLATE, "run", "-q", *SMALL_SWEEP, "out=B"], cwd=tmp_path, env=env(), capture_output=True,
                               text=True, timeout=600)
        assert final.returncode == 0, final.stderr
    assert kills >= 1, "the sweep finished before the first kill: nothing was tested"
    assert _tables(tmp_path / "B") == expected
    slots = sorted(t.user_attrs[SLOT] for t in _finished_trials(tmp_path / "B", "tune"))
    assert slots == [0, 0, 1, 1], "each tuning slot finished exactly once"


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in ("one", "two"):
        assert main(["run", "-q", *SWEEP, f"out={out}"]) == 0
    assert _tables(tmp_path / "one") == _tables(tmp_path / "two")
    trials = pd.read_csv(tmp_path / "one" / "trials.csv")
    assert list(trials.columns) == TRIAL_COLUMNS
    assert trials["lr"].nunique() > 1, "the sampler explored (the tables are not trivially equal)"


def test_seeds_and_tasks_accumulate_and_a_changed_config_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["ablation=pair", *TINY]
    assert main(["run", "-q", *base, "task=copy", "seed=0", "out=acc"]) == 0
    assert main(["run", "-q", *base, "task=copy", "seed=1", "out=acc"]) == 0
    assert main(["run", "-q", *base, "task=reverse", "seed=0", "out=acc"]) == 0
    runs = read_runs(tmp_path / "acc")
    assert sorted(zip(runs["variant"], runs["task"], runs["seed"])) == [
        ("baseline", "copy", 0), ("baseline", "copy", 1), ("baseline", "reverse", 0),
        ("post_norm", "copy", 0), ("post_norm", "copy", 1), ("post_norm", "reverse", 0)]
    capsys.readouterr()
    before = (tmp_path / "acc" / "runs.csv").read_text()
    assert main(["run", "-q", *base, "task=copy", "seed=0", "model.d_model=32", "out=acc"]) == 2
    assert "with a different config" in capsys.readouterr().err
    assert (tmp_path / "acc" / "runs.csv").read_text() == before


def test_a_larger_trial_budget_reruns_the_finals_that_depend_on_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = ["ablation=pair", *TINY, "sweep=quick", "sweep.seeds=1",
             "sweep.pruner=none"]
    assert main(["run", "-q", *sweep, "sweep.trials=1", "out=b"]) == 0
    first = read_runs(tmp_path / "b")
    assert main(["run", "-q", *sweep, "sweep.trials=2", "out=b"]) == 0
    trials = pd.read_csv(tmp_path / "b" / "trials.csv")
    runs = pd.read_csv(tmp_path / "b" / "runs.csv")  # with the tuned parameters of each final
    assert len(runs) == 2 and len(first) == 2, "the finals of the larger budget supersede the old ones"
    for variant, cell in trials.groupby("variant"):
        assert len(cell) == 2, "the first trial was kept and one more ran"
        best = cell.sort_values(["val_score", "trial"], ascending=[False, True]).iloc[0]
        final = runs[runs["variant"] == variant].iloc[0]
        assert json.loads(final["tuned_params"])["lr"] == pytest.approx(best["lr"])


def test_a_different_ablation_into_the_same_directory_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", "ablation=pair", *TINY, "out=d"]) == 0
    capsys.readouterr()
    assert main(["run", "-q", "task=copy", *TINY, "out=d"]) == 2
    assert "holds the results of ablation pair, not default" in capsys.readouterr().err


def test_the_manifest_records_the_code_revision_and_library_versions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", "ablation=pair", *TINY, "out=m"]) == 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert len(manifest["code"]["source_sha256"]) == 16
    assert set(manifest["versions"]) >= {"suite", "torch", "lightning", "optuna", "hydra", "python"}
    from importlib import metadata

    pinned = [r.split("==")[0] for r in metadata.requires("transformer-resilience") if "==" in r and "extra" not in r]
    assert pinned and all(manifest["dependencies"][name] == metadata.version(name) for name in pinned)


@pytest.mark.parametrize("workers,visible,gpus,expected", [
    (3, None, 0, [None, None, None]),
    (4, None, 2, ["0", "1", "0", "1"]),
    (2, "5,7", 2, ["5", "7"]),
    (3, None, 4, ["0", "1", "2"]),
])
def test_each_local_worker_gets_its_own_gpu_where_several_are_visible(workers, visible, gpus, expected):
    assert gpu_assignment(workers, visible, gpus) == expected


@pytest.mark.slow
def test_submitit_array_tasks_do_a_prepared_grid_exactly(tmp_path, monkeypatch):
    """The SLURM recipe (README, "Sweeps on a SLURM cluster") with submitit's local executor: `api.submit`
    prepares the grid without training anything itself, and two array tasks (`ablate worker DIR`) do it."""
    from ablations import api

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    grid = ["ablation=pair", *TINY, "ablation.seeds=[0,1]", "out=cluster"]
    outcome = api.submit(grid, jobs=2, cluster="local", folder=tmp_path / "logs", wait=True, timeout_min=10)
    assert outcome.finished and outcome.report is not None and outcome.report.is_file()
    runs = read_runs(tmp_path / "cluster")
    assert len(runs) == 4 and not runs.duplicated(["variant", "task", "seed"]).any()
    finals = _finished_trials(tmp_path / "cluster")
    assert len(finals) == 4
    assert str(os.getpid()) not in {t.user_attrs["owner"].rpartition(":")[2] for t in finals}, \
        "the submitting process trained nothing"


def test_submit_refuses_a_bad_number_of_tasks_before_anything_is_written(tmp_path, monkeypatch):
    from ablations import api
    from models.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="positive integer"):
        api.submit(["ablation=pair", *TINY, "out=c"], jobs=0, cluster="local")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_stacked_grid_ends_where_the_unstacked_grid_ends(tmp_path, monkeypatch, capsys):
    """trainer.stack=3 through the executor: the three seeds of each cell train as one stack, and every run ends
    with the status, steps and (within 0.01) the score of the same run alone."""
    monkeypatch.chdir(tmp_path)
    grid = ["ablation=pair", *TINY, "ablation.seeds=[0,1,2]"]
    assert main(["run", "-q", *grid, "out=alone"]) == 0
    assert main(["run", "-q", *grid, "trainer.stack=3", "out=stacked"]) == 0
    alone, stacked = read_runs(tmp_path / "alone"), read_runs(tmp_path / "stacked")
    assert len(stacked) == 6
    for (_, a), (_, b) in zip(alone.iterrows(), stacked.iterrows()):
        assert (a["variant"], a["seed"], a["status"], a["steps"]) == (b["variant"], b["seed"], b["status"], b["steps"])
        assert abs(a["score"] - b["score"]) <= 0.01
    results = [json.loads(p.read_text()) for p in (tmp_path / "stacked" / "runs").glob("*/*/*/result.json")]
    assert all(r.get("stack", {}).get("size") == 3 for r in results), "they really trained stacked"


def test_a_stacked_sweep_stacks_later_trials_only_once_the_startup_trials_have_ended(tmp_path, monkeypatch):
    """Trials of one stack start together, so a trial that the sampler or the median pruner would judge by earlier
    trials joins a stack only once those startup trials (here 2) have ended: the first stack of each cell holds
    trials 0-1, the second trials 2-5, each pruned against trials that really finished."""
    monkeypatch.chdir(tmp_path)
    sweep = ["ablation=pair", *TINY, "sweep=quick", "sweep.trials=6", "sweep.seeds=2", "sweep.pruner=median",
             "sweep.pruner_startup_trials=2", "trainer.stack=6"]
    assert main(["run", "-q", *sweep, "out=stacked"]) == 0
    sizes = {(p.parts[-4], p.parts[-2]): json.loads(p.read_text())["stack"]["size"]
             for p in (tmp_path / "stacked" / "trials").glob("*/*/*/result.json")}
    for variant in ("baseline", "post_norm"):
        assert [sizes[(variant, f"t{slot}")] for slot in range(6)] == [2, 2, 4, 4, 4, 4], sizes
    finals = [json.loads(p.read_text())["stack"]["size"] for p in (tmp_path / "stacked" / "runs").glob("*/*/*/result.json")]
    assert finals == [2] * 4  # each cell's two seeds train as one stack


def test_a_cell_is_composed_once_unless_a_value_interpolates_the_seed():
    """Worker._seeded: every seed's config is exactly what composing at that seed gives, by the shortcut (one
    composition per cell) where only the seed differs, and by composing again where a value follows the seed."""
    from types import SimpleNamespace

    from ablations.config import compose_config, to_run_config
    from ablations.execute.plan import CellPlan
    from ablations.execute.worker import Worker

    plain = CellPlan("baseline", "copy", ("task=copy", *TINY), "plain", "maximize")
    linked = CellPlan("baseline", "copy", ("task=copy", *TINY, "optim.warmup_steps=${seed}"), "linked", "maximize")
    worker = SimpleNamespace(_seedless={})
    for plan in (plain, linked):
        for seed in (0, 3, 1004):
            expected = to_run_config(compose_config([*plan.overrides, f"seed={seed}"]))
            assert Worker._seeded(worker, plan, seed) == expected
    assert worker._seedless["plain"] is not None and worker._seedless["linked"] is None
    assert Worker._seeded(worker, linked, 7).optim.warmup_steps == 7


def test_a_cells_finals_are_one_named_study_and_an_older_one_study_per_seed_directory_resumes(tmp_path, monkeypatch):
    """optuna-dashboard reads one finals study per cell (a trial per seed, the objective named by the metric); a
    directory whose finals were one study per seed (`...final.sN`) keeps them: a later command adds only seeds."""
    from optuna.trial import TrialState, create_trial

    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", "ablation=pair", *TINY, "out=g"]) == 0  # seed 0
    before = _tables(tmp_path / "g")[0]
    # The directory as the one-study-per-seed layout left it: seed 0 of each cell in `<cell>.final.s0`.
    storage = open_storage(None, tmp_path / "g")
    finals = [s for s in storage.get_all_studies() if s.user_attrs.get("kind") == "final"]
    assert len(finals) == 2 and all(s.study_name.endswith(".final") for s in finals)  # one per cell
    for frozen in finals:
        (seed0,) = optuna.load_study(study_name=frozen.study_name, storage=storage).trials
        optuna.delete_study(study_name=frozen.study_name, storage=storage)
        legacy = optuna.create_study(study_name=f"{frozen.study_name}.s0", storage=storage, direction="maximize")
        for key, value in {**frozen.user_attrs, "seed": 0}.items():
            legacy.set_user_attr(key, value)
        legacy.add_trial(create_trial(state=TrialState.COMPLETE, value=seed0.value,
                                      user_attrs={k: seed0.user_attrs[k] for k in (SLOT, "row", "status", "owner")}))
    assert main(["run", "-q", "ablation=pair", *TINY, "ablation.seeds=[0,1]", "out=g"]) == 0
    table = _tables(tmp_path / "g")[0]
    assert [r for r in table if r["seed"] == 0] == before and sorted(r["seed"] for r in table) == [0, 0, 1, 1]
    storage = open_storage(None, tmp_path / "g")
    for frozen in (s for s in storage.get_all_studies() if s.study_name.endswith(".final")):
        study = optuna.load_study(study_name=frozen.study_name, storage=storage)
        assert [t.user_attrs[SLOT] for t in study.trials] == [1]  # seed 0 kept from the old study, not redone
        assert study.metric_names == ["test/accuracy"]
    assert main(["run", "-q", "ablation=pair", *TINY, "ablation.seeds=[0,1]", "out=g"]) == 0  # nothing redone
    assert _tables(tmp_path / "g")[0] == table and len(_finished_trials(tmp_path / "g")) == 4
