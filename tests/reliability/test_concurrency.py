"""Concurrency (issue #10): two `ablate run` on one results directory never run a cell twice or interleave
partial rows: grids and sweeps alike cooperate through the study storage (tests/ablations/execute/test_worker.py:
a run and workers share one grid exactly). Appends from several processes lose no row (tests/ablations/test_results.py)."""

from __future__ import annotations

import subprocess

import pytest

from ablations.store.files import read_runs, unmade_on_error
from models.errors import ConfigError
from tests.reliability.helpers import ABLATE, GRID, env


@pytest.mark.slow
def test_two_runs_on_one_grid_directory_share_it_and_run_each_cell_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [subprocess.Popen([ABLATE, "run", "-q", *GRID, "out=res"], cwd=tmp_path, env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in runs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    table = read_runs(tmp_path / "res")
    assert len(table) == 6 and not table.duplicated(["variant", "task", "seed"]).any()
    results = sorted((tmp_path / "res" / "runs").glob("*/*/*/result.json"))
    assert len(results) == 6


def test_bad_input_leaves_no_folder_behind(tmp_path):
    with pytest.raises(ConfigError, match="storage"):
        with unmade_on_error(tmp_path / "new" / "res"):
            raise ConfigError("cannot open sweep storage")
    assert list(tmp_path.iterdir()) == []
