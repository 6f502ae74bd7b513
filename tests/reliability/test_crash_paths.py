"""Crash paths that used to kill a whole grid (issue #16): whatever a run does, it ends with a result row, and
a config that cannot work is one line, exit status 2, with nothing written.

- Known before any work (refused at validation): an accelerator this machine does not have, a seed outside
  0..2^32-1 (numpy's and Lightning's seeding range), given as `seed=` or in the ablation's seeds.
- Known only at run time (the run ends `failed` with its message, error.txt and a row; the grid goes on): a
  model or a data set too large to allocate.
- Divergence is checked at the last step too, and a non-finite validation or test loss at the end makes an `ok`
  run `diverged` (unstacked and stacked alike).
- A training loss of exactly 0.0 (the loss-spike detector divided by it).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess

import pandas as pd
import pytest
import torch

from ablations.analyse.diagnostics import loss_events
from ablations.cli import main
from ablations.execute.module import Divergence
from ablations.execute.run import final_check
from ablations.store.files import read_runs
from tests.reliability.helpers import ABLATE, TINY, env, snapshot

NO_GPU = not torch.cuda.is_available()
REFUSED = [  # (id, argv, what the one line says)
    pytest.param(["train", *TINY, "trainer.accelerator=gpu"], "no GPU", id="train-gpu",
                 marks=pytest.mark.skipif(not NO_GPU, reason="a GPU is present")),
    pytest.param(["run", "task=copy", *TINY, "trainer.accelerator=cuda"], "no GPU", id="run-cuda",
                 marks=pytest.mark.skipif(not NO_GPU, reason="a GPU is present")),
    pytest.param(["train", *TINY, "seed=4294967296"], "up to 4294967295", id="train-seed-2^32"),
    pytest.param(["run", "task=copy", *TINY, "seed=4294967296"], "up to 4294967295", id="run-seed-2^32"),
    pytest.param(["run", "task=copy", *TINY, "ablation.seeds=[0,4294967296]"], "each seed of ablation default",
                 id="run-ablation-seed-2^32"),
    pytest.param(["run", "task=copy", *TINY, "sweep=quick", "sweep.seeds=1", "seed=18446744073709551616"],
                 "up to 4294967295", id="sweep-seed-2^64"),
]


@pytest.mark.parametrize("argv,says", REFUSED)
def test_a_config_that_cannot_work_is_one_line_exit_2_nothing_written(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main([*argv, "out=res"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ablate: error: ") and says in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before  # no manifest, no lock, no run folder


# --- run-time failures: a result row each, the grid goes on -------------------------------------------------

HUGE_MODEL = ["model.d_model=65536", "model.n_layers=64"]  # one weight of 48 GiB, 10^12 parameters in all
HUGE_DATA = ["task.n_train=100000000000"]  # 10^11 sequences


def _limited():
    """At most 8 GiB of address space for the child: an allocation too large fails at once on any machine,
    whatever its memory and overcommit policy (nothing is ever touched, so nothing is swapped or killed)."""
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def _ablate(*argv, cwd):
    return subprocess.run([ABLATE, *argv], cwd=cwd, capture_output=True, text=True, timeout=300, env=env(),
                          preexec_fn=_limited)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [HUGE_MODEL, HUGE_DATA], ids=["model", "data"])
def test_train_too_large_to_allocate_fails_with_its_row(overrides, tmp_path):
    done = _ablate("train", *TINY, *overrides, "out=one", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    summary, path = done.stdout.strip().splitlines()
    assert ": failed: RuntimeError:" in summary and "allocate" in summary
    result = json.loads((tmp_path / path).read_text())
    assert result["status"] == "failed" and "allocate" in result["error"]
    assert (tmp_path / "one" / "error.txt").is_file()
    if overrides is HUGE_MODEL:
        assert result["n_params"] > 10**12  # counted without allocating (on the meta device)


@pytest.mark.slow
@pytest.mark.parametrize("stack", [2])  # stack=2 also runs them one by one (they cannot stack): both paths
def test_a_grid_with_runs_too_large_goes_on(stack, tmp_path):
    variants = (f"ablation.variants.post_norm=[{','.join(repr(o) for o in HUGE_MODEL)}]",
                f"ablation.variants.no_residual=[{','.join(repr(o) for o in HUGE_DATA)}]")
    done = _ablate("run", "-q", "task=copy", *variants, *TINY, "ablation.seeds=[0,1]", f"trainer.stack={stack}",
                   "out=res", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    runs = read_runs(tmp_path / "res")
    status = dict(zip(zip(runs["variant"], runs["seed"]), runs["status"]))
    assert status == {("baseline", 0): "ok", ("baseline", 1): "ok", ("post_norm", 0): "failed",
                      ("post_norm", 1): "failed", ("no_residual", 0): "failed", ("no_residual", 1): "failed"}
    assert runs[runs["status"] == "failed"]["error"].str.contains("allocate").all()
    assert (tmp_path / "res" / "report.md").is_file()


# --- divergence between the last check and the end --------------------------------------------------------

BLOWUP = ["optim.lr=1e4", "optim.warmup_steps=0", "trainer.log_every=1000"]  # checked at step 0 only, before


def test_divergence_after_the_last_regular_check_is_caught(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-q", *TINY, *BLOWUP, "out=one"]) == 0
    result = json.loads((tmp_path / "one" / "result.json").read_text())
    assert result["status"] == "diverged" and result["score"] is None and result["test_loss"] is None
    assert 0 < result["diverged_step"] <= 30


@pytest.mark.slow
def test_stacked_divergence_after_the_last_regular_check_is_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = ["task=copy", "~ablation.variants.post_norm", "~ablation.variants.no_residual", *TINY,
            "ablation.seeds=[0,1]", *BLOWUP]  # after TINY, whose one seed would otherwise win
    assert main(["run", "-q", *grid, "trainer.stack=2", "out=stacked"]) == 0
    assert main(["run", "-q", *grid, "out=alone"]) == 0
    stacked, alone = read_runs(tmp_path / "stacked"), read_runs(tmp_path / "alone")
    assert stacked["status"].tolist() == ["diverged", "diverged"]
    columns = ["seed", "status", "score", "test_loss", "steps", "diverged_step"]
    pd.testing.assert_frame_equal(stacked[columns], alone[columns])


@pytest.mark.parametrize("val,test", [(math.nan, 1.0), (1.0, math.inf), (1.0, math.nan)])
def test_a_non_finite_loss_at_the_end_makes_an_ok_run_diverged(val, test):
    divergence = Divergence(4.0)
    divergence.check(0, 2.0)
    assert final_check(divergence, 30, {"val/loss": val}, {"loss": test}) == "diverged"
    assert divergence.diverged_step == 30 and divergence.last_finite_loss == 2.0
    assert final_check(Divergence(4.0), 30, {"val/loss": 1.0}, {"loss": 1.0}) == "ok"


# --- a training loss of exactly zero ------------------------------------------------------------------------

def test_a_zero_loss_then_a_larger_one_is_no_division_by_zero(tmp_path):
    path = tmp_path / "metrics.csv"
    pd.DataFrame({"step": [0, 1, 2, 3], "train/loss": [1.0, 0.0, 0.5, 2.0]}).to_csv(path, index=False)
    events = loss_events(path)
    assert (events["value"] > 0).all() and list(events["step"]) == []  # nothing is a multiple of zero


ZERO_LOSS = ["trainer.max_steps=2000", "trainer.val_every=1000", "trainer.log_every=1", "model.d_model=16",
             "model.d_ff=32", "model.n_heads=2", "model.n_layers=1", "task.n_train=256", "task.n_eval=64",
             "task.length=4", "task.vocab=4", "optim.lr=1e-2", "optim.warmup_steps=0"]  # the issue's repro


@pytest.mark.slow
def test_the_issue_repro_with_a_zero_training_loss_ends_with_its_result(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-q", *ZERO_LOSS, "out=one"]) == 0
    loss = pd.read_csv(tmp_path / "one" / "metrics.csv")["train/loss"].dropna().tolist()
    first_zero = loss.index(0.0)  # the bug's path: a loss of exactly 0.0, and a larger one after it
    assert any(v > 0 for v in loss[first_zero:])
    result = json.loads((tmp_path / "one" / "result.json").read_text())
    assert result["status"] == "ok"
    assert (tmp_path / "one" / "diagnostics.csv").is_file()
