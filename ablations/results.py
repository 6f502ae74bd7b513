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


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's files are private; results are ordinary files
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


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
    """runs.csv as a DataFrame (empty, with the columns, when there is none yet)."""
    path = Path(directory) / "runs.csv"
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        # index_col=False and ParserWarning as an error: a row with extra fields is corruption, not an index
        # or a truncation; only empty fields are missing values, so a variant called "NA" stays a string.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"corrupted results file {path}: {str(error).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"corrupted results file {path}: missing columns {', '.join(missing)}")
    return frame[COLUMNS]


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
    import platform

    import torch

    from ablations import __version__

    path = Path(directory) / "manifest.json"
    history = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
            history = previous.get("history", []) + [{k: previous.get(k) for k in ("command", "created")}]
        except (json.JSONDecodeError, OSError):
            history = []
    write_json_atomic(path, {
        "ablation": dataclasses.asdict(ablation), "command": command, "overrides": list(overrides),
        "config_hash": config_hash, "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": {"suite": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "hardware": hardware(), "history": history,
    })
