"""ablations/progress.py: a bar on a terminal, and one plain line per finished unit in a log (no carriage returns)."""

import io

from ablations.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_tty_prints_one_line_per_finished_unit_and_nothing_else():
    stream = io.StringIO()
    with Progress(total=3, stream=stream) as progress:
        progress.describe("running baseline x copy (seed 0)")
        progress.done("[1/3] baseline x copy: ok")
        progress.done("[2/3] post_norm x copy: ok")
        progress.set_total(4)
        progress.done("[3/4] no_residual x copy: diverged")
    assert stream.getvalue() == ("[1/3] baseline x copy: ok\n[2/3] post_norm x copy: ok\n"
                                 "[3/4] no_residual x copy: diverged\n")
    assert progress.n == 3 and progress.total == 4


def test_a_tty_gets_a_bar_that_advances_and_keeps_each_line():
    stream = FakeTerminal()
    progress = Progress(total=2, initial=1, stream=stream, unit="unit")
    assert progress._bar is not None and progress._bar.n == 1
    progress.describe("running baseline x copy (seed 0)")
    progress.done("[2/2] baseline x copy: ok")
    assert progress._bar.n == 2
    progress.set_total(5)
    assert progress._bar.total == 5
    progress.done("a trial finished elsewhere", at=4)
    assert progress._bar.n == 4 and progress.n == 4
    progress.close()
    out = stream.getvalue()
    assert "\r" in out  # the bar redraws in place
    assert "running baseline x copy (seed 0)" in out and "4/5" in out
    lines = [line for line in out.replace("\r", "\n").splitlines()]
    assert "[2/2] baseline x copy: ok" in lines and "a trial finished elsewhere" in lines


def test_quiet_prints_nothing_on_a_tty_or_elsewhere():
    for stream in (io.StringIO(), FakeTerminal()):
        with Progress(total=2, quiet=True, stream=stream) as progress:
            progress.describe("running x")
            progress.done("[1/2] x: ok")
        assert stream.getvalue() == "" and progress.n == 1


def test_the_default_stream_is_stderr_at_creation(capsys):
    with Progress(total=1) as progress:
        progress.done("[1/1] baseline x copy: ok")
    assert capsys.readouterr().err == "[1/1] baseline x copy: ok\n"
