"""The study storage: the only coordination between workers, and how a unit of work is claimed through it.

- A unit of work is claimed by asking the storage for a trial. Trial numbers are assigned atomically, so the
  claim rule "trial n runs only if fewer than `budget` trials numbered below n count" admits exactly `budget`
  trials however many workers ask at once; a surplus trial is closed at once (marked `surplus`) and ignored.
- A trial counts when it finished (complete, pruned, diverged, failed) or is running and alive. A running trial
  whose process is gone (same host, dead pid) or whose heartbeat is older than `sweep.grace_seconds` is marked
  `stale`, stops counting, and its unit is claimed again: a killed sweep loses nothing and repeats nothing
  that finished.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ablations.config.secrets import _redact_text, redact
from ablations.store.files import check_journal, pid_alive
from models.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)


class FlockJournalLock:
    """The journal's writer lock as an advisory `flock` on `<journal>.lock`. Optuna's default lock is a
    symlink that a killed process leaves behind, so the next process waits out a 30-second grace period and
    then breaks it; the kernel releases a `flock` the moment its holder dies, however it dies. (The journal is
    for processes on one host; many machines share a PostgreSQL storage instead.)"""

    def __init__(self, path: str):
        self.path = f"{path}.lock"
        self._handles: list = []

    def acquire(self) -> bool:
        handle = open(self.path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._handles.append(handle)
        return True

    def release(self) -> None:
        handle = self._handles.pop()
        handle.close()  # releases the lock


def _journal(path: Path):
    """A journal-file storage at `path`, checked line by line first (before anything is written): a line that
    is not JSON is a one-line error naming the file and the line. A last line without its newline is what a
    process killed in the middle of an append leaves behind (nothing after it was acknowledged): it is cut off,
    under the writer lock, so that the next append starts on a line of its own."""
    if path.is_file():
        check_journal(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FlockJournalLock(str(path))
    lock.acquire()
    try:
        with open(path, "ab+") as handle:
            handle.seek(0)
            data = handle.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                handle.truncate(end)
    finally:
        lock.release()
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path), lock_obj=lock))


def open_storage(url: str | None, out: Path):
    """The study storage: a journal file under the results directory by default, or an RDB URL
    (PostgreSQL for many machines). An unreachable or malformed URL is a one-line error, with any password
    replaced by ***."""
    if not url:
        return _journal(Path(out) / "studies.journal")
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://", "mysql://",
                       "mysql+pymysql://")):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as error:  # sqlalchemy's errors span many lines; one is enough
            reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
            raise ConfigError(f"cannot open sweep storage {redact(url)}: {_redact_text(reason, url)}") from None
    if url.startswith("journal:"):
        return _journal(Path(url.removeprefix("journal:")))
    raise ConfigError(f"unsupported sweep.storage '{redact(url)}'; valid: null (a journal file in the results "
                      f"directory), journal:PATH, postgresql://user:password@host/db")


# --- claiming work through the storage -------------------------------------------------------------------

def _alive(trial) -> bool:
    return trial.state == TrialState.RUNNING


def _counts(trial) -> bool:
    """Whether a trial uses up budget: finished for real, or running (liveness is checked separately)."""
    attrs = trial.user_attrs
    if attrs.get("surplus") or attrs.get("stale"):
        return False
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def fail_stale(study, grace_seconds: float) -> int:
    """Mark running trials whose worker is gone as stale (FAIL), so that their unit is claimed again."""
    host = socket.gethostname()
    now = time.time()
    marked = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get("owner", ""))
        owner_host, _, pid = owner.rpartition(":")
        dead = owner_host == host and pid.isdigit() and not pid_alive(int(pid))
        beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
        if dead or now - float(beat) > grace_seconds:
            storage = study._storage
            try:
                storage.set_trial_user_attr(trial._trial_id, "stale", True)
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                marked += 1
            except (RuntimeError, ValueError):  # it finished meanwhile
                pass
    return marked


def progress_of(study, budget: int) -> tuple[int, int]:
    """(finished units, running units) of a study, counting only trials within the budget."""
    counted = [t for t in study.get_trials(deepcopy=False) if _counts(t)]
    finished = sum(1 for t in counted if not _alive(t))
    return min(finished, budget), sum(1 for t in counted if _alive(t))


def claim(study, budget: int):
    """Ask for a trial and keep it only if it falls within the budget; else close it as surplus."""
    trial = study.ask()
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counts(t)]
    if len(earlier) >= budget:
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    trial.set_user_attr("owner", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("heartbeat", time.time())
    return trial


class Heartbeat:
    """Refreshes a running trial's heartbeat from a background thread while its run trains."""

    def __init__(self, study, trial, interval: float):
        self.study, self.trial, self.interval = study, trial, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(self.interval):
            try:
                self.study._storage.set_trial_user_attr(self.trial._trial_id, "heartbeat", time.time())
            except Exception:  # the trial finished or the storage blinked: the next beat retries
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
