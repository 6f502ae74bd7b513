"""Reading diagnostics back: the training-loss log, loss spikes, and every run's diagnostics.csv as one frame.

The measurements themselves are taken during training by `ablations.execute.diagnostics.Diagnostics`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

COLUMNS = ["step", "layer", "branch", "head", "metric", "value"]
#: a logged training loss more than this multiple of the lowest loss logged before it is a spike
SPIKE_FACTOR = 1.5


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
