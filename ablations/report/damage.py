"""The report's "Damage tolerance" section and figure, from the damage.csv that `ablate damage DIR` writes.

Why a section of its own: a variant can score as well as the baseline and still be brittle, resting on one layer
or one head, or breaking under small weight noise or int8 rounding. Large language models lose little when many
middle layers are removed (Gromov et al. 2024, arXiv:2403.17887; Sun et al. 2024, arXiv:2407.09298) or most
heads are (Michel et al. 2019, arXiv:1905.10650); the section says how much of each small model's score survives
each damage (ablations/analyse/damage.py computes it).

`summary(frame)` is the tidy table behind both: one row per variant x task x damage label, the mean retained
fraction (chance 0, intact 1) over seeds and noise draws, over the runs that learned (an intact score below
`claims.LEARNED` of the way from chance to perfect makes the fraction meaningless: a ratio of two noises).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse import damage as analysis
from ablations.analyse.aggregate import normalise
from ablations.report.claims import LEARNED
from ablations.report.toolkit import draw, figure_style, new_figure, num, save_figure, write_table

FIGURE = "damage"
CAPTION = ("Retained fraction of the test score (chance 0, the intact model 1) under each damage, per task and "
           "variant: each layer removed, the mean and the worst single head removed, Gaussian weight noise at "
           "relative scales (mean over draws), int8 weights; mean over seeds")


def learned(frame: pd.DataFrame) -> pd.Series:
    """Whether each row's run learned: its intact score at least LEARNED of the way from chance to perfect."""
    out = pd.Series(False, index=frame.index)
    for higher, rows in frame.groupby(frame["higher_is_better"].astype(bool)):  # perfect: accuracy 1, 0 bits
        norm = normalise(rows["intact"].to_numpy(float), rows["chance"].to_numpy(float), 1.0 if higher else 0.0,
                         bool(higher))
        out[rows.index] = np.atleast_1d(norm) >= LEARNED  # NaN (no intact score) is not learned
    return out


def _labels(frame: pd.DataFrame) -> list[str]:
    """The damage labels in reading order: layers, heads (mean, worst), noise by scale, int8."""
    layers = sorted(frame.loc[frame["damage"] == "layer", "layer"].dropna().astype(int).unique())
    scales = sorted(frame.loc[frame["damage"] == "noise", "scale"].dropna().unique())
    heads = ["head (mean)", "head (worst)"] if (frame["damage"] == "head").any() else []
    ints = ["int8"] if (frame["damage"] == "int8").any() else []
    return [f"layer {i}" for i in layers] + heads + [f"noise {s:g}" for s in scales] + ints


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """variant, task, label, retained (mean over seeds and draws), n_runs; over the runs that learned."""
    frame = frame[learned(frame)]
    rows = []
    for (variant, task), cell in frame.groupby(["variant", "task"], sort=False):
        runs = cell["run_dir"].nunique()
        per_run = {}
        for kind in ("layer", "noise", "int8"):
            part = cell[cell["damage"] == kind]
            if len(part):
                per_run[kind] = part.groupby(["run_dir", "target"])["retained"].mean().groupby("target").mean()
        for target, value in (per_run.get("layer", pd.Series(dtype=float))).items():
            rows.append((variant, task, target, value, runs))
        heads = cell[cell["damage"] == "head"]
        if len(heads):
            by_run = heads.groupby("run_dir")["retained"]
            rows.append((variant, task, "head (mean)", by_run.mean().mean(), runs))
            rows.append((variant, task, "head (worst)", by_run.min().mean(), runs))
        for target, value in per_run.get("noise", pd.Series(dtype=float)).items():
            rows.append((variant, task, target, value, runs))
        for target, value in per_run.get("int8", pd.Series(dtype=float)).items():
            rows.append((variant, task, target, value, runs))
    return pd.DataFrame(rows, columns=["variant", "task", "label", "retained", "n_runs"])


def variant_table(table: pd.DataFrame, variant: str, labels: list[str]) -> pd.DataFrame:
    """One variant's retained fractions: a row per damage label, a column per task."""
    own = table[table["variant"] == variant]
    tasks = list(dict.fromkeys(own["task"]))
    out = pd.DataFrame({"damage": [lab for lab in labels if lab in set(own["label"])]})
    for task in tasks:
        values = own[own["task"] == task].set_index("label")["retained"]
        out[task] = [num(values.get(lab, math.nan), 2) for lab in out["damage"]]
    return out


