"""`trainer.checkpoint=none|last|best`: a run (alone or as a stacked member) keeps the weights it says, in a file that
`torch.load(weights_only=True)` reads, and `load_model` gives back the model that scored what result.json says."""

import json

import pandas as pd
import pytest
import torch

from ablations.config import compose_config, to_run_config
from ablations.execute.checkpoint import load_model, path, run_config
from ablations.execute.module import evaluate
from ablations.execute.run import build, train
from ablations.execute.stack import Member, train_stack
from tasks.datamodule import OrderedBatches, TaskDataModule

TINY = ["task=copy", "model.d_model=32", "model.n_layers=1", "trainer.max_steps=30", "trainer.log_every=5",
        "trainer.val_every=10", "trainer.diagnostics_every=0", "task.n_train=1000", "task.n_eval=100"]


def _config(*overrides):
    return to_run_config(compose_config([*TINY, *overrides]))


def _scores(run_dir, which: str, split: str) -> dict:
    cfg = run_config(run_dir)
    task, _ = build(cfg)
    data = TaskDataModule(task, cfg.optim.batch_size, cfg.seed, cfg.trainer.eval_batch_size)
    return evaluate(load_model(run_dir, which), OrderedBatches(data.split(split), cfg.trainer.eval_batch_size), "cpu")


def test_no_checkpoint_by_default(tmp_path):
    train(_config("trainer.max_steps=5"), tmp_path, variant="v")
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(FileNotFoundError, match="trainer.checkpoint=last"):
        load_model(tmp_path)


def test_last_checkpoint_round_trips_to_the_test_score(tmp_path):
    row = train(_config("trainer.checkpoint=last"), tmp_path, variant="v")
    assert row["status"] == "ok" and sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    checkpoint = torch.load(path(tmp_path, "last"), weights_only=True)  # tensors and plain values only
    assert checkpoint["global_step"] == 30
    result = json.loads((tmp_path / "result.json").read_text())
    assert _scores(tmp_path, "last", "test")["accuracy"] == result["score"]
    assert not load_model(tmp_path).training


def test_best_checkpoint_holds_the_best_validation(tmp_path):
    train(_config("trainer.checkpoint=best", "optim.lr=3e-3"), tmp_path, variant="v")
    log = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["val/accuracy"])
    best = log["val/accuracy"].max()
    assert _scores(tmp_path, "best", "val")["accuracy"] == pytest.approx(best, abs=1e-6)
    assert torch.load(path(tmp_path, "best"), weights_only=True)["global_step"] == int(
        log.loc[log["val/accuracy"] == best, "step"].iloc[0]) + 1


def test_a_rerun_does_not_keep_an_earlier_runs_checkpoint(tmp_path):
    train(_config("trainer.checkpoint=last", "trainer.max_steps=5"), tmp_path, variant="v")
    train(_config("trainer.max_steps=5"), tmp_path, variant="v")
    assert not path(tmp_path, "last").exists()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["last", "best"])
def test_a_stacked_member_writes_the_checkpoint_its_run_alone_writes(which, tmp_path):
    members = [_config("seed=0", f"trainer.checkpoint={which}"), _config("seed=1", f"trainer.checkpoint={which}")]
    alone = [train(cfg, tmp_path / f"alone{i}", variant="v") for i, cfg in enumerate(members)]
    rows = train_stack([Member(cfg, tmp_path / f"stacked{i}", "v") for i, cfg in enumerate(members)])
    for i, (row, ref) in enumerate(zip(rows, alone)):
        stacked, reference = (torch.load(path(tmp_path / f"{kind}{i}", which), weights_only=True)
                              for kind in ("stacked", "alone"))
        assert stacked.keys() <= reference.keys() and stacked["global_step"] == reference["global_step"]
        assert stacked["state_dict"].keys() == reference["state_dict"].keys()
        for name, value in reference["state_dict"].items():
            torch.testing.assert_close(stacked["state_dict"][name], value, rtol=1e-5, atol=1e-6)
        if which == "last":
            assert _scores(tmp_path / f"stacked{i}", which, "test")["accuracy"] == row["score"]
