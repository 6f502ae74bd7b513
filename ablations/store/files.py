"""The results store: `result.json` per run and `runs.csv` per results directory, written atomically.

Every write goes to a temporary file in the same directory and is renamed over the target, so a process
killed at any moment leaves either the old file or the new one, never a partial row. Appends to `runs.csv`
hold an exclusive lock, so two processes writing to one directory never lose each other's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from models.errors import ConfigError

#: Columns of runs.csv, in order. `score` is the task's metric on the test split; `chance` is the metric of
#: uniform guessing, so that scores of different tasks can be normalised (chance 0, baseline 1).
COLUMNS = ["ablation", "variant", "task", "seed", "status", "metric", "higher_is_better", "chance", "score",
           "val_score", "test_loss",
           "steps", "diverged_step", "wall_seconds", "n_params", "tokens_per_second", "config_hash",
           "run_dir", "error"]
STATUSES = ("ok", "diverged", "pruned", "failed")
#: What each typed column of runs.csv holds: a corrupted value is a one-line error naming its line, never a row
#: silently read as something else (a seed `zero` would make a resume redo every cell; a score `abc` would be
#: dropped while its cell still counts the run).
RUN_TYPES = {"seed": "seed", "higher_is_better": "bool", "chance": "number", "score": "number",
             "val_score": "number", "test_loss": "number", "steps": "count", "diverged_step": "count",
             "wall_seconds": "number", "n_params": "count", "tokens_per_second": "number",
             "variant": "name", "task": "name"}
#: the same for trials.csv (the report tolerates missing trial columns, not wrong values)
TRIAL_TYPES = {"trial": "count", "lr": "number", "warmup_frac": "number", "weight_decay": "number",
               "val_score": "number", "steps": "count", "wall_seconds": "number", "seed": "count"}
#: the columns that identify a run: two rows with the same values are one run counted twice
RUN_KEY = ("variant", "task", "seed")


class StoreError(ConfigError):
    """A results file could not be written (no space left, a read-only or vanished disk): one line naming the
    file and the reason. What was there before is intact (every write is atomic), so the same command run again
    once the cause is gone resumes where this one stopped."""


def store_error(path, error: OSError) -> StoreError:
    reason = error.strerror or type(error).__name__
    return StoreError(f"cannot write {path}: {reason}; what was written before is intact: fix that and run the "
                      f"same command again to resume")


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a temporary file renamed over it), with every secret in it masked
    (`ablations.config.secrets.redact_text`: the one place every file of the suite passes through). A failure of
    the disk (no space left, read-only, ...) is a one-line `StoreError`; the old file, if any, stays whole."""
    from ablations.config.secrets import redact_text

    text = redact_text(text)

    def produce(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    write_file_atomic(path, produce)


def write_file_atomic(path: Path, produce) -> None:
    """`produce(tmp)` writes the file at the temporary path `tmp` beside `path`, which is then renamed over
    `path` (readable as an ordinary file, not mkstemp's private mode); a failing disk is a one-line `StoreError`
    naming `path`, nothing half-written is left, and the old file, if any, stays whole."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        produce(Path(tmp))
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(error, OSError):
            raise store_error(path, error) from error
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    """`data` as JSON, atomically, with secret-named keys and the credentials of URLs masked."""
    from ablations.config.secrets import redact_data

    write_text_atomic(path, json.dumps(redact_data(data), indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def locked(directory: Path):
    """An exclusive advisory lock on a results directory (released when the process dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_runs(directory: Path) -> pd.DataFrame:
    """runs.csv as a DataFrame (empty, with the columns, when there is none yet). A corrupted file (torn rows,
    values of the wrong type, one run listed twice) is a one-line `ConfigError` naming the file and the line."""
    path = Path(directory) / "runs.csv"
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    check_csv(path, COLUMNS, statuses=STATUSES, types=RUN_TYPES, unique=RUN_KEY)
    try:
        # index_col=False and ParserWarning as an error: a row with extra fields is corruption, not an index
        # or a truncation; only empty fields are missing values, so a variant called "NA" stays a string.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False, keep_default_na=False, na_values=[""],
                                dtype={"variant": str, "task": str})
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"corrupted results file {path}: {str(error).splitlines()[0]}") from None
    return frame[COLUMNS]


