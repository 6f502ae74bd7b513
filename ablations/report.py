"""`report.md`: what an ablation found, as a table of variants x tasks with the delta to the baseline.

Every cell is the mean over seeds of the task's test metric. A run that did not finish `ok` is shown by its
status, never as a number, and is not averaged in.
"""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

import pandas as pd
import torch

from ablations import __version__
from ablations.results import read_runs, write_text_atomic


def _cell(scores: pd.Series, statuses: pd.Series, baseline: float | None) -> str:
    bad = statuses[statuses != "ok"]
    if len(scores.dropna()) == 0:
        return ", ".join(sorted(set(bad))) or "n/a"
    mean = scores.mean()
    text = f"{mean:.3f}"
    if len(scores.dropna()) > 1:
        text += f" ± {scores.std(ddof=1):.3f}"
    if baseline is not None:
        text += f" ({mean - baseline:+.3f})"
    if len(bad):
        text += f" [{len(bad)} {', '.join(sorted(set(bad)))}]"
    return text


def summary_table(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Variants (rows, baseline first) x tasks (columns) of formatted mean scores with deltas to baseline."""
    runs = runs.assign(score=pd.to_numeric(runs["score"], errors="coerce").where(runs["status"] == "ok"))
    variants = [baseline] + sorted(set(runs["variant"]) - {baseline}, key=list(runs["variant"]).index)
    tasks = list(dict.fromkeys(runs["task"]))
    base_means = runs[runs["variant"] == baseline].groupby("task")["score"].mean()
    table = {}
    for task in tasks:
        column = {}
        for variant in variants:
            cell = runs[(runs["variant"] == variant) & (runs["task"] == task)]
            if cell.empty:
                column[variant] = ""
                continue
            base = None if variant == baseline or pd.isna(base_means.get(task)) else base_means[task]
            column[variant] = _cell(cell["score"], cell["status"], base)
        metric = runs.loc[runs["task"] == task, "metric"].iloc[0]
        table[f"{task} ({metric})"] = column
    return pd.DataFrame(table, index=variants).rename_axis("variant")


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (pandas' to_markdown needs the optional `tabulate`)."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def write_report(directory: Path, *, ablation: str, description: str, baseline: str, command: str) -> Path:
    """Write `report.md` for the runs in `directory` and return its path."""
    directory = Path(directory)
    runs = read_runs(directory)
    runs = runs[runs["ablation"] == ablation] if ablation in set(runs["ablation"]) else runs
    counts = runs["status"].value_counts().to_dict()
    seeds = sorted(set(int(s) for s in runs["seed"]))
    per_run = runs[["variant", "task", "seed", "status", "score", "steps", "wall_seconds", "n_params",
                    "tokens_per_second"]].copy()
    per_run["score"] = pd.to_numeric(per_run["score"], errors="coerce").map(
        lambda v: "" if pd.isna(v) else f"{v:.4f}")
    text = f"""# Ablation `{ablation}`

{description}

- Command: `{command}`
- Suite {__version__}, torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}
  ({platform.system()}); written {_dt.datetime.now().astimezone().isoformat(timespec="seconds")}
- Runs: {len(runs)} ({", ".join(f"{n} {s}" for s, n in sorted(counts.items()))}); seeds: {", ".join(map(str, seeds))};
  total training time {runs["wall_seconds"].astype(float).sum():.0f} s

## Results

Test-split metric per task (mean over seeds, ± standard deviation when there are several), and in brackets the
difference to the baseline `{baseline}`. Runs that did not finish `ok` are counted in square brackets and left
out of the mean.

{_markdown(summary_table(runs, baseline))}

## Every run

{_markdown(per_run.set_index("variant"))}
"""
    path = directory / "report.md"
    write_text_atomic(path, text)
    return path
