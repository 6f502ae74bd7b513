"""Every task trains end to end (smoke), and the baseline clearly learns the tasks the issue names."""

import math

import pytest

from ablations.config import compose_config, to_run_config
from ablations.execute.run import train
from tasks import TASKS


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Synthesised data go to a temporary cache, never into the checkout."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ABLATE_CACHE", str(tmp_path_factory.mktemp("ablate_cache")))
    yield
    patch.undo()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS.names())
def test_the_baseline_runs_a_few_steps_on_every_task(task, tmp_path):
    cfg = to_run_config(compose_config([f"task={task}", "trainer.max_steps=3", "trainer.val_every=3",
                                        "trainer.log_every=1"]))
    row = train(cfg, tmp_path / task, variant="baseline")
    assert row["status"] == "ok", row["error"]
    assert row["steps"] == 3 and math.isfinite(row["score"]) and math.isfinite(row["test_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["assoc_recall", "spoken_digits"])
def test_the_baseline_clearly_beats_chance_within_its_quick_budget(task, tmp_path):
    row = train(to_run_config(compose_config([f"task={task}"])), tmp_path / task, variant="baseline")
    assert row["status"] == "ok"
    assert row["score"] >= row["chance"] + 0.25 * (1 - row["chance"]), (row["score"], row["chance"])