def damage_figure(table: pd.DataFrame, labels: list[str], variants: list[str], path: Path) -> Path | None:
    """One heatmap panel per task: variants x damage labels, coloured by the retained fraction."""
    import seaborn as sns

    tasks = list(dict.fromkeys(table["task"]))
    if not tasks:
        return None
    width = min(3.0 + 0.75 * len(labels), 26)
    height = min(0.9 + (1.0 + 0.45 * len(variants)) * len(tasks), 30)
    figure = new_figure(width, height)
    axes = figure.subplots(len(tasks), 1, squeeze=False)[:, 0]
    with figure_style():
        for ax, task in zip(axes, tasks):
            own = table[table["task"] == task]
            grid = own.pivot_table(index="variant", columns="label", values="retained", aggfunc="mean")
            grid = grid.reindex(index=[v for v in variants if v in grid.index],
                                columns=[lab for lab in labels if lab in grid.columns])
            grid = grid.mask(grid.abs() < 0.005, 0.0)  # a value that rounds to zero prints 0.00, not -0.00
            sns.heatmap(grid, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", annot=True, fmt=".2f",
                        annot_kws={"fontsize": 8}, cbar_kws={"label": "retained (chance 0, intact 1)"})
            ax.set_title(task)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(axis="x", rotation=45)
            ax.tick_params(axis="y", rotation=0)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
    return save_figure(figure, path)


def section(doc, directory: Path, baseline: str | None, tables: dict | None = None) -> Path | None:
    """Add the "Damage tolerance" section to `doc` when `directory` has a damage.csv (written by `ablate damage`);
    write its figure and its table (tables/damage.csv, .tex). Returns the figure's path, or None."""
    directory = Path(directory)
    figure_path = directory / "figures" / f"{FIGURE}.png"
    frame = analysis.read(directory)
    if frame is None or frame.empty:
        for stale in (figure_path, directory / "tables" / "damage.csv", directory / "tables" / "damage.tex"):
            stale.unlink(missing_ok=True)  # without its damage.csv they would be stale
        return None
    doc.heading(2, "Damage tolerance")
    doc.para("How much of each trained model's test score survives damage (`ablate damage`, on the kept "
             "`trainer.checkpoint=last` weights, over the run's own test split): the retained fraction is the "
             "damaged score normalised as above with the intact model as the reference (chance 0, intact 1). "
             "Damages: each block removed, the stream passing through (large models lose little from many "
             "middle layers: Gromov et al. 2024, arXiv:2403.17887; Sun et al. 2024, arXiv:2407.09298); each "
             "attention head removed, its output zeroed before the output projection (Michel et al. 2019, "
             "arXiv:1905.10650), summarised by the mean and the worst head; Gaussian noise on every parameter "
             f"tensor of std scale × the tensor's own std ({len(analysis.DRAWS)} fixed draws); every weight "
             "matrix rounded to int8 (per-tensor symmetric absmax).")
    keep = learned(frame)
    dropped = frame.loc[~keep, "run_dir"].nunique()
    if dropped:
        doc.para(f"{dropped} of {frame['run_dir'].nunique()} runs are left out: their intact score is below "
                 f"{LEARNED:g} of the way from chance to perfect, where a retained fraction measures noise.")
    table = summary(frame)
    if table.empty:
        doc.para("No run learned its task, so no damage tolerance can be read.")
        figure_path.unlink(missing_ok=True)
        return None
    labels = _labels(frame)
    variants = list(dict.fromkeys(table["variant"]))
    if baseline in variants:
        variants = [baseline] + [v for v in variants if v != baseline]
    for variant in variants:
        doc.heading(3, f"`{variant}`")
        own = table[table["variant"] == variant]
        worst = own.loc[own["retained"].idxmin()] if own["retained"].notna().any() else None
        if worst is not None:
            runs = int(own["n_runs"].max())
            doc.para(f"Least tolerated: {worst['label']} on {worst['task']} (retained fraction "
                     f"{num(worst['retained'], 2)}; {runs} run{'s' if runs != 1 else ''} per task at most).")
        doc.table(variant_table(table, variant, labels))
    if tables is not None:
        wide = table.pivot_table(index=["variant", "label"], columns="task", values="retained").reset_index()
        write_table(directory, "damage", table, wide.round(3), "Damage tolerance: retained fraction of the test "
                    "score (chance 0, intact 1)", tables)
    path, error = draw(FIGURE, damage_figure, table, labels, variants, figure_path)
    if error:
        doc.items([f"⚠ {error}"])
        return None
    if path is not None:
        doc.figure(path, CAPTION)
    return path
