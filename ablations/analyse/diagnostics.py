"""Reading diagnostics back: the training-loss log, loss spikes, every run's diagnostics.csv as one frame, and the
per-layer profiles the reports draw.

The measurements themselves are taken during training by `ablations.execute.diagnostics.Diagnostics` (its
docstring defines every metric); this module only reads and reduces them, so that every report (the ablation
report, the claims report) reduces them the same way.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

COLUMNS = ["step", "layer", "branch", "head", "metric", "value"]
#: a logged training loss more than this multiple of the lowest loss logged before it is a spike
SPIKE_FACTOR = 1.5


#: the moments of a run at which `depth_profile` reads its diagnostics
MOMENTS = ("initialisation", "end")


def _row(step, layer, branch, head, metric, value) -> dict:
    return {"step": int(step), "layer": int(layer), "branch": branch, "head": int(head), "metric": metric,
            "value": float(value)}


def training_loss(metrics_csv: Path) -> pd.DataFrame:
    """(step, loss) of a run's logged training loss, from the Lightning CSV log; empty when there is none."""
    path = Path(metrics_csv)
    if not path.is_file():
        return pd.DataFrame(columns=["step", "loss"])
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # an empty field: not logged; "nan": a NaN loss
    if "train/loss" not in frame.columns:
        return pd.DataFrame(columns=["step", "loss"])
    frame = frame[frame["train/loss"] != ""]
    return pd.DataFrame({"step": frame["step"].astype(int), "loss": frame["train/loss"].astype(float)})


def loss_events(metrics_csv: Path) -> pd.DataFrame:
    """Loss spikes as diagnostic rows (metric `loss_spike`, value = loss / lowest earlier loss): a logged
    training loss more than SPIKE_FACTOR times the lowest loss logged before it. A non-finite loss is a spike
    with value inf (the run's status says whether it diverged)."""
    loss = training_loss(metrics_csv)
    rows, lowest = [], math.inf
    for step, value in zip(loss["step"], loss["loss"]):
        if not math.isfinite(value):
            rows.append(_row(step, -1, "", -1, "loss_spike", math.inf))
            continue
        # A loss of exactly 0 has no spike ratio (nothing is a multiple of it): it only lowers the floor.
        if 0 < lowest < math.inf and value > SPIKE_FACTOR * lowest:
            rows.append(_row(step, -1, "", -1, "loss_spike", value / lowest))
        lowest = min(lowest, value)
    return pd.DataFrame(rows, columns=COLUMNS)


def read_diagnostics(directory: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's diagnostics.csv with its run's variant, task and seed (runs without one are skipped)."""
    from ablations.analyse.aggregate import resolve_run_dir

    frames = []
    for run in runs.to_dict("records"):
        run_dir = resolve_run_dir(directory, run)
        path = run_dir / "diagnostics.csv" if run_dir is not None else None
        if path is not None and path.is_file():
            frame = pd.read_csv(path, dtype={"branch": str}, keep_default_na=False, na_values={"value": [""]})
            frames.append(frame.assign(variant=run["variant"], task=run["task"], seed=run["seed"]))
    if not frames:
        return pd.DataFrame(columns=COLUMNS + ["variant", "task", "seed"])
    return pd.concat(frames, ignore_index=True)


def read_training_loss(directory: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's logged training loss (metrics.csv column `train/loss`) with its run's variant, task, seed and
    status: columns variant, task, seed, status, step, loss. Runs without a log are skipped; a non-finite loss
    (a diverging run) is kept as logged, for the caller to drop or mark."""
    from ablations.analyse.aggregate import resolve_run_dir

    frames = []
    for run in runs.to_dict("records"):
        run_dir = resolve_run_dir(directory, run)
        if run_dir is None:
            continue
        try:
            loss = training_loss(run_dir / "metrics.csv")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError):
            continue  # an unreadable log is a run without a curve, not a report that fails
        if len(loss):
            frames.append(loss.assign(variant=run["variant"], task=run["task"], seed=run["seed"],
                                      status=run.get("status", "")))
    columns = ["variant", "task", "seed", "status", "step", "loss"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def depth_profile(diag: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A diagnostic against depth at the first and the last measured step of each run, reduced over seeds.

    Within one run, step and layer, the rows of several branches (`attn`, `ffn`) or heads are averaged: the
    profile is one number per layer. Then, per variant, task, moment (`initialisation`: the run's first
    measurement, step 0; `end`: its last) and layer, the median over seeds (robust to one seed that went its own
    way) and the seeds' range. Non-finite values (a diverging run) are left out of the median and counted out
    of `n_seeds`. Columns: variant, task, moment, layer, median, low, high, n_seeds."""
    columns = ["variant", "task", "moment", "layer", "median", "low", "high", "n_seeds"]
    frame = diag[diag["metric"] == metric]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    keys = ["variant", "task", "seed"]
    frame = frame.assign(value=pd.to_numeric(frame["value"], errors="coerce"))
    frame = frame.groupby([*keys, "step", "layer"], as_index=False)["value"].mean()
    first = frame.groupby(keys)["step"].transform("min")
    last = frame.groupby(keys)["step"].transform("max")
    moments = []
    for moment, mask in ((MOMENTS[0], frame["step"] == first), (MOMENTS[1], frame["step"] == last)):
        moments.append(frame[mask].assign(moment=moment))
    frame = pd.concat(moments, ignore_index=True)
    frame = frame[frame["value"].map(lambda v: math.isfinite(v))]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(["variant", "task", "moment", "layer"], sort=False)["value"]
    out = grouped.agg(median="median", low="min", high="max", n_seeds="count").reset_index()
    return out[columns]
