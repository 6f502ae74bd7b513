"""Crash safety (issue #10): a process killed at any moment (SIGKILL: no handler runs) leaves a results
directory that `ablate report` and a resumed `ablate run` accept, and resuming ends in the same table as a run
that was never interrupted (CPU, fixed seeds)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ablations.cli import main
from ablations.store.files import read_runs
from tests.reliability.helpers import ABLATE, GRID, env, table


def _wait_for(condition, process, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _rows(directory: Path) -> int:
    try:
        return len(read_runs(directory))
    except Exception:  # noqa: BLE001  (checked strictly after each kill, not while polling)
        return -1


def _check_after_kill(directory: Path, capsys) -> None:
    """What a kill left must be readable: runs.csv parses with whole, unique rows, and the report builds."""
    runs = read_runs(directory)  # raises on a torn row
    assert not runs.duplicated(["variant", "task", "seed"]).any()
    assert set(runs["status"]) <= {"ok", "diverged"}
    if (directory / "runs.csv").exists():
        assert main(["report", str(directory)]) == 0, capsys.readouterr().err
    else:
        assert main(["report", str(directory)]) == 2
        assert "no runs.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-q", *GRID, "out=A"]) == 0  # the reference: never interrupted
    expected = table(tmp_path / "A")
    assert len(expected) == 6 and {r["status"] for r in expected} == {"ok", "diverged"}
    capsys.readouterr()

    out = tmp_path / "B"
    command = [ABLATE, "run", "-q", *GRID, f"out={out}"]
    rng = random.Random(10)
    # Two kills at random moments while runs train and rows are appended, one while the report is written.
    for kill in range(3):
        before = _rows(out)
        process = subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        if kill < 2:
            _wait_for(lambda: _rows(out) > max(before, 0) or (before <= 0 and (out / "manifest.json").exists()),
                      process)
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            _wait_for(lambda: _rows(out) == 6, process)
            time.sleep(rng.uniform(0.0, 0.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        _check_after_kill(out, capsys)
    done = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert table(out) == expected  # every run exactly once, with exactly the uninterrupted numbers
    assert (out / "report.md").is_file()
    diverged = [r for r in expected if r["status"] == "diverged"]
    assert all(r["diverged_step"] is not None and r["diverged_step"] < 30 for r in diverged)
    result = json.loads((out / "runs" / "post_norm" / "copy" / "s0" / "result.json").read_text())
    assert result["status"] == "diverged" and result["last_finite_train_loss"] is not None
    assert "| post_norm | copy | 0 | diverged |" in (out / "report.md").read_text()  # the report shows it


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ablations.store.files import append_run, read_runs, write_json_atomic
    out = Path(sys.argv[1])
    n = len(read_runs(out))
    print("ready", flush=True)
    while True:  # as fast as it goes: most of the time is spent inside a write
        append_run(out, {"variant": "v", "task": "t", "seed": n, "status": "ok", "score": n / 7})
        write_json_atomic(out / "result.json", {"seed": n, "padding": "x" * 200_000})
        n += 1
""")


@pytest.mark.slow
def test_sigkill_during_writes_leaves_the_old_or_the_new_file(tmp_path):
    """Killing a process that does nothing but write results: runs.csv always parses, its rows are 0, 1, ... n-1
    (no torn, lost or doubled row), and result.json is always a whole JSON document."""
    rng = random.Random(0)
    for _ in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                  env=env())
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        runs = read_runs(tmp_path)
        assert runs["seed"].tolist() == list(range(len(runs)))
        if (tmp_path / "result.json").exists():
            # the row of seed n is appended before result.json of seed n is written
            assert json.loads((tmp_path / "result.json").read_text())["seed"] in (len(runs) - 2, len(runs) - 1)
    assert len(read_runs(tmp_path)) > 4  # the writers did write
