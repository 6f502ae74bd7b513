"""Interruption (issue #16): SIGINT (Ctrl-C) and SIGTERM (SLURM, `timeout`, `docker stop`) during training end
the command with status 130 / 143 and exactly one line on stderr, no traceback. The unit that was training is
not recorded (neither `failed` nor `ok`): its claim is released, and the same command run again redoes it, ending
with the table of a run never interrupted. Local helper workers stop with their parent, also when it is killed.

The in-process tests send the signal from inside training (at a fixed step, so they are deterministic and fast);
the `slow` ones send real signals to the console script from outside.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ablations.cli import main
from ablations.execute import module as module_mod
from ablations.execute import stack as stack_mod
from ablations.execute.signals import message
from ablations.store.files import read_runs
from tests.reliability.helpers import ABLATE, TINY, env, table

CASES = [pytest.param(signal.SIGINT, 130, "ablate: interrupted; run the same command again to resume", id="SIGINT"),
         pytest.param(signal.SIGTERM, 143, "ablate: terminated (SIGTERM); run the same command again to resume",
                      id="SIGTERM")]
GRID = ["task=copy", *TINY, "ablation.seeds=[0,1]", "~ablation.variants.post_norm",
        "~ablation.variants.no_residual"]  # the baseline, two seeds


def _signal_at(monkeypatch, signum: int, *, unit: int, step: int = 5) -> list:
    """Send `signum` to this process from inside training: at update `step` of the `unit`-th run trained
    (1-based). Returns the list of (run, step) calls seen, for the test to check the signal was sent."""
    seen = []
    original = module_mod.AblationModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == 0:
            seen.append(0)
        if self.global_step == step and len(seen) == unit:
            seen.append(step)
            os.kill(os.getpid(), signum)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(module_mod.AblationModule, "training_step", training_step)
    return seen


def _one_line(err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [expected], err
    assert "Traceback" not in err


def _trial_states(directory: Path) -> list[tuple[str, dict]]:
    """(state, user attributes) of every trial in the directory's journal."""
    from ablations.execute.storage import open_storage

    storage = open_storage(None, directory)
    return [(t.state.name, t.user_attrs) for s in storage.get_all_studies()
            for t in storage.get_all_trials(s._study_id, deepcopy=False)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid's table, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "res"
    assert main(["run", "-q", *GRID, f"out={out}"]) == 0
    return table(out)


@pytest.mark.slow
@pytest.mark.parametrize("signum,status,line", CASES)
def test_grid_interrupted_keeps_what_finished_and_resumes_to_the_same_table(signum, status, line, reference,
                                                                          tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    seen = _signal_at(monkeypatch, signum, unit=2)
    assert main(["run", "-q", *GRID, f"out={out}"]) == status
    assert 5 in seen  # the signal came from inside the second run's training
    _one_line(capsys.readouterr().err, line)
    runs = read_runs(out)
    assert runs["seed"].tolist() == [0] and set(runs["status"]) == {"ok"}  # what finished is kept, nothing else
    assert not (out / "runs" / "baseline" / "copy" / "s1").exists()  # no half-written run: its log went with it
    assert (out / "runs" / "baseline" / "copy" / "s0" / "result.json").is_file()
    states = _trial_states(out)
    assert sum(s == "COMPLETE" for s, _ in states) == 1
    # The interrupted unit's claim was released (stale) and its redo enqueued: not failed, not a result.
    assert [a.get("stale") for s, a in states if s == "FAIL"] == [True]
    assert sum(s == "WAITING" for s, _ in states) == 1
    monkeypatch.undo()
    assert main(["run", "-q", *GRID, f"out={out}"]) == 0
    assert table(out) == reference
    # the handlers were given back: the ones the process had before (SIG_IGN for SIGINT where the tests were
    # started in the background by a shell without job control, else Python's default_int_handler)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


@pytest.mark.parametrize("signum,status,line", CASES)
def test_train_interrupted_writes_no_result(signum, status, line, tmp_path, monkeypatch, capsys):
    seen = _signal_at(monkeypatch, signum, unit=1)
    assert main(["train", *TINY, f"out={tmp_path / 'one'}"]) == status
    assert 5 in seen
    _one_line(capsys.readouterr().err, line)
    assert not (tmp_path / "one").exists()  # no result.json, no partial log, no folder


@pytest.mark.slow
def test_worker_interrupted_then_the_run_resumes(reference, tmp_path, monkeypatch, capsys):
    """`ablate worker DIR`, interrupted, releases its unit as `ablate run` does."""
    out = tmp_path / "res"
    _signal_at(monkeypatch, signal.SIGTERM, unit=2)
    assert main(["run", "-q", *GRID, f"out={out}"]) == 143
    capsys.readouterr()
    _signal_at(monkeypatch, signal.SIGINT, unit=1)  # the worker's first run: the grid's second
    assert main(["worker", "-q", str(out)]) == 130
    _one_line(capsys.readouterr().err, message(signal.SIGINT))
    assert len(read_runs(out)) == 1
    monkeypatch.undo()
    assert main(["worker", "-q", str(out)]) == 0
    assert table(out) == reference


@pytest.mark.slow
def test_stacked_runs_interrupted_release_every_member(tmp_path, monkeypatch, capsys):
    stacked = [*GRID, "trainer.stack=2"]
    assert main(["run", "-q", *stacked, f"out={tmp_path / 'ref'}"]) == 0
    expected = table(tmp_path / "ref")
    calls = []
    vmapped, looped = stack_mod._step, stack_mod._loop_step

    def interrupt_at_the_sixth_step():
        calls.append(len(calls))
        if len(calls) == 6:  # inside the stack of the two seeds, whichever engine computes it
            os.kill(os.getpid(), signal.SIGINT)

    def step(stack, inputs, targets, batch, fabric):
        interrupt_at_the_sixth_step()
        return vmapped(stack, inputs, targets, batch, fabric)

    def loop_step(stack, inputs, targets, fabric):
        interrupt_at_the_sixth_step()
        return looped(stack, inputs, targets, fabric)

    monkeypatch.setattr(stack_mod, "_step", step)
    monkeypatch.setattr(stack_mod, "_loop_step", loop_step)
    out = tmp_path / "res"
    assert main(["run", "-q", *stacked, f"out={out}"]) == 130
    _one_line(capsys.readouterr().err, message(signal.SIGINT))
    assert calls and len(read_runs(out)) == 0 and not (out / "runs").exists()
    states = _trial_states(out)
    assert [a.get("stale") for s, a in states if s == "FAIL"] == [True, True]  # both members released
    assert sum(s == "WAITING" for s, _ in states) == 2
    monkeypatch.undo()
    assert main(["run", "-q", *stacked, f"out={out}"]) == 0
    assert table(out) == expected


DEFERRED = textwrap.dedent("""
    import os, signal, sys, time
    from ablations.execute.signals import Interrupted, deferred, handled
    with handled():
        try:
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                print("after the signal, still in the section", flush=True)
        except Interrupted as exc:
            print("raised at the end of the section", exc.status, flush=True)
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)  # a second signal after the first was raised: ends at once
            print("not reached", flush=True)
""")


def test_a_deferred_section_finishes_and_a_second_signal_ends_at_once():
    done = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, timeout=60, env=env())
    assert done.stdout.splitlines() == ["after the signal, still in the section", "raised at the end of the section 143"]
    assert done.returncode == 143  # with the status and the one line of the first signal
    _one_line(done.stderr, message(signal.SIGTERM))


# --- real signals to the console script -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _workers(pids: list[int]) -> list[int]:
    """The helper worker processes among `pids` (not multiprocessing's resource tracker, which leaves when the
    pipe from its parent closes)."""
    return [p for p in pids if "spawn_main" in _cmdline(p)]


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, process, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _training(out: Path) -> int:
    """How many runs are training now (a run folder without its result.json)."""
    return sum(1 for d in (out / "runs").glob("*/*/s*") if not (d / "result.json").exists())


#: Three runs, not two: the parent trains from the start, while its spawned helper first imports torch and Lightning
#: (seconds); with two runs, a helper slower than one run found the grid finished and the two never trained at once.
#: With three, a helper that arrives before the parent has finished two runs still finds one (and at most one run
#: is recorded before both train, as the tests assert).
LONG = [*TINY, "trainer.max_steps=400", "ablation.seeds=[0,1,2]", "task=copy", "~ablation.variants.post_norm",
        "~ablation.variants.no_residual"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum,status,line", CASES[1:])  # SIGTERM; SIGINT's path is the same past its handler
def test_workers_stop_with_their_parent_and_the_grid_resumes(signum, status, line, tmp_path, capsys):
    assert main(["run", "-q", *LONG, f"out={tmp_path / 'ref'}"]) == 0
    expected = table(tmp_path / "ref")
    out = tmp_path / "res"
    command = [ABLATE, "run", "-q", *LONG, "sweep.workers=2", f"out={out}"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait(lambda: _training(out) >= 2, process)  # the parent and its helper both train
    children = _children(process.pid)
    workers = _workers(children)
    assert workers
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status
    _one_line(err, line)
    assert not [c for c in workers if _alive(c)]  # no helper outlives its parent: it waited for them
    assert _gone(children)  # nor anything else it started
    runs = read_runs(out)
    assert set(runs["status"]) <= {"ok"} and len(runs) < 2  # both units were training: neither is recorded
    done = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert table(out) == expected


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_helper_worker_dies_with_its_killed_parent_and_releases_its_unit(tmp_path):
    out = tmp_path / "res"
    command = [ABLATE, "run", "-q", *LONG, "sweep.workers=2", f"out={out}"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _wait(lambda: _training(out) >= 2, process)
    children = _workers(_children(process.pid))
    assert children
    process.send_signal(signal.SIGKILL)  # no handler runs in the parent
    process.wait(timeout=30)
    assert _gone(children, timeout=30)
    # The helper was stopped by SIGTERM (the kernel's parent-death signal), so it released its unit itself.
    assert any(a.get("stale") and a.get("owner", "").endswith(tuple(f":{c}" for c in children))
               for s, a in _trial_states(out) if s == "FAIL")


@pytest.mark.slow
@pytest.mark.parametrize("signum,status,line", CASES)
def test_console_script_train_signal(signum, status, line, tmp_path):
    out = tmp_path / "one"
    process = subprocess.Popen([ABLATE, "train", *TINY, "trainer.max_steps=100000", f"out={out}"], cwd=tmp_path,
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(lambda: out.is_dir(), process)
    time.sleep(1.0)  # well inside training
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status
    _one_line(err, line)
    assert not out.exists()