def _corrupted(path: Path, line: int, reason: str) -> ConfigError:
    return ConfigError(f"corrupted results file {path}, line {line}: {reason}; repair or remove the file (the "
                       f"same `ablate run` writes runs.csv and trials.csv again from the study storage)")


_INTEGER = re.compile(r"[0-9]+(\.0*)?")  # pandas writes an integer column with gaps as 12.0


def _type_problem(kind: str, value: str) -> str | None:
    """Why `value` is not of `kind` (None when it is); empty fields are missing values, except for seeds and
    names, which every run has."""
    if value == "" and kind not in ("seed", "name"):
        return None
    if kind in ("seed", "count"):
        return None if _INTEGER.fullmatch(value) else "a non-negative integer"
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return "a number"
        return None
    if kind == "bool":
        return None if value in ("True", "False", "true", "false", "1", "0", "1.0", "0.0") else "True or False"
    if kind == "name":
        return None if value.strip() else "a name"
    return None


def check_csv(path: Path, columns: list[str], *, statuses=None, types: dict | None = None,
              unique: tuple | None = None) -> None:
    """Raise a one-line `ConfigError` naming `path` and the line number when the CSV file is not what the suite
    writes: undecodable bytes, a missing header or missing columns, a row with a different number of fields, an
    unknown status, a value of the wrong type (`types`: column -> seed, count, number, bool or name), or a second
    row with the same `unique` columns."""
    import csv

    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _corrupted(path, data.count(b"\n", 0, error.start) + 1, "bytes that are not UTF-8 text") from None
    if "\x00" in text:
        raise _corrupted(path, text.count("\n", 0, text.index("\x00")) + 1, "a NUL byte (binary data)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise _corrupted(path, 1, "no header (the file is empty)")
        missing = [c for c in columns if c not in header]
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise _corrupted(path, 1, f"the header lacks the columns {shown}")
        status_index = header.index("status") if statuses and "status" in header else None
        typed = [(header.index(c), c, kind) for c, kind in (types or {}).items() if c in header]
        key_index = [header.index(c) for c in unique] if unique and all(c in header for c in unique) else None
        seen: dict[tuple, int] = {}
        start = reader.line_num + 1
        for record in reader:
            if not record:
                start = reader.line_num + 1
                continue
            if len(record) != len(header):
                raise _corrupted(path, start, f"expected {len(header)} fields, found {len(record)}")
            if status_index is not None and record[status_index] not in statuses:
                raise _corrupted(path, start, f"unknown status {record[status_index]!r} (valid: "
                                              f"{', '.join(statuses)})")
            for index, column, kind in typed:
                expected = _type_problem(kind, record[index])
                if expected:
                    raise _corrupted(path, start, f"{column} {record[index]!r} is not {expected}")
            if key_index is not None:
                key = tuple(record[i] if c != "seed" else str(int(float(record[i])))
                            for i, c in zip(key_index, unique))
                if key in seen:
                    shown = ", ".join(f"{c} {v}" for c, v in zip(unique, key))
                    raise _corrupted(path, start, f"the run {shown} is listed twice (also on line {seen[key]})")
                seen[key] = start
            start = reader.line_num + 1
    except csv.Error as error:
        raise _corrupted(path, reader.line_num, str(error)) from None


def check_json(path: Path, *, kind: str = "results file") -> dict:
    """A JSON object from `path`; anything else is a one-line `ConfigError` naming the file and the line."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        line = path.read_bytes().count(b"\n", 0, error.start) + 1
        raise ConfigError(f"corrupted {kind} {path}, line {line}: bytes that are not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"corrupted {kind} {path}, line {error.lineno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"corrupted {kind} {path}, line 1: expected a JSON object, got {type(data).__name__}")
    return data


def check_journal(path: Path) -> None:
    """An Optuna journal file is one journal operation per line: a JSON object with a known `op_code`, a
    `worker_id` and the fields that operation needs. A complete line that is not is a one-line `ConfigError`
    naming the file and the line; each line is replayed as Optuna replays it, so whatever Optuna would stumble
    over is found here, with its line. (A last line without its newline is an append cut short by a killed
    process, which the sweep's storage drops; see `ablations.execute.storage.open_storage`.)"""
    import uuid

    from optuna.storages.journal._storage import JournalOperation, JournalStorageReplayResult

    path = Path(path)
    data = path.read_bytes()
    replay = JournalStorageReplayResult(f"check-{uuid.uuid4()}-")  # no line is "this worker's"
    ops = {int(op) for op in JournalOperation}
    for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), 1):
        def bad(reason: str) -> ConfigError:
            return ConfigError(f"corrupted study journal {path}, line {number}: {reason}; the sweep cannot resume "
                               f"from it (remove the file to start the sweep afresh)")
        try:
            log = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise bad(error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 text") from None
        op = log.get("op_code") if isinstance(log, dict) else None
        if isinstance(op, bool) or not isinstance(op, int) or op not in ops or not isinstance(log.get("worker_id"),
                                                                                             str):
            raise bad("not a journal operation (a JSON object with a known op_code and a worker_id)")
        try:
            replay.apply_logs([log])
        except Exception as error:  # noqa: BLE001  (whatever Optuna's replay trips over is this line's fault)
            detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise bad(f"not a valid {JournalOperation(op).name} operation ({detail.splitlines()[0][:120]})") from None


def check_results_dir(directory: Path) -> None:
    """Check every file the suite reads back from a results directory (runs.csv, trials.csv, manifest.json and
    each run's result.json): a corrupted one is a one-line `ConfigError` naming the file and the line. Files the
    suite writes itself are never corrupt (every write is atomic), so this finds damage done from outside."""
    directory = Path(directory)
    read_runs(directory)
    if (directory / "trials.csv").is_file():
        check_csv(directory / "trials.csv", [], types=TRIAL_TYPES)  # missing trial columns are tolerated
    if (directory / "manifest.json").is_file():
        check_json(directory / "manifest.json", kind="manifest")
    if (directory / "studies.journal").is_file():
        check_journal(directory / "studies.journal")
    for sub in ("runs", "trials"):
        for result in sorted((directory / sub).glob("**/result.json")):
            check_json(result)


def check_writable(directory: Path) -> None:
    """Refuse, before any work, a results directory that cannot be written: a file in its place or above it,
    or a directory (it or its nearest existing parent) without write permission."""
    directory = Path(directory)
    probe = directory
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == directory else f"is under {probe}, which is a file"
        raise ConfigError(f"cannot write results to {directory}: it {where}; choose another out=DIR")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == directory else f" (its parent {probe} is not writable)"
        raise ConfigError(f"cannot write results to {directory}: permission denied{where}; choose another out=DIR")


@contextlib.contextmanager
def unmade_on_error(directory: Path):
    """Create `directory` for the body; if the body fails with bad input (a `ConfigError`: an unreachable
    storage, a conflicting config), remove again the folders this call created, as long as they hold nothing
    but empty folders and the storage's lock file: bad input leaves nothing behind. (Processes that share a
    directory need no lock of it: they coordinate through the study storage.)"""
    directory = Path(directory)
    created = None  # the top folder this call creates
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        created = folder
    directory.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except ConfigError:
        leftovers = ("studies.journal", "studies.journal.lock")
        if created is not None and all(p.is_dir() or (p.name in leftovers and p.stat().st_size == 0)
                                       or p.name == "studies.journal.flock"  # the journal lock's gate
                                       for p in created.rglob("*")):
            import shutil

            shutil.rmtree(created, ignore_errors=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def append_run(directory: Path, row: dict) -> None:
    """Add one row to runs.csv (atomically, under the directory lock)."""
    directory = Path(directory)
    with locked(directory):
        frame = read_runs(directory)
        new = pd.DataFrame([{column: row.get(column) for column in COLUMNS}])
        frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        write_text_atomic(directory / "runs.csv", buffer.getvalue())


def hardware() -> dict:
    """What the runs ran on, for reports."""
    import platform

    import torch

    info = {"machine": platform.machine(), "system": platform.system(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": None}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        info["processor"] = names[0] if names else info["processor"]
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_manifest(directory: Path, *, ablation, command: str, overrides: list[str], config_hash: str) -> None:
    """`manifest.json`: how a results directory was produced (read by the report). Rewritten by each
    `ablate run` into the directory; earlier commands are kept in `history`."""
    import dataclasses
    import datetime

    path = Path(directory) / "manifest.json"
    history = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
            history = previous.get("history", []) + [{k: previous.get(k) for k in ("command", "created", "seconds")
                                                      if k in previous}]
        except (json.JSONDecodeError, OSError):
            history = []
    write_json_atomic(path, {
        "ablation": dataclasses.asdict(ablation), "command": command, "overrides": list(overrides),
        "config_hash": config_hash, "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": versions(), "dependencies": dependency_versions(), "code": code_revision(),
        "hardware": hardware(), "history": history,
    })


def record_seconds(directory: Path, seconds: float) -> None:
    """Add to manifest.json how long the command that wrote it ran (wall-clock seconds, start to its report).

    Why: a report states how long its results took to make. File times cannot say it once a directory is copied
    or checked out (every file then carries the copy's time), and a resumed directory is made by several
    commands: each keeps its own `seconds` in `history`, and `command_seconds` adds them up."""
    path = Path(directory) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["seconds"] = round(float(seconds), 1)
    write_json_atomic(path, manifest)


def command_seconds(manifest: dict) -> tuple[float, int] | None:
    """The summed wall-clock seconds of the commands recorded in a manifest (its own and its `history`'s), and how
    many commands they were; None when one of them ran before commands recorded their time, or never finished
    (interrupted), as its share is then unknown."""
    sessions = [*manifest.get("history", []), manifest]
    seconds = [s.get("seconds") for s in sessions]
    if any(not isinstance(v, (int, float)) for v in seconds):
        return None
    return float(sum(seconds)), len(sessions)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def dependency_versions() -> dict:
    """Every dependency the suite declares (pinned or not; extras left out), as installed: what rebuilding the
    environment of a results directory needs. None for one that is missing."""
    from importlib import metadata

    try:
        requirements = metadata.requires("transformer-resilience") or []
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        requirements = []
    names = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requirements if "extra ==" not in r}
    return {name: _version(name) for name in sorted(names, key=str.lower)}


def versions() -> dict:
    """The versions of the suite and of the libraries whose behaviour a result depends on."""
    import platform

    from ablations import __version__

    found = {"suite": __version__, "python": platform.python_version()}
    for name, dist in (("torch", "torch"), ("lightning", "lightning"), ("optuna", "optuna"),
                       ("hydra", "hydra-core"), ("numpy", "numpy"), ("pandas", "pandas")):
        found[name] = _version(dist)
    return found


def code_revision() -> dict:
    """Which code produced a directory: the git commit of the checkout (and whether it had uncommitted
    changes) when the suite runs from one, and always a hash of the suite's own sources (ablations/, models/,
    tasks/ and the YAML of conf/), which also identifies an installed wheel. Two directories with the same
    `source_sha256` were made by the same code."""
    import hashlib
    import subprocess

    import ablations

    package = Path(ablations.__file__).resolve().parent
    roots = [package, package.parent / "models", package.parent / "tasks"]
    from ablations.config import conf_dir

    roots.append(conf_dir())
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for pattern in ("*.py", "*.yaml") for p in root.rglob(pattern)):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    revision = {"source_sha256": digest.hexdigest()[:16], "git_commit": None, "git_dirty": None}
    try:
        run = lambda *args: subprocess.run(["git", "-C", str(package.parent), *args], capture_output=True,  # noqa
                                           text=True, timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode == 0:
            revision["git_commit"] = head.stdout.strip()
            status = run("status", "--porcelain", "--untracked-files=no", "--", "ablations", "models", "tasks",
                         "conf")
            revision["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return revision
