"""`ablate export DIR --to parquet|csv|json`: a results directory's tables, tidy, in the format a user's own
analysis reads (pandas, polars, DuckDB, R's arrow, a spreadsheet).

Three tables, one row per observation:
- `runs`: runs.csv, one row per final seeded run (the numbers the report is made of);
- `trials`: trials.csv, one row per tuning trial, with its sampled parameters (absent for a grid);
- `diagnostics`: every run's and trial's diagnostics.csv (one row per step, layer, branch, head and metric),
  keyed by `kind` (run or trial), `variant`, `task` and `seed`, and `trial` for trials.

Each file is written atomically (a temporary file renamed over it), so an interrupted export leaves the previous
one whole, and into `DIR/export/` unless another folder is given. Nothing in DIR itself is changed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.store.directory import ResultsDir
from ablations.store.files import write_file_atomic
from models.errors import ConfigError

FORMATS = ("parquet", "csv", "json")


def tables(directory: Path | str) -> dict[str, pd.DataFrame]:
    """The tidy tables of a results directory (see the module docstring); `trials` only when it has trials."""
    results = ResultsDir(directory)
    if not results.has_runs():
        raise ConfigError(f"{results.path} is not a results directory (no runs.csv)")
    results.check()
    runs = results.read_runs()
    found = {"runs": runs}
    trials = results.read_trials_raw()
    if trials is not None:
        found["trials"] = trials
    parts = [_diagnostics(results.path, row, "run") for _, row in runs.iterrows()]
    if trials is not None:
        parts += [_diagnostics(results.path, row, "trial") for _, row in trials.iterrows()]
    parts = [p for p in parts if p is not None]
    found["diagnostics"] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["kind", "variant", "task", "seed", "trial", "step", "layer", "branch", "head", "metric", "value"])
    return found


def _diagnostics(root: Path, row, kind: str) -> pd.DataFrame | None:
    run_dir = row.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        return None
    path = Path(run_dir) if Path(run_dir).is_absolute() else root / run_dir
    if not (path / "diagnostics.csv").is_file():
        return None
    frame = pd.read_csv(path / "diagnostics.csv", keep_default_na=False, na_values=[""])
    keys = {"kind": kind, "variant": row["variant"], "task": row["task"], "seed": row.get("seed"),
            "trial": row.get("trial") if kind == "trial" else None}
    for position, (name, value) in enumerate(keys.items()):
        frame.insert(position, name, value)
    return frame


def export(directory: Path | str, fmt: str = "parquet", out: Path | str | None = None) -> list[Path]:
    """Write the tables of `directory` as `<name>.<fmt>` into `out` (default `DIR/export/`); return the paths."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; valid: {', '.join(FORMATS)}")
    found = tables(directory)
    folder = Path(out) if out is not None else Path(directory) / "export"
    written = []
    for name, frame in found.items():
        path = folder / f"{name}.{fmt}"
        _write(frame, path, fmt)
        written.append(path)
    return written


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """One table, atomically; a failing disk is one line naming the file (`files.StoreError`)."""
    writers = {"parquet": lambda tmp: frame.to_parquet(tmp, index=False),
               "csv": lambda tmp: frame.to_csv(tmp, index=False),
               "json": lambda tmp: frame.to_json(tmp, orient="records", indent=1)}
    write_file_atomic(path, writers[fmt])
