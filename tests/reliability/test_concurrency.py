"""Concurrency (issue #10): two `ablate run` on one results directory never run a cell twice or interleave
partial rows. A grid holds the directory exclusively, so the second one refuses in one line naming the holder;
tuned sweeps cooperate through the study storage (tests/ablations/test_sweep.py: a run and workers share one
sweep exactly) and hold it shared. Appends from several processes lose no row (tests/ablations/test_results.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from ablations.cli import main
from ablations.store.files import read_runs, run_lock
from models.errors import ConfigError
from tests.reliability.helpers import ABLATE, GRID, env

REFUSAL = r"ablate: error: (\S+) is in use by another `ablate run` \(pid (\d+)\); wait for it to finish"


@pytest.mark.slow
def test_a_second_grid_on_a_busy_directory_refuses_and_the_lock_dies_with_its_holder(tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    slow = [*GRID, "trainer.max_steps=400", "trainer.val_every=200"]  # the first one is still busy for a while
    first = subprocess.Popen([ABLATE, "run", "-q", *slow, "out=res"], cwd=tmp_path, env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (tmp_path / "res" / "manifest.json").exists():  # written once it holds the directory
            assert first.poll() is None, first.communicate()[1]
            assert time.time() < deadline
            time.sleep(0.05)
        assert main(["run", "-q", *slow, "out=res"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        match = re.match(REFUSAL, err)
        assert match and match.group(1) == "res" and int(match.group(2)) == first.pid, err
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    with run_lock(tmp_path / "res"):  # SIGKILL released it: a resumed run is not refused
        pass
    assert not read_runs(tmp_path / "res").duplicated(["variant", "task", "seed"]).any()


def test_the_run_lock_is_exclusive_for_grids_and_shared_for_sweeps(tmp_path):
    with run_lock(tmp_path / "res", exclusive=False), run_lock(tmp_path / "res", exclusive=False):
        with pytest.raises(ConfigError, match="in use by a tuned sweep or `ablate worker`"):
            with run_lock(tmp_path / "res"):
                pass
    with run_lock(tmp_path / "res"):
        for exclusive in (True, False):
            with pytest.raises(ConfigError, match=rf"res is in use by another `ablate run` \(pid {os.getpid()}\)"):
                with run_lock(tmp_path / "res", exclusive=exclusive):
                    pass


def test_bad_input_under_the_lock_leaves_no_folder_behind(tmp_path):
    with pytest.raises(ConfigError, match="storage"):
        with run_lock(tmp_path / "new" / "res"):
            raise ConfigError("cannot open sweep storage")
    assert list(tmp_path.iterdir()) == []
