"""The study storage: the only coordination between workers, and how a unit of work is claimed through it.

- A unit of work is claimed by asking the storage for a trial; its slot (below) says which unit it is.
- A trial counts when it finished (complete, pruned, diverged, failed) or is running and alive. A running trial
  whose process is gone (same host, dead pid; another host: a heartbeat older than `sweep.grace_seconds`) is
  marked `stale`, stops counting, and its unit is enqueued again: a killed sweep loses nothing and repeats
  nothing that finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import get_lock_file
from optuna.trial import TrialState
from sqlalchemy import exc as sqlalchemy_exc

from ablations.config.secrets import _redact_text, redact
from ablations.store.files import check_journal, pid_alive, store_error
from models.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)


LOCK_SUFFIX = ".lock"    # Optuna's own lock path: `<journal>.lock` (optuna.storages.journal._file.LOCK_FILE_SUFFIX)
GATE_SUFFIX = ".flock"   # the suite's processes queue for Optuna's lock here (a kernel lock: gone with its holder)
#: How long a lock held by another program (Optuna's own lock, taken by optuna-dashboard or a user's script)
#: may sit unchanged, with the journal unchanged too, before it is taken for its dead holder's leftover and
#: broken: Optuna's own grace period.
FOREIGN_GRACE_SECONDS = 30.0


class JournalLock(JournalFileSymlinkLock):
    """The journal's writer lock, one and the same as Optuna's own: the symbolic link `<journal>.lock` that
    `JournalFileSymlinkLock` creates (and that `JournalFileOpenLock`'s O_EXCL file excludes too), so that
    optuna-dashboard or a script opening the journal with `JournalFileBackend(path)` and the suite's workers
    exclude each other, and none deletes a lock the other holds.

    What the suite adds is a quick end for the lock of a killed worker. Its processes first take an advisory
    `flock` on `<journal>.flock` (the *gate*), which the kernel releases the moment its holder dies, however it
    dies; only the gate's holder creates the link, and it records the link's identity (inode and change time) in
    the gate. So a process that holds the gate and finds a link whose identity the gate records knows that its
    creator, a suite process, is dead (a live one would still hold the gate): it breaks the link at once, with
    no waiting. A link the gate does not record belongs to another program: the suite waits for it, and breaks
    it only as Optuna itself would, when neither it nor the journal changed for `FOREIGN_GRACE_SECONDS` (from
    their own modification times, not from when the wait began, so a leftover that is already old is broken at
    once). (The journal is for processes on one host; many machines share a PostgreSQL storage instead.)"""

    def __init__(self, path: str):
        # not Optuna's __init__: its grace period is the suite's own logic below
        self._lock_target_file = str(path)
        self._lock_file = str(path) + LOCK_SUFFIX
        self.grace_period = None
        self.gate_path = str(path) + GATE_SUFFIX
        self._held: list[tuple[int, str]] = []  # (gate fd, identity of our link), innermost last

    @staticmethod
    def _identity(stat) -> str:
        return f"{stat.st_ino}:{stat.st_ctime_ns}"

    def _recorded(self, fd: int) -> str:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("ascii", "replace").strip()

    RECORD_BYTES = 64  # the gate holds one fixed-size record, written in place: a full disk cannot refuse it

    def _record(self, fd: int, identity: str) -> None:
        os.pwrite(fd, identity.ljust(self.RECORD_BYTES).encode("ascii"), 0)

    def _break(self) -> None:
        """Remove the link the way Optuna's release does (renamed first, so that only one breaker succeeds)."""
        doomed = f"{self._lock_file}{uuid.uuid4()}.rename"
        try:
            os.rename(self._lock_file, doomed)
        except FileNotFoundError:
            return
        os.unlink(doomed)

    def _foreign_is_stale(self, stat) -> bool:
        try:
            journal_mtime = os.stat(self._lock_target_file).st_mtime
        except OSError:
            journal_mtime = 0.0
        return time.time() - max(stat.st_mtime, journal_mtime) > FOREIGN_GRACE_SECONDS

    def acquire(self) -> bool:
        try:
            return self._acquire()
        except OSError as error:  # no space for the gate, a read-only disk, ...: one line, nothing left behind
            raise store_error(self._lock_file, error) from error

    def _acquire(self) -> bool:
        fd = os.open(self.gate_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size < self.RECORD_BYTES:  # its space, taken before any link exists
                self._record(fd, "")
            delay = 0.001
            while True:
                try:
                    os.symlink(self._lock_target_file, self._lock_file)
                except FileExistsError:
                    try:
                        stat = os.lstat(self._lock_file)
                    except FileNotFoundError:
                        continue  # released meanwhile
                    if self._identity(stat) == self._recorded(fd) or self._foreign_is_stale(stat):
                        self._break()  # a killed suite worker's link (or a foreign one Optuna would break too)
                        continue
                    time.sleep(delay)  # another program holds Optuna's lock for one of its appends
                    delay = min(delay * 2, 0.05)
                    continue
                try:
                    identity = self._identity(os.lstat(self._lock_file))
                    self._record(fd, identity)
                except BaseException:
                    self._break()
                    raise
                self._held.append((fd, identity))
                return True
        except BaseException:
            os.close(fd)  # releases the gate
            raise

    def release(self) -> None:
        fd, identity = self._held.pop()
        try:
            try:
                mine = self._identity(os.lstat(self._lock_file)) == identity
            except FileNotFoundError:
                mine = False  # broken by another program after its grace period: nothing of ours to remove
            if mine:
                self._break()
            with contextlib.suppress(OSError):
                self._record(fd, "")
        finally:
            os.close(fd)


class _JournalBackend(JournalFileBackend):
    """Optuna's journal file backend with the suite's lock, whose failed append (no space left on the disk, say)
    leaves the journal as it was: the bytes of a cut-short write are cut off again, under the lock, and the
    failure is one line (`StoreError`), not a traceback."""

    def append_logs(self, logs: list[dict]) -> None:
        with get_lock_file(self._lock):
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as handle:
                size = handle.seek(0, os.SEEK_END)
                try:
                    handle.write(text.encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError as error:
                    with contextlib.suppress(OSError):
                        handle.truncate(size)
                    raise store_error(self._file_path, error) from error


def _journal(path: Path):
    """A journal-file storage at `path`, checked line by line first (before anything is written): a line that
    is not a journal operation is a one-line error naming the file and the line. A last line without its
    newline is what a process killed in the middle of an append leaves behind (nothing after it was
    acknowledged): it is cut off, under the writer lock, so that the next append starts on a line of its own."""
    if path.is_file():
        check_journal(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = JournalLock(str(path))
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
        return optuna.storages.JournalStorage(_JournalBackend(str(path), lock_obj=lock))
    except OSError as error:
        raise store_error(path, error) from error


#: what a database that went away raises (through SQLAlchemy, or wrapped in Optuna's StorageInternalError)
_LOST = (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError, sqlalchemy_exc.DisconnectionError,
         sqlalchemy_exc.TimeoutError)


class StorageLost(ConfigError):
    """The sweep's database went away mid-sweep: one line; what finished is kept in it, and a running unit is
    redone (it goes stale) when the same command or `ablate worker DIR` runs again once the server is back."""


def _lost_cause(error: BaseException) -> BaseException | None:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _LOST):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def _guarded_rdb_class():
    """RDBStorage whose every method turns a lost connection into a one-line `StorageLost`."""
    import functools

    def guard(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except StorageLost:
                raise
            except Exception as error:
                cause = _lost_cause(error)
                if cause is None:
                    raise
                reason = next((line.strip() for line in str(getattr(cause, "orig", None) or cause).splitlines()
                               if line.strip()), type(cause).__name__)
                raise StorageLost(f"lost the sweep storage {redact(self._suite_url)}: "
                                  f"{_redact_text(reason, self._suite_url)}; what finished is kept there: run the "
                                  f"same command again once the server is reachable") from error
        return call

    namespace = {name: guard(value) for name, value in vars(optuna.storages.RDBStorage).items()
                 if callable(value) and not name.startswith("__") and not isinstance(value, (staticmethod,
                                                                                             classmethod, type))}
    namespace["__module__"] = __name__
    return type("GuardedRDBStorage", (optuna.storages.RDBStorage,), namespace)


GuardedRDBStorage = _guarded_rdb_class()


def open_storage(url: str | None, out: Path):
    """The study storage: a journal file under the results directory by default, or an RDB URL
    (PostgreSQL for many machines). An unreachable or malformed URL is a one-line error, with any password
    replaced by ***; so is a database that goes away later, mid-sweep (`StorageLost`)."""
    if not url:
        return _journal(Path(out) / "studies.journal")
    if url.startswith(("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://", "mysql://",
                       "mysql+pymysql://")):
        try:
            storage = GuardedRDBStorage.__new__(GuardedRDBStorage)
            storage._suite_url = url
            storage.__init__(url, engine_kwargs={"pool_pre_ping": True})
            return storage
        except Exception as error:  # sqlalchemy's errors span many lines; one is enough
            cause = _lost_cause(error) or error
            reason = next((line.strip() for line in str(getattr(cause, "orig", None) or cause).splitlines()
                           if line.strip()), type(error).__name__)
            raise ConfigError(f"cannot open sweep storage {redact(url)}: {_redact_text(reason, url)}") from None
    if url.startswith("journal:"):
        return _journal(Path(url.removeprefix("journal:")))
    if url.startswith("sqlite:///"):  # one process only (SweepConfig and `ablate worker` refuse more)
        path = Path(url.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            raise ConfigError(f"cannot open sweep storage {url}: folder {path.parent} does not exist")
        return optuna.storages.RDBStorage(url)
    raise ConfigError(f"unsupported sweep.storage '{redact(url)}'; valid: null (a journal file in the results "
                      f"directory), journal:PATH, sqlite:///FILE (one process), postgresql://user:password@host/db")


# --- claiming work through the storage -------------------------------------------------------------------
#
# A study holds the units of one kind of one cell: its tuning trials (budget = sweep.trials, slots 0 .. budget-1),
# or its final runs (one per seed, the slot is the seed: `claim_slot`). Each unit's slot is kept in the trial's
# user attributes: the
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
    """Mark running trials whose worker is gone as stale and enqueue each one's redo (see `give_back`).
    Returns how many were marked."""
    now = time.time()
    return sum(give_back(study, trial) for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if not _owner_alive(trial, grace_seconds, now))


def give_back(study, trial) -> bool:
    """Mark a running trial stale (FAIL) and enqueue its redo: the same slot and the same parameters (hence the
    same seed), claimed by whichever worker asks next. For a dead worker's trial, and for this worker's own
    when it is interrupted. False when the trial had finished meanwhile."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, STALE, True)
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except (RuntimeError, ValueError):  # it finished meanwhile
        return False
    slot = trial.user_attrs.get(SLOT)
    if slot is not None and not _slot_taken(study, slot):
        study.enqueue_trial(dict(trial.params), user_attrs={SLOT: slot}, skip_if_exists=False)
    return True


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


def upcoming_slot(study, budget: int) -> int | None:
    """The slot the next claim would take: an enqueued redo's (Optuna hands out the oldest waiting trial first),
    else the lowest free one; None when none is left."""
    waiting = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    if waiting:
        return min(waiting, key=lambda t: t.number).user_attrs.get(SLOT)
    return next_slot(study, budget)


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
    return _held(study, trial)


def claim_slot(study, slot: int):
    """Ask for the trial of one given slot (a final run's seed, in its cell's finals study); None (closed as
    surplus) when a lower-numbered trial that counts holds that slot. An enqueued redo is handed out first, with
    the slot it brings, which may be another seed: the claimed unit is then that redo (`SLOT` says which)."""
    trial = study.ask()
    if trial.user_attrs.get(SLOT) is None:
        trial.set_user_attr(SLOT, int(slot))
    return _held(study, trial)


def _held(study, trial):
    """Mark `trial` as this process's (owner, first heartbeat) and return it, or None (closed as surplus) when a
    lower-numbered trial that counts holds its slot: the last step of every claim."""
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
        # The first beat at once: the claim's own beat is as old as the setup between claiming and training.
        while True:
            try:
                self.study._storage.set_trial_user_attr(self.trial._trial_id, "heartbeat", time.time())
            except Exception:  # the trial finished or the storage blinked: the next beat retries
                pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
