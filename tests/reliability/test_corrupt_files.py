"""Corrupted files (issue #10): a results directory damaged from outside (the suite's own writes are atomic) is
one line naming the file and the line, exit status 2, and nothing written, for `ablate report` and for a resumed
`ablate run` alike. What a killed process can leave behind (a journal line cut short) is not corruption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ablations.cli import main
from ablations.store.files import COLUMNS
from tests.ablations.fixtures.synthetic import make_results, standard_trials
from tests.reliability.helpers import TINY, snapshot


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _edit_line(name: str, number: int, edit):
    """Replace line `number` (1-based) of `name` by edit(line without its newline)."""
    def corrupt(directory: Path) -> None:
        lines = _lines(directory / name)
        lines[number - 1] = edit(lines[number - 1].rstrip(b"\n")) + b"\n"
        (directory / name).write_bytes(b"".join(lines))
    return corrupt


def _truncate(name: str, keep: int):
    def corrupt(directory: Path) -> None:
        path = next(directory.glob(name))
        path.write_bytes(path.read_bytes()[:keep])
    return corrupt


def _replace(name: str, content: bytes):
    def corrupt(directory: Path) -> None:
        (directory / name).write_bytes(content)
    return corrupt


def _set_field(name: str, number: int, column: str, value: str):
    """Set one field of line `number` of a CSV file (by its header's column name)."""
    def corrupt(directory: Path) -> None:
        import csv
        import io

        lines = _lines(directory / name)
        header = next(csv.reader([lines[0].decode()]))
        record = next(csv.reader([lines[number - 1].decode()]))
        record[header.index(column)] = value
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(record)
        lines[number - 1] = buffer.getvalue().encode()
        (directory / name).write_bytes(b"".join(lines))
    return corrupt


def _duplicate_line(name: str, number: int):
    def corrupt(directory: Path) -> None:
        lines = _lines(directory / name)
        (directory / name).write_bytes(b"".join(lines + [lines[number - 1]]))
    return corrupt


def _journal_line(line: bytes):
    """A journal with one more complete line (valid JSON, but maybe not a journal operation)."""
    def corrupt(directory: Path) -> None:
        import optuna

        from ablations.execute.storage import open_storage

        study = optuna.create_study(study_name="s", storage=open_storage(None, directory))
        study.tell(study.ask(), 1.0)
        path = directory / "studies.journal"
        path.write_bytes(path.read_bytes() + line + b"\n")
    return corrupt


RUNS = "res/runs\\.csv"
#: id, corruption of a results directory `res`, regex of the one error line
CASES = [
    ("runs-extra-field", _edit_line("runs.csv", 4, lambda line: line + b",surplus"),
     rf"corrupted results file {RUNS}, line 4: expected {len(COLUMNS)} fields, found {len(COLUMNS) + 1}"),
    ("runs-missing-fields", _edit_line("runs.csv", 3, lambda line: line.rsplit(b",", 5)[0]),
     rf"corrupted results file {RUNS}, line 3: expected {len(COLUMNS)} fields, found {len(COLUMNS) - 5}"),
    ("runs-binary-garbage", _edit_line("runs.csv", 5, lambda line: b"\xff\xfe\x00\x81garbage\x00"),
     rf"corrupted results file {RUNS}, line 5: bytes that are not UTF-8 text"),
    ("runs-nul-bytes", _edit_line("runs.csv", 2, lambda line: line[:10] + b"\x00\x00\x00" + line[10:]),
     rf"corrupted results file {RUNS}, line 2: a NUL byte"),
    ("runs-missing-columns", _edit_line("runs.csv", 1, lambda line: line.replace(b"status,", b"state,")),
     rf"corrupted results file {RUNS}, line 1: the header lacks the columns status"),
    ("runs-unknown-status", _edit_line("runs.csv", 3, lambda line: line.replace(b",ok,", b",okk,", 1)),
     rf"corrupted results file {RUNS}, line 3: unknown status 'okk'"),
    ("runs-empty", _replace("runs.csv", b""), rf"corrupted results file {RUNS}, line 1: no header"),
    ("result-json-truncated", _truncate("runs/baseline/copy/s1/result.json", 40),
     r"corrupted results file res/runs/baseline/copy/s1/result\.json, line 1: "),
    ("manifest-truncated", _truncate("manifest.json", 200),
     r"corrupted manifest res/manifest\.json, line \d+: "),
    ("manifest-not-an-object", _replace("manifest.json", b"[1, 2]\n"),
     r"corrupted manifest res/manifest\.json, line 1: expected a JSON object"),
    ("trials-extra-field", _edit_line("trials.csv", 3, lambda line: line + b",x,y"),
     r"corrupted results file res/trials\.csv, line 3: expected \d+ fields, found \d+"),
    # issue #16: values of the wrong type and runs listed twice are corruption too
    ("runs-seed-word", _set_field("runs.csv", 3, "seed", "zero"),
     rf"corrupted results file {RUNS}, line 3: seed 'zero' is not a non-negative integer"),
    ("runs-seed-negative", _set_field("runs.csv", 2, "seed", "-1"), rf"{RUNS}, line 2: seed '-1' is not a non-neg"),
    ("runs-seed-fraction", _set_field("runs.csv", 4, "seed", "1.5"), rf"{RUNS}, line 4: seed '1\.5' is not"),
    ("runs-seed-empty", _set_field("runs.csv", 2, "seed", ""), rf"{RUNS}, line 2: seed '' is not a non-negative"),
    ("runs-score-word", _set_field("runs.csv", 2, "score", "abc"), rf"{RUNS}, line 2: score 'abc' is not a number"),
    ("runs-val-score-word", _set_field("runs.csv", 3, "val_score", "n/a"), rf"{RUNS}, line 3: val_score 'n/a' is no"),
    ("runs-steps-word", _set_field("runs.csv", 5, "steps", "forty"), rf"{RUNS}, line 5: steps 'forty' is not a non"),
    ("runs-higher-is-better", _set_field("runs.csv", 2, "higher_is_better", "maybe"),
     rf"{RUNS}, line 2: higher_is_better 'maybe' is not True or False"),
    ("runs-empty-variant", _set_field("runs.csv", 3, "variant", ""), rf"{RUNS}, line 3: variant '' is not a name"),
    ("runs-duplicate-row", _duplicate_line("runs.csv", 3),
     rf"{RUNS}, line 8: the run variant baseline, task copy, seed 1 is listed twice \(also on line 3\)"),
    ("runs-duplicate-cell-seed", _set_field("runs.csv", 3, "seed", "0"),
     rf"{RUNS}, line 3: the run variant baseline, task copy, seed 0 is listed twice \(also on line 2\)"),
    ("trials-trial-word", _set_field("trials.csv", 2, "trial", "first"),
     r"res/trials\.csv, line 2: trial 'first' is not a non-negative integer"),
    ("journal-json-array", _journal_line(b"[1, 2]"),
     r"corrupted study journal res/studies\.journal, line \d+: not a journal operation"),
    ("journal-no-op-code", _journal_line(b'{"worker_id": "w", "study_id": 0}'), r"line \d+: not a journal operation"),
    ("journal-unknown-op", _journal_line(b'{"op_code": 99, "worker_id": "w"}'), r"line \d+: not a journal operation"),
    ("journal-op-code-text", _journal_line(b'{"op_code": "4", "worker_id": "w"}'), r"not a journal operation"),
    ("journal-missing-fields", _journal_line(b'{"op_code": 4, "worker_id": "w"}'),
     r"line \d+: not a valid CREATE_TRIAL operation \(KeyError"),
    ("journal-bad-state", _journal_line(b'{"op_code": 4, "worker_id": "w", "study_id": 0, "datetime_start": '
                                        b'null, "state": 42}'), r"line \d+: not a valid CREATE_TRIAL operation"),
    ("journal-bad-directions", _journal_line(b'{"op_code": 0, "worker_id": "w", "study_name": "t", '
                                             b'"directions": ["up"]}'), r"not a valid CREATE_STUDY operation"),
]


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    spec = {("baseline", "copy"): [0.9, 0.92, 0.91], ("post_norm", "copy"): [0.5, "diverged", 0.6]}
    return make_results(tmp_path / "res", spec, ablation="default", trials=standard_trials())


#: A resumed `ablate run` goes through the same checks before any work (composing its cells makes each case
#: a few seconds, so it gets one case per file).
RUN_CASES = ["runs-extra-field", "result-json-truncated", "manifest-truncated", "trials-extra-field"]
MATRIX = [("report", *c) for c in CASES] + [("run", *c) for c in CASES if c[0] in RUN_CASES]


@pytest.mark.parametrize("command, name, corrupt, pattern", MATRIX, ids=[f"{c[0]}-{c[1]}" for c in MATRIX])
def test_a_corrupted_file_is_one_line_naming_file_and_line(command, name, corrupt, pattern, results, tmp_path,
                                                           capsys):
    corrupt(results)
    before = snapshot(tmp_path)
    argv = ["report", "res"] if command == "report" else ["run", "task=copy", *TINY, "out=res"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(tmp_path) == before  # no report, no lock file, no run: nothing written


def test_an_intact_directory_passes_the_same_checks(results, capsys):
    """The control: the undamaged fixture is accepted, so each case above fails for its corruption only."""
    assert main(["report", "res"]) == 0
    assert Path(capsys.readouterr().out.splitlines()[0]) == Path("res/report.md")


def test_a_corrupted_study_journal_names_the_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res").mkdir()
    good = json.dumps({"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}).encode()
    (tmp_path / "res" / "studies.journal").write_bytes(good + b"\n" + good + b"\n" + b"{not json\n" + good + b"\n")
    before = snapshot(tmp_path)
    assert main(["run", "sweep=quick", "task=copy", *TINY, "out=res"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "corrupted study journal res/studies.journal, line 3: " in err
    assert snapshot(tmp_path) == before


def test_a_journal_append_cut_short_by_a_kill_is_dropped_not_refused(tmp_path):
    """SIGKILL in the middle of an append leaves a last line without its newline: the storage drops it (nothing
    after it was acknowledged), so the next append starts a line of its own and the journal stays readable."""
    import optuna

    from ablations.execute.storage import open_storage

    study = optuna.create_study(study_name="s", storage=open_storage(None, tmp_path))
    study.tell(study.ask(), 1.0)
    path = tmp_path / "studies.journal"
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 5, "worker_id": "dead", "tri')  # the killed writer's half line
    study = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert path.read_bytes() == intact
    study.tell(study.ask(), 2.0)
    reread = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert [t.value for t in reread.trials] == [1.0, 2.0]
