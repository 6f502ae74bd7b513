"""Optuna interoperability (issue #16): the suite's journal lock is Optuna's own lock (`<journal>.lock`, the link
that `JournalFileSymlinkLock` creates), so optuna-dashboard or a user's script that opens a live suite journal
with `JournalStorage(JournalFileBackend(path))` neither stalls nor deletes a lock the suite holds, and the suite
never deletes a lock that such a program holds. A killed suite worker's lock is still broken at once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalFileSymlinkLock

from ablations.execute.storage import JournalLock, open_storage
from ablations.store.files import check_journal

ROOT = Path(__file__).resolve().parents[2]

#: A suite worker in another process: it appends to the journal through the suite's storage as fast as it can
#: (each append takes the lock) until told to stop, then prints how many trials it created.
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import optuna
    from ablations.execute.storage import open_storage
    out, stop = Path(sys.argv[1]), Path(sys.argv[2])
    study = optuna.create_study(study_name="suite", storage=open_storage(None, out), load_if_exists=True)
    (out / "ready").write_text("1")
    made = 0
    while not stop.exists():
        trial = study.ask()
        trial.set_user_attr("heartbeat", time.time())
        study.tell(trial, float(made))
        made += 1
    print(made)
""")


def _start_writer(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(out / "stop")], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "ready").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.05)
    return process


class _Forced(logging.Handler):
    """Catches Optuna's 'Forcibly releasing the lock file' warning (its lock breaking someone else's)."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("lock", ["symlink", "open"])
def test_an_optuna_only_reader_and_writer_share_a_live_suite_journal(tmp_path, lock):
    journal = tmp_path / "studies.journal"
    writer = _start_writer(tmp_path)
    handler = _Forced()
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    try:
        time.sleep(0.3)  # the writer is appending
        started = time.monotonic()
        lock_obj = JournalFileSymlinkLock(str(journal)) if lock == "symlink" else JournalFileOpenLock(str(journal))
        storage = JournalStorage(JournalFileBackend(str(journal), lock_obj=lock_obj))  # as optuna-dashboard does
        study = optuna.load_study(study_name="suite", storage=storage)
        assert len(study.trials) > 0
        mine = optuna.create_study(study_name="users-own", storage=storage)  # an Optuna write: takes the lock
        for value in range(20):
            mine.tell(mine.ask(), float(value))
        study.set_user_attr("note", "from a script")
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"Optuna's own backend waited {elapsed:.1f}s for the suite's lock"
    finally:
        (tmp_path / "stop").write_text("1")
        out, err = writer.communicate(timeout=60)
        logger.removeHandler(handler)
    assert writer.returncode == 0, err
    made = int(out.strip())
    assert not [m for m in handler.messages if "Forcibly" in m], handler.messages
    check_journal(journal)  # no torn or interleaved line: the two kinds of process excluded each other
    reread = JournalStorage(JournalFileBackend(str(journal)))
    suite = optuna.load_study(study_name="suite", storage=reread)
    assert len(suite.trials) == made and all(t.state.name == "COMPLETE" for t in suite.trials)
    assert suite.user_attrs["note"] == "from a script"
    assert len(optuna.load_study(study_name="users-own", storage=reread).trials) == 20
    assert not (tmp_path / "studies.journal.lock").exists() and not os.path.islink(tmp_path / "studies.journal.lock")
    assert not list(tmp_path.glob("*.rename"))


def test_the_suite_waits_for_a_lock_optuna_holds_and_never_deletes_it(tmp_path):
    journal = tmp_path / "studies.journal"
    open_storage(None, tmp_path)
    theirs = JournalFileSymlinkLock(str(journal))
    assert theirs.acquire()  # Optuna's own lock, held by "optuna-dashboard"
    link = tmp_path / "studies.journal.lock"
    held = os.lstat(link)
    acquired = threading.Event()
    ours = JournalLock(str(journal))

    def take():
        ours.acquire()
        acquired.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    time.sleep(1.0)
    assert not acquired.is_set(), "the suite took a lock that Optuna holds"
    assert os.lstat(link).st_ino == held.st_ino  # still Optuna's, untouched
    theirs.release()
    assert acquired.wait(5), "the suite did not get the lock once Optuna released it"
    # and now Optuna waits for the suite in turn, without breaking the suite's lock
    done = threading.Event()
    threading.Thread(target=lambda: (JournalFileSymlinkLock(str(journal)).acquire(), done.set()),
                     daemon=True).start()
    time.sleep(1.0)
    assert not done.is_set(), "Optuna's lock was taken while the suite held it"
    ours.release()
    assert done.wait(5)
    thread.join(5)


#: A suite process that takes the journal lock and is SIGKILLed while it holds it (as in the middle of an append).
HOLDER = textwrap.dedent("""
    import os, signal, sys
    from ablations.execute.storage import JournalLock
    lock = JournalLock(sys.argv[1])
    lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_lock_left_by_a_killed_suite_worker_is_broken_at_once(tmp_path):
    journal = tmp_path / "studies.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(None, tmp_path))
    study.tell(study.ask(), 1.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", HOLDER, str(journal)], cwd=ROOT, env=env, capture_output=True,
                          timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert os.path.islink(tmp_path / "studies.journal.lock")  # the dead holder's lock is left behind
    started = time.monotonic()
    study = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    study.tell(study.ask(), 2.0)
    assert time.monotonic() - started < 5
    assert [t.value for t in study.trials] == [1.0, 2.0]
    assert not os.path.lexists(tmp_path / "studies.journal.lock")


@pytest.mark.parametrize("kind", ["symlink", "regular-file"])
def test_an_old_foreign_leftover_is_broken_as_optuna_would_but_without_its_wait(tmp_path, kind):
    """A lock that another program left behind (killed) and that is older than Optuna's grace period, with the
    journal unchanged as long: what Optuna breaks after 30 s of waiting is broken at once. (A regular file is
    also what earlier versions of the suite left as their lock.)"""
    journal = tmp_path / "studies.journal"
    open_storage(None, tmp_path)
    link = tmp_path / "studies.journal.lock"
    if kind == "symlink":
        os.symlink(str(journal), link)
    else:
        link.write_bytes(b"")
    old = time.time() - 120
    os.utime(link, (old, old), follow_symlinks=False)
    os.utime(journal, (old, old))
    started = time.monotonic()
    study = optuna.create_study(study_name="s", storage=open_storage(None, tmp_path))
    study.tell(study.ask(), 1.0)
    assert time.monotonic() - started < 5
    assert not os.path.lexists(link)


def test_a_fresh_foreign_lock_is_not_broken_early(tmp_path):
    """The control of the case above: a lock that another program holds now is never broken at once."""
    journal = tmp_path / "studies.journal"
    open_storage(None, tmp_path)
    os.symlink(str(journal), tmp_path / "studies.journal.lock")
    ours = JournalLock(str(journal))
    thread = threading.Thread(target=ours.acquire, daemon=True)
    thread.start()
    thread.join(1.5)
    assert thread.is_alive() and os.path.islink(tmp_path / "studies.journal.lock")
    JournalFileSymlinkLock(str(journal)).release()  # the other program finishes
    thread.join(5)
    assert not thread.is_alive()
    ours.release()
