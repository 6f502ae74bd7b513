"""Interruption: SIGINT (Ctrl-C) and SIGTERM (SLURM, `timeout`, `docker stop`) end a command cleanly.

While `handled()` is active (the `ablate` command line and the API's entry points), both signals raise
`Interrupted` in the main thread, wherever it is. That is a `BaseException`, not a `KeyboardInterrupt`, on
purpose: Lightning's `Trainer.fit` turns a `KeyboardInterrupt` into `sys.exit(1)` (`_call_and_handle_interrupt`)
and answers SIGTERM by setting a flag and raising a `SIGTERMException`, a `SystemExit` without a code (exit
status 0) at the end of the batch; any other `BaseException` it tears down after (loggers finalised, handlers
restored) and re-raises unchanged. Lightning's own SIGTERM handler calls the one installed before it (ours), so
ours raises right away.

What an interruption means for the work (see `ablations.execute.worker`): a unit that was running is not a
result, neither `failed` nor `ok`; its claim is released (marked stale, its redo enqueued with the same slot,
parameters and seed), so that the same command run again redoes it. What finished is kept. Sections that must
not be cut in half (telling the storage a result, exporting the tables, releasing claims) run in `deferred()`:
a signal that arrives there takes effect when the section ends. A second signal while the first is being
handled ends the process at once, with the same one line and exit status.

The command line prints `Interrupted.message` (one line) and exits with `Interrupted.status` (128 + signal:
130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process was asked to stop by `signum`; nothing running was recorded, and running the same command
    again resumes."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        return message(self.signum)


def message(signum: int) -> str:
    if signum == signal.SIGINT:
        return "ablate: interrupted; run the same command again to resume"
    name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else f"signal {signum}"
    return f"ablate: terminated ({name}); run the same command again to resume"


class _State:
    depth = 0              # nesting of `handled()`
    saved: dict = {}       # the handlers `handled()` replaced, restored when the outermost one ends
    deferring = 0          # nesting of `deferred()`
    pending: int | None = None   # a signal that arrived while deferred
    raised: int | None = None    # the signal already raised (a second one ends the process)


def _handler(signum, frame) -> None:
    first = _State.raised if _State.raised is not None else _State.pending
    if first is not None:  # a second signal while the first is handled: stop now, saying it once
        try:
            sys.stderr.write(message(first) + "\n")
            sys.stderr.flush()
        finally:
            os._exit(128 + first)
    if _State.deferring:
        if _State.pending is None:
            _State.pending = signum
        return
    _State.raised = signum
    raise Interrupted(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled(signals=SIGNALS):
    """SIGINT and SIGTERM raise `Interrupted` while the body runs (main thread only; elsewhere a no-op). Nested
    uses share the outermost one; the handlers that were there before are restored when it ends."""
    if not _main_thread():
        yield
        return
    if _State.depth == 0:
        _State.saved = {s: signal.getsignal(s) for s in signals}
        _State.pending = _State.raised = None
        for s in signals:
            signal.signal(s, _handler)
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.depth == 0:
            for s, previous in _State.saved.items():
                signal.signal(s, previous if previous is not None else signal.SIG_DFL)
            _State.saved = {}
            _State.pending = _State.raised = None


@contextlib.contextmanager
def deferred():
    """A section that a signal must not cut in half: one that arrives meanwhile raises `Interrupted` when the
    (outermost) section ends, unless an exception is already on its way out."""
    _State.deferring += 1
    try:
        yield
    except BaseException:
        _State.deferring -= 1
        raise
    _State.deferring -= 1
    if _State.deferring == 0 and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        _State.raised = signum
        raise Interrupted(signum)


def pending() -> int | None:
    """The signal waiting for the end of a deferred section, if any."""
    return _State.pending


@contextlib.contextmanager
def ignored_by_children(signals=(signal.SIGINT,)):
    """Processes started in the body begin life ignoring `signals` (an ignored disposition survives exec; a
    blocked mask does not survive multiprocessing's spawn), while this process loses none of them: they are
    blocked meanwhile (Linux queues a blocked signal even when it is ignored) and delivered when the body ends.
    Local worker processes start this way, so that a terminal's Ctrl-C, which reaches the whole process group,
    stops them only through their parent (no KeyboardInterrupt traceback from a child still importing)."""
    if not _main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in signals}
    try:
        yield
    finally:
        for s, previous in saved.items():
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent dies (Linux: PR_SET_PDEATHSIG), else
    watch the parent from a thread; if the parent is already gone, send it now."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signum), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if not armed:
        def watch() -> None:
            import time

            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signum)

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), signum)
