"""Progress of a grid or sweep: a bar on a terminal, one line per finished unit anywhere else.

Why two modes: a tqdm bar redraws itself with carriage returns, which on a terminal is one line that moves but
in a log file or a scheduler's captured stderr is a frame after frame of noise. When the stream is not a TTY,
`Progress` prints only the summary line of each finished unit (a run, a tuning trial), nothing in between.

    with Progress(total=len(todo), quiet=args.quiet) as progress:
        for ...:
            progress.describe(f"running {label}")
            ...
            progress.done(summary_line)
"""

from __future__ import annotations

import sys


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """`total` units, `initial` of them already done (a resumed grid); `quiet` prints nothing at all.

    `stream` is where everything goes (None: `sys.stderr` as it is when the Progress is made, so that a
    redirected stderr is honoured)."""

    def __init__(self, total: int, initial: int = 0, quiet: bool = False, stream=None, unit: str = "run"):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.n, self.quiet = total, initial, quiet
        self.tty = _is_tty(self.stream)
        self._bar = None
        if self.tty and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit=unit, file=self.stream, dynamic_ncols=True)

    def describe(self, text: str) -> None:
        """What is running now: the bar's description on a terminal, nothing elsewhere (no line per start)."""
        if self._bar is not None:
            self._bar.set_description(text)

    def done(self, line: str, *, at: int | None = None) -> None:
        """One unit finished: advance by one (or to `at` units done, when other processes finish units too)
        and print its summary line."""
        self.n = self.n + 1 if at is None else at
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.n = self.n
            self._bar.refresh()
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def set_total(self, n: int) -> None:
        """The number of units changed (a sweep learns its count of final runs as trials finish)."""
        self.total = n
        if self._bar is not None:
            self._bar.total = n
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
