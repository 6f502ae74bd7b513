"""The results directory: one object owns its layout and the schemas of the files in it.

Why one object: the executor writes these files, aggregation, reports and diagnostics read them, and `ablate
worker` finds a sweep by them. When each built its own paths and read `manifest.json` with its own error policy,
a change to one silently broke another. Everything below goes through `ResultsDir`:

    <out>/manifest.json                 how the directory was produced (ablation, command, versions, code revision)
    <out>/studies.journal               the study storage (Optuna journal) unless sweep.storage names another
    <out>/runs.csv                      one row per final seeded run (COLUMNS), exported from the storage
    <out>/trials.csv                    one row per tuning trial (TRIAL_COLUMNS), exported from the storage
    <out>/runs/<variant>/<task>/s<seed>/     a final run: result.json, metrics.csv, diagnostics.csv
    <out>/trials/<variant>/<task>/t<slot>/   a tuning trial's run, the same files

Run directories are recorded in runs.csv relative to the results directory, so a moved or copied directory
still finds its runs. Policy for damaged files: reading one that is corrupted is a one-line `ConfigError` naming
the file and the line (the suite's own writes are atomic, so damage came from outside); a missing file is None.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ablations.store import files
from ablations.store.files import COLUMNS

#: Columns of trials.csv, in order. `trial` is the slot of the trial within its cell's budget (0 .. trials-1):
#: a trial redone after a crash keeps its slot, its sampled parameters and its seed.
TRIAL_COLUMNS = ["ablation", "variant", "task", "trial", "status", "lr", "warmup_frac", "weight_decay",
                 "val_score", "steps", "wall_seconds", "seed", "run_dir", "error", "study"]


class ResultsDir:
    """A results directory (it need not exist yet)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"ResultsDir({str(self.path)!r})"

    # layout -----------------------------------------------------------------------------------------------
    @property
    def runs_csv(self) -> Path:
        return self.path / "runs.csv"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def manifest_json(self) -> Path:
        return self.path / "manifest.json"

    @property
    def journal(self) -> Path:
        return self.path / "studies.journal"

    def run_dir(self, variant: str, task: str, seed: int) -> Path:
        return self.path / "runs" / variant / task / f"s{seed}"

    def trial_dir(self, variant: str, task: str, slot: int) -> Path:
        return self.path / "trials" / variant / task / f"t{slot}"

    def relative(self, path: Path) -> str:
        """`path` as recorded in runs.csv and trials.csv: relative to this directory when it lies inside it."""
        try:
            return str(Path(path).resolve().relative_to(self.path.resolve()))
        except ValueError:
            return str(path)

    def part(self, name: str) -> "ResultsDir":
        """The directory of one part of an ablation with parts."""
        return ResultsDir(self.path / name)

    # files ------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_dir()

    def has_runs(self) -> bool:
        return self.runs_csv.is_file()

    def manifest(self) -> dict | None:
        """manifest.json, or None when there is none; a corrupted one is a one-line error naming its line."""
        if not self.manifest_json.is_file():
            return None
        return files.check_json(self.manifest_json, kind="manifest")

    def is_suite(self) -> bool:
        """Whether this directory holds an ablation with parts (its manifest's ablation has `parts`)."""
        manifest = self.manifest()
        return bool(manifest and isinstance(manifest.get("ablation"), dict) and "parts" in manifest["ablation"])

    def read_runs(self) -> pd.DataFrame:
        return files.read_runs(self.path)

    def write_runs(self, rows: list[dict]) -> None:
        frame = pd.DataFrame(rows).reindex(columns=COLUMNS + ["tuned_params"])
        self._write_csv(self.runs_csv, frame)

    def read_trials_raw(self) -> pd.DataFrame | None:
        """trials.csv as written (None when there is none); a torn row is a one-line error naming its line."""
        if not self.trials_csv.is_file():
            return None
        files.check_csv(self.trials_csv, [])
        return pd.read_csv(self.trials_csv, index_col=False, keep_default_na=False, na_values=[""])

    def write_trials(self, rows: list[dict]) -> None:
        """trials.csv: TRIAL_COLUMNS, and after weight_decay a column for each other searched key (`model.d_ff`),
        in the order they first appear."""
        extra = list(dict.fromkeys(k for row in rows for k in row if k not in TRIAL_COLUMNS))
        at = TRIAL_COLUMNS.index("weight_decay") + 1
        self._write_csv(self.trials_csv, pd.DataFrame(rows, columns=TRIAL_COLUMNS[:at] + extra + TRIAL_COLUMNS[at:]))

    def write_manifest(self, **fields) -> None:
        files.write_manifest(self.path, **fields)

    def check(self) -> None:
        """Every file the suite reads back, checked (see `files.check_results_dir`)."""
        files.check_results_dir(self.path)

    def check_writable(self) -> None:
        files.check_writable(self.path)

    def unmade_on_error(self):
        return files.unmade_on_error(self.path)

    @staticmethod
    def _write_csv(path: Path, frame: pd.DataFrame) -> None:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        files.write_text_atomic(path, buffer.getvalue())
