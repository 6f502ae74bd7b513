"""Determinism (issue #10): on the CPU the same config and seed give bit-identical metrics, and every result
records the torch and suite versions that produced it."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import lightning
import pytest
import torch

import ablations
from ablations.cli import main
from tests.reliability.helpers import TINY


def _train(out: str, *overrides: str) -> dict:
    model_and_budget = [o for o in TINY if not o.startswith("task.")]  # digits has its own data size
    assert main(["train", "-q", "task=digits", *model_and_budget, *overrides, f"out={out}"]) == 0
    return json.loads((Path(out) / "result.json").read_text())


@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = _train("a", "seed=3"), _train("b", "seed=3")
    # Exact equality of every float, not closeness: test metrics, validation score, last training loss.
    assert first["test_metrics"] == second["test_metrics"] and first["test_metrics"]
    for key in ("score", "val_score", "test_loss", "steps", "last_finite_train_loss", "config_hash", "n_params"):
        assert first[key] == second[key], key
    # ...and the whole logged curve, step by step.
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    # The control: another seed gives other numbers (so equality above is not vacuous).
    other = _train("c", "seed=4")
    assert other["test_metrics"]["loss"] != first["test_metrics"]["loss"]


@pytest.mark.slow
def test_versions_are_recorded_with_every_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _train("a", "trainer.max_steps=3")
    versions = result["versions"]
    assert versions["suite"] == ablations.__version__ and versions["torch"] == torch.__version__
    assert versions["lightning"] == lightning.__version__ and versions["python"] == platform.python_version()
    assert result["config"]["seed"] == 0 and result["accelerator"] == "cpu"


@pytest.mark.slow
def test_the_thread_count_a_result_depends_on_is_recorded(tmp_path, monkeypatch):
    # a CPU run's last digits depend on how many threads its kernels split the work into (README: Determinism)
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert _train(f"t{threads}", "trainer.max_steps=3")["torch_threads"] == threads
    finally:
        torch.set_num_threads(before)
