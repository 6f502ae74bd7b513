"""The report's "Difficulty" section (runs over a task's difficulty ladder) and its out-of-distribution marks.

Why: one difficulty cannot separate variants that all solve it or all fail it. When an ablation ran a task at
several levels of its difficulty parameter (`ablation.difficulty=ladder`: task labels such as `copy@length=24`,
`tasks.base.parse_task_label`), the section draws each variant's normalised score over the levels and gives
it a MAD-style score, the mean normalised score over the levels (MAD: Poli et al. 2024,
arXiv:2403.17844, score architectures over sweeps of difficulty). Scores here are normalised against the task's
own range, chance 0 and perfect 1 (not the baseline, as elsewhere in the report), so that a level the
baseline fails still counts for what the others reach.

Out of distribution: a run whose `task.test_length` exceeds its training length (`Task.length_key`) is scored
on longer sequences than it trained on; `ood_tasks` finds those task columns and `mark_ood` marks them in the
report's tables.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse.aggregate import normalise, resolve_run_dir
from ablations.report.toolkit import draw, figure_style, legend_outside, num, palette, panel_figure, save_figure
from ablations.report.toolkit import write_table

FIGURE = "difficulty"
CAPTION = ("Normalised test score (chance 0, perfect 1) over each task's difficulty levels, easiest first, "
           "per variant: the mean over seeds, with each seed as a dot")
OOD = "OOD"  # the mark on a task column whose test split is longer than its training split


def _level_value(text: str):
    """A level as a number where it is one (`24` -> 24, `0.5` -> 0.5), else the string (`S5`)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def ladder_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run whose task label names a level: variant, label, base (the task), key, level, seed and
    `norm` (its effective score, diverged and failed at chance, normalised chance 0 -> perfect 1). Empty when no
    label has a level."""
    from tasks.base import parse_task_label

    rows = []
    for run in runs.to_dict("records"):
        name, levels = parse_task_label(str(run["task"]))
        if not levels:
            continue
        (key, value), = levels.items()
        score = run.get("effective", run.get("score"))
        higher = bool(run["higher_is_better"])
        norm = normalise(score, run["chance"], 1.0 if higher else 0.0, higher) if pd.notna(score) else math.nan
        rows.append({"variant": run["variant"], "label": run["task"], "base": name, "key": key,
                     "level": _level_value(value), "seed": run.get("seed"), "norm": norm})
    return pd.DataFrame(rows, columns=["variant", "label", "base", "key", "level", "seed", "norm"])


def level_order(base: str, key: str, levels) -> list:
    """The levels of one task, easiest first: numbers sorted in the direction of the task's registered ladder
    on `key` (ascending without one), so that an off-ladder level falls in place; others in the ladder's order,
    then the rest as they came."""
    from tasks import TASKS

    seen = list(dict.fromkeys(levels))
    ladder = TASKS.get(base).difficulty if base in TASKS.names() else None
    declared = [lv for lv in ladder.levels if lv in seen] if ladder is not None and ladder.key == key else []
    rest = [lv for lv in seen if lv not in declared]
    if all(isinstance(lv, (int, float)) for lv in seen):  # numbers: in the ladder's direction (0.9 .. 0.3)
        down = ladder is not None and ladder.key == key and ladder.levels[0] > ladder.levels[-1]
        return sorted(seen, reverse=down)
    return declared + rest


def curves(frame: pd.DataFrame) -> pd.DataFrame:
    """variant, base, key, level, mean (normalised, over seeds), n (runs), rank (the level's place, easiest 0)."""
    rows = []
    for (base, key), own in frame.groupby(["base", "key"], sort=False):
        order = level_order(base, key, own["level"])
        for (variant, level), cell in own.groupby(["variant", "level"], sort=False):
            values = cell["norm"].to_numpy(float)
            rows.append({"variant": variant, "base": base, "key": key, "level": level,
                         "mean": float(np.nanmean(values)) if np.isfinite(values).any() else math.nan,
                         "n": int(len(values)), "rank": order.index(level)})
    return pd.DataFrame(rows, columns=["variant", "base", "key", "level", "mean", "n", "rank"])


def mad_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant and task the MAD-style score (mean normalised score over its levels), and `overall`: the
    mean of those over tasks. A variant that misses a level (or a task) has no score there, NaN: a mean over
    fewer, perhaps easier, levels would not compare with the others'."""
    wide = table.set_index(["variant", "base", "level"])["mean"].unstack(["base", "level"])
    per_task = pd.DataFrame({base: wide[base].mean(axis=1, skipna=False) for base in dict.fromkeys(table["base"])})
    per_task["overall"] = per_task.mean(axis=1, skipna=False)
    return per_task


def difficulty_figure(table: pd.DataFrame, frame: pd.DataFrame, variants: list[str], baseline: str,
                      path: Path) -> Path | None:
    """One panel per laddered task: x the levels (easiest left), y the normalised score, a line per variant."""
    tasks = list(dict.fromkeys(table["base"]))
    if not tasks:
        return None
    figure, nrows, ncols = panel_figure(len(tasks))
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    colours = palette(variants, baseline)
    with figure_style():
        for ax, base in zip(axes, tasks):
            own = table[table["base"] == base]
            key = own["key"].iloc[0]
            order = level_order(base, key, own["level"])
            for variant in variants:
                line = own[own["variant"] == variant].sort_values("rank")
                if line.empty:
                    continue
                ax.plot(line["rank"], line["mean"], marker="o", color=colours[variant], label=variant,
                        linewidth=2.2 if variant == baseline else 1.5)
                dots = frame[(frame["variant"] == variant) & (frame["base"] == base)]
                ax.scatter([order.index(lv) for lv in dots["level"]], dots["norm"], color=colours[variant],
                           s=10, alpha=0.35, linewidths=0)
            ax.set_xticks(range(len(order)), [str(lv) for lv in order])
            ax.set_xlabel(f"task.{key}")
            ax.set_ylabel("normalised score")
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(base)
        for ax in axes[len(tasks):]:
            ax.set_visible(False)
        legend_outside(figure, axes[:len(tasks)], "variant", [baseline, *variants])
    return save_figure(figure, path)


def section(doc, directory: Path, agg, tables: dict | None = None) -> Path | None:
    """Add the "Difficulty" section when runs.csv has task labels with levels; write its table (tables/
    difficulty.csv, .tex) and figure. Returns the figure's path, or None (and removes a stale one)."""
    directory = Path(directory)
    figure_path = directory / "figures" / f"{FIGURE}.png"
    frame = ladder_runs(agg.runs)
    if frame.empty:
        for stale in (figure_path, directory / "tables" / "difficulty.csv", directory / "tables" / "difficulty.tex"):
            stale.unlink(missing_ok=True)
        return None
    table = curves(frame)
    variants = list(dict.fromkeys(table["variant"]))
    if agg.baseline in variants:
        variants = [agg.baseline] + [v for v in variants if v != agg.baseline]
    scores = mad_scores(table).reindex(variants)
    doc.heading(2, "Difficulty")
    doc.para("Each laddered task ran at several levels of its difficulty parameter. Scores are normalised against "
             "the task's own range here (chance 0, perfect 1; diverged and failed runs at chance), so that a level "
             "every variant fails shows as such. The MAD-style score of a variant is its mean normalised score "
             "over a task's levels (Poli et al. 2024, arXiv:2403.17844), and `overall` the mean of those over "
             "tasks; a variant that misses a level or a task has none (—), as its mean would not compare.")
    formatted = pd.DataFrame(index=pd.Index(variants, name="variant"))
    for (base, key), own in table.groupby(["base", "key"], sort=False):
        for level in level_order(base, key, own["level"]):
            cell = own[own["level"] == level].set_index("variant")["mean"]
            formatted[f"{base}@{key}={level}"] = [num(cell.get(v, math.nan), 2) for v in variants]
        formatted[f"{base}: MAD score"] = [num(scores.at[v, base], 2) for v in variants]
    formatted["overall MAD score"] = [num(scores.at[v, "overall"], 2) for v in variants]
    doc.table(formatted)
    best = scores["overall"].dropna()
    if len(best) > 1:
        top = best.idxmax()
        doc.para(f"Highest overall MAD-style score: `{top}` ({num(best[top], 2)}); lowest: `{best.idxmin()}` "
                 f"({num(best.min(), 2)}).")
    if tables is not None:
        write_table(directory, "difficulty", table, formatted, "Difficulty: normalised score (chance 0, perfect 1) "
                    "per level, and the MAD-style score (mean over levels)", tables)
    path, error = draw(FIGURE, difficulty_figure, table, frame, variants, agg.baseline, figure_path)
    if error:
        doc.items([f"⚠ {error}"])
        return None
    if path is not None:
        doc.figure(path, CAPTION)
    return path


# --- out of distribution -----------------------------------------------------------------------------------------
def run_is_ood(task: dict) -> bool:
    """Whether a run's task config (result.json `config.task`) tests on longer sequences than it trains on:
    `test_length` set (> 0) and above its training length (`Task.length_key` of the task, `length` if unknown)."""
    from tasks import TASKS
    from tasks.base import parse_task_label

    name = parse_task_label(str(task.get("name", "")))[0]
    key = getattr(TASKS.get(name), "length_key", "length") if name in TASKS.names() else "length"
    test, trained = task.get("test_length") or 0, task.get(key)
    try:
        return bool(test) and trained is not None and int(test) > int(trained)
    except (TypeError, ValueError):
        return False


def ood_tasks(directory: Path, runs: pd.DataFrame) -> set[str]:
    """The task labels (runs.csv `task`) of which some run was tested out of distribution, read from each run's
    result.json; a run whose files are missing marks nothing."""
    import json

    found = set()
    for run in runs.drop_duplicates(["variant", "task"]).to_dict("records"):
        run_dir = resolve_run_dir(directory, run)
        try:
            config = json.loads((run_dir / "result.json").read_text()).get("config") or {} if run_dir else {}
        except (OSError, ValueError):
            continue
        if isinstance(config.get("task"), dict) and run_is_ood(config["task"]):
            found.add(str(run["task"]))
    return found


def _marked(text: str, ood: set[str]) -> str:
    """`copy (accuracy)` -> `copy (accuracy) [OOD]` when `copy` is in `ood`."""
    return f"{text} [{OOD}]" if str(text).split(" (")[0] in ood else text


def mark_ood(frame: pd.DataFrame, ood: set[str]) -> pd.DataFrame:
    """The table with its out-of-distribution task columns (`<task> (<metric>)`) and task cells marked."""
    if not ood or frame is None or frame.empty:
        return frame
    frame = frame.rename(columns=lambda c: _marked(c, ood))
    if "task" in frame.columns:
        frame = frame.assign(task=frame["task"].map(lambda t: _marked(t, ood)))
    return frame


def ood_sentence(ood: set[str]) -> str:
    """The sentence that says what the mark means, naming the marked tasks."""
    names = ", ".join(f"`{t}`" for t in sorted(ood))
    return (f"[{OOD}] marks tasks whose test split is longer than their training split (task.test_length > its "
            f"training length): {names}. Their test scores measure length generalisation, out of distribution; "
            "the validation score is the in-distribution one.")
