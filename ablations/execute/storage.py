"""The study storage: the only coordination between workers, and how a unit of work is claimed through it.

- A unit of work is claimed by asking the storage for a trial; its slot (below) says which unit it is.
- A trial counts when it finished (complete, pruned, diverged, failed) or is running and alive. A running trial
  whose process is gone (same host, dead pid; another host: a heartbeat older than `sweep.grace_seconds`) is
  marked `stale`, stops counting, and its unit is enqueued again: a killed sweep loses nothing and repeats
  nothing that finished.
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
#
# A study holds the units of one kind of one cell: its tuning trials (budget = sweep.trials), or the one final
# run of one seed (budget 1). Each unit has a *slot*, 0 .. budget-1, kept in the trial's user attributes: the
# slot fixes the unit's seed and run directory, and a unit redone after a crash keeps its slot and its sampled
# parameters (the stale trial's parameters are enqueued for the redo). So with one worker, a sweep killed at any
# moment and resumed ends with the same tables as one never interrupted.
#
# Claims race only through trial numbers, which the storage assigns atomically. A new trial takes the lowest
# slot that no live or finished trial holds; two trials that took the same slot at the same moment are settled
# by their numbers (the lower one keeps it, the other is closed as `surplus` before or after it runs), so the
# budget of finished units is exact however many workers ask at once.

SLOT, STALE, SURPLUS = "slot", "stale", "surplus"


def _alive(trial) -> bool:
    return trial.state == TrialState.RUNNING


def _counts(trial) -> bool:
    """Whether a trial holds its slot: finished for real, or running (liveness is checked separately)."""
    attrs = trial.user_attrs
    if attrs.get(SURPLUS) or attrs.get(STALE):
        return False
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def _owner_alive(trial, grace_seconds: float, now: float) -> bool:
    """A trial's worker is alive when it runs on this host under a live pid; a worker on another host is
    presumed dead when its heartbeat is older than `grace_seconds`. (A live local process is never presumed
    dead, however long a busy machine delays its heartbeat: redoing it would waste its work.)"""
    owner_host, _, pid = str(trial.user_attrs.get("owner", "")).rpartition(":")
    if owner_host == socket.gethostname() and pid.isdigit():
        return pid_alive(int(pid))
    beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
    return now - float(beat) <= grace_seconds


def fail_stale(study, grace_seconds: float) -> int:
    """Mark running trials whose worker is gone as stale (FAIL) and enqueue each one's redo: the same slot and
    the same parameters, claimed by whichever worker asks next. Returns how many were marked."""
    now = time.time()
    marked = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _owner_alive(trial, grace_seconds, now):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, STALE, True)
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # it finished meanwhile
            continue
        marked += 1
        slot = trial.user_attrs.get(SLOT)
        if slot is not None and not _slot_taken(study, slot):
            study.enqueue_trial(dict(trial.params), user_attrs={SLOT: slot}, skip_if_exists=False)
    return marked


def _slot_taken(study, slot: int) -> bool:
    return any((_counts(t) or t.state == TrialState.WAITING) and t.user_attrs.get(SLOT) == slot
               for t in study.get_trials(deepcopy=False))


def slots_of(study) -> tuple[set, set]:
    """(finished slots, running slots) of a study: slots held by trials that count."""
    finished, running = set(), set()
    for trial in study.get_trials(deepcopy=False):
        if _counts(trial) and trial.user_attrs.get(SLOT) is not None:
            (running if _alive(trial) else finished).add(trial.user_attrs[SLOT])
    return finished, running


def progress_of(study, budget: int) -> tuple[int, int]:
    """(finished units, running units) of a study, within its budget."""
    finished, running = slots_of(study)
    return len({s for s in finished if s < budget}), len({s for s in running - finished if s < budget})


def claimable(study, budget: int) -> bool:
    """Whether a unit of this study is waiting to be claimed (a free slot, or an enqueued redo)."""
    finished, running = slots_of(study)
    waiting = any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
    return waiting or len({s for s in finished | running if s < budget}) < budget


def next_slot(study, budget: int) -> int | None:
    """The slot a fresh trial would take now (the lowest free one), or None."""
    finished, running = slots_of(study)
    free = [s for s in range(budget) if s not in finished | running]
    return free[0] if free else None


def claim(study, budget: int):
    """Ask for a trial and give it a slot within the budget; None (the trial closed as surplus) when none is
    left. An enqueued redo brings its own slot; a fresh trial takes the lowest slot no earlier trial holds."""
    trial = study.ask()
    slot = trial.user_attrs.get(SLOT)
    if slot is None:
        held = {t.user_attrs.get(SLOT) for t in study.get_trials(deepcopy=False)
                if t.number < trial.number and (_counts(t) or t.state == TrialState.WAITING)}
        free = [s for s in range(budget) if s not in held]
        if not free:
            _surplus(study, trial)
            return None
        slot = free[0]
        trial.set_user_attr(SLOT, slot)
    trial.set_user_attr("owner", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("heartbeat", time.time())
    if not holds_slot(study, trial):
        _surplus(study, trial)
        return None
    return trial


def holds_slot(study, trial) -> bool:
    """Whether `trial` still holds its slot: no lower-numbered trial that counts holds the same one (the rule
    that settles two claims made at the same moment; checked after claiming and again before telling)."""
    slot = trial.user_attrs.get(SLOT) if hasattr(trial, "user_attrs") else None
    number = trial.number
    for other in study.get_trials(deepcopy=False):
        if other.number < number and _counts(other) and other.user_attrs.get(SLOT) == slot:
            return False
    return True


def _surplus(study, trial) -> None:
    trial.set_user_attr(SURPLUS, True)
    try:
        study.tell(trial, state=TrialState.FAIL)
    except (RuntimeError, ValueError):  # already finished (marked stale meanwhile)
        pass


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
