"""Bad input (issue #10): each mistake is one line on stderr naming what is wrong and what would be valid, exit
status 2, no traceback (`--debug` shows one), and nothing written: the working directory, where the results would
go, is exactly as it was.

Every case runs the command line in-process (`ablations.cli.main`, fast); `test_console_script_*` run the
installed `ablate` script for the real exit status and stderr.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

from ablations.cli import main
from ablations.store.files import COLUMNS
from models.errors import ConfigError
from tests.reliability.helpers import TINY, ablate, snapshot


def _file(name: str, content: bytes):
    def setup(cwd: Path) -> None:
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return setup


def _read_only_dir(cwd: Path) -> None:
    (cwd / "locked").mkdir()
    os.chmod(cwd / "locked", 0o500)


def _no_espeak(cwd: Path, monkeypatch) -> None:
    empty = cwd.parent / "empty-bin"  # a PATH without espeak-ng, and a fresh cache (no synthesised clips)
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("ABLATE_CACHE", str(cwd.parent / "fresh-cache"))
    import tasks.spoken_digits as sd  # and no espeak-ng library either (as if espeakng-loader were absent)
    monkeypatch.setattr(sd, "_LIBRARY", sd.SynthesisUnavailable("espeakng-loader is not installed"))


HEADER = ",".join(COLUMNS).encode()
ROW = b"default,baseline,copy,0,ok,accuracy,True,0.1,0.5,0.5,1.0,30,,1.0,100,10.0,abc,runs/x,"
PLUGINS = importlib.util.find_spec("ablations.plugins") is not None

#: id, argv, setup(cwd) or None, regex the one stderr line must match (after "ablate: error: ")
CASES = [
    ("unknown-key-typo", ["train", "model.atention=linear"], None,
     r"unknown config key 'model\.atention' \(did you mean 'model\.attention'\?\); valid: .*model\.attention"),
    ("unknown-section-key", ["run", "optim.learning_rate=1e-3"], None,
     r"unknown config key 'optim\.learning_rate'.*valid: .*optim\.lr"),
    ("unknown-component", ["train", "model.attention=softmx"], None,
     r"unknown attention 'softmx' \(did you mean 'softmax'\?\); valid: .*linear.*softmax"),
    ("unknown-task", ["run", "task=cpy"], None, r"unknown task 'cpy'.*valid: .*copy.*digits"),
    ("unknown-ablation", ["run", "ablation=nope"], None, r"unknown ablation 'nope'.*valid: .*default"),
    ("unknown-sweep", ["run", "sweep=fast"], None, r"unknown sweep 'fast'.*valid: .*none.*quick"),
    ("invalid-combination", ["train", "model.attention=none", "model.position=rope"], None,
     r"model\.position=rope .*model\.attention=none"),
    ("non-positive-size", ["train", "model.d_model=0"], None, r"model\.d_model must be a positive integer, got 0"),
    ("negative-size", ["run", "model.n_layers=-2"], None, r"model\.n_layers must be a positive integer, got -2"),
    ("non-integer-size", ["train", "model.d_ff=64.5"], None, r"model\.d_ff must be a positive integer, got 64\.5"),
    ("non-integer-budget", ["run", "trainer.max_steps=1.5"], None, r"trainer\.max_steps must be an integer, got 1\.5"),
    ("non-positive-batch", ["train", "optim.batch_size=0"], None, r"optim\.batch_size must be positive, got 0"),
    ("width-not-divisible-by-heads", ["train", "model.d_model=48", "model.n_heads=5"], None,
     r"model\.d_model=48 is not divisible by model\.n_heads=5"),
    ("malformed-override", ["run", "model.residual"], None, r"malformed override 'model\.residual'"),
    ("malformed-storage-url", ["run", "sweep=quick", "sweep.storage=foo://x", "out=sw"], None,
     r"unsupported sweep\.storage 'foo://x'; valid: .*postgresql://"),
    ("unreachable-storage", ["run", "sweep=quick", "sweep.storage=postgresql://ablate@127.0.0.1:1/ablate", "out=sw"],
     None, r"cannot open sweep storage postgresql://ablate@127\.0\.0\.1:1/ablate: .*(refused|failed)"),
    ("results-dir-is-a-file", ["run", *TINY, "out=taken"], _file("taken", b"not a directory\n"),
     r"cannot write results to taken: it is a file; choose another out=DIR"),
    ("results-dir-under-a-file", ["run", *TINY, "out=taken/results"], _file("taken", b"not a directory\n"),
     r"cannot write results to taken/results: it is under taken, which is a file"),
    ("train-dir-under-a-file", ["train", *TINY, "out=taken/run"], _file("taken", b"x\n"),
     r"cannot write results to taken/run: it is under taken, which is a file"),
    pytest.param("results-dir-without-permission", ["run", *TINY, "out=locked/results"], _read_only_dir,
                 r"cannot write results to locked/results: permission denied \(its parent locked is not writable\)",
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")),
    ("corrupted-runs-csv", ["run", "task=copy", *TINY, "out=res"],
     _file("res/runs.csv", HEADER + b"\n" + ROW + b"\n" + ROW + b",extra\n"),
     r"corrupted results file res/runs\.csv, line 3: expected 19 fields, found 20"),
    ("corrupted-study-journal", ["run", "sweep=quick", "task=copy", *TINY, "out=res"],
     _file("res/studies.journal", b'{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'
                                  b'{"op_code": 1, "trunc\n{"op_code": 2}\n'),
     r"corrupted study journal res/studies\.journal, line 2: "),
    ("missing-espeak-ng", ["train", "task=spoken_digits", *TINY[:3]], _no_espeak,
     r"task spoken_digits needs espeak-ng: pip install espeakng-loader"),
    pytest.param("plugin-fails-to-import", ["train", "plugins=[no_such_plugin_module]"], None,
                 r"plugin 'no_such_plugin_module' failed to (load|import)",
                 marks=pytest.mark.skipif(not PLUGINS, reason="plugins=[...] is not implemented yet")),
]


def _id(case):
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("name, argv, setup, pattern", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, argv, setup, pattern, tmp_path, monkeypatch,
                                                         capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    if setup is not None:
        setup(cwd, monkeypatch) if setup is _no_espeak else setup(cwd)
    before = snapshot(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("ablate: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert captured.out == ""
    assert snapshot(tmp_path) == before  # nothing created, changed or removed (the cache neither)


def test_debug_shows_the_traceback_instead(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["train", "--debug", "model.atention=linear"], ["--debug", "train", "model.atention=linear"]):
        with pytest.raises(ConfigError, match=r"did you mean 'model\.attention'"):
            main(argv)
    with pytest.raises(ConfigError, match="unsupported sweep.storage"):
        main(["run", "--debug", "sweep=quick", "sweep.storage=foo://x"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_console_script_exit_status_one_line_and_debug_traceback(tmp_path):
    done = ablate("train", "model.atention=linear", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "unknown config key 'model.atention' (did you mean 'model.attention'?)" in done.stderr
    debug = ablate("--debug", "train", "model.atention=linear", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    assert list(tmp_path.iterdir()) == []
