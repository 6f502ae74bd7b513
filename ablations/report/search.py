"""The search space a sweep tuned over, and the cells whose best learning rate sits at its edge.

Why: a tuned variant's score is only as good as its search. When the best trial's learning rate sits at the
edge of the searched range, the variant's true optimum may lie outside it, and its comparison with the baseline
says as much about the range as about the architecture. The report says so, one line per such cell.

The range comes, in order, from what the results directory recorded: a `sweep` section with a `space` in
manifest.json (or an ablation spec whose `sweep` is such a section); else the sweep profile the ablation names
(`ablation.sweep`, or `sweep=` among the overrides), composed from conf/ with the recorded overrides, as
`ablate run` composed it; else the range the trials actually tried, which the report then names as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablations.analyse.aggregate import ResultSet

#: a best learning rate within this fraction of the (log) search range of either end sits "at the edge"
EDGE_FRACTION = 0.1


@dataclass(frozen=True)
class Range:
    """One searched hyper-parameter: [low, high], sampled on a log scale or not, and where this was read."""

    low: float
    high: float
    log: bool
    source: str

    def position(self, value: float) -> float:
        """Where `value` sits in the range: 0 at `low`, 1 at `high` (on the log scale for a log range)."""
        if not (math.isfinite(value) and self.high > self.low) or (self.log and value <= 0):
            return math.nan
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)


def _from_section(section, source: str) -> dict[str, Range] | None:
    if not isinstance(section, dict) or not isinstance(section.get("space"), dict):
        return None
    out = {}
    for key, bounds in section["space"].items():
        try:
            out[str(key)] = Range(float(bounds["low"]), float(bounds["high"]), bool(bounds.get("log", False)),
                                  source)
        except (KeyError, TypeError, ValueError):
            continue
    return out or None


def _profile_name(manifest: dict) -> str | None:
    spec = manifest.get("ablation") or {}
    name = None
    for override in [*(spec.get("overrides") or []), *(manifest.get("overrides") or [])]:
        key, _, value = str(override).partition("=")
        if key.lstrip("+") == "sweep":
            name = value
    return name or (spec.get("sweep") if isinstance(spec.get("sweep"), str) else None)


def _composed(manifest: dict, name: str) -> dict[str, Range] | None:
    """The profile `name` composed from conf/ with the overrides the run recorded (as `ablate run` did)."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config

    spec = manifest.get("ablation") or {}
    overrides = [str(o) for o in [*(spec.get("overrides") or []), *(manifest.get("overrides") or [])]
                 if not str(o).lstrip("+").startswith("sweep=")]
    try:
        cfg = compose_config([*overrides, f"sweep={name}"])
        section = OmegaConf.to_container(cfg.sweep, resolve=True)
    except Exception:  # noqa: BLE001  (a profile renamed since the run, a plugin not loaded here, ...)
        return None
    return _from_section(section, f"the sweep profile `{name}` in conf/sweep/{name}.yaml, with the recorded "
                                  f"overrides")


def search_space(results: ResultSet) -> dict[str, Range]:
    """Every searched hyper-parameter's range (see the module docstring for where it is read)."""
    manifest = results.manifest or {}
    for section, source in ((manifest.get("sweep"), "manifest.json"),
                            ((manifest.get("ablation") or {}).get("sweep"), "manifest.json")):
        found = _from_section(section, source)
        if found:
            return found
    name = _profile_name(manifest)
    if name:
        found = _composed(manifest, name)
        if found:
            return found
    trials = results.trials
    out = {}
    if trials is not None and len(trials):
        for key in [k for k in ("lr", "warmup_frac", "weight_decay") if k in trials.columns]:
            values = pd.to_numeric(trials[key], errors="coerce").astype(float)
            values = values[np.isfinite(values)]
            if len(values) and values.max() > values.min():
                log = key == "lr" and bool((values > 0).all())
                out[key] = Range(float(values.min()), float(values.max()), log,
                                 "the range the trials tried (no search space was recorded)")
    return out


def edge_cells(optimisability: pd.DataFrame | None, lr: Range | None, *,
               fraction: float = EDGE_FRACTION) -> pd.DataFrame:
    """Cells (variant x task) whose best trial's learning rate lies within `fraction` of either end of the
    searched range (on its log scale): columns variant, task, best_lr, position (0: low end, 1: high end), edge
    (`low` or `high`)."""
    columns = ["variant", "task", "best_lr", "position", "edge"]
    if optimisability is None or optimisability.empty or lr is None:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, row in optimisability.iterrows():
        position = lr.position(float(row["best_lr"])) if pd.notna(row["best_lr"]) else math.nan
        if not math.isfinite(position):
            continue
        edge = "low" if position <= fraction else "high" if position >= 1 - fraction else ""
        if edge:
            rows.append({"variant": row["variant"], "task": row["task"], "best_lr": float(row["best_lr"]),
                         "position": position, "edge": edge})
    return pd.DataFrame(rows, columns=columns)


def edge_warnings(edges: pd.DataFrame, lr: Range, *, fraction: float = EDGE_FRACTION) -> list[str]:
    """One markdown line per cell of `edge_cells`."""
    scale = "log range" if lr.log else "range"
    lines = []
    for _, row in edges.iterrows():
        low = row["edge"] == "low"
        lines.append(f"⚠ **{row['variant']}** on {row['task']}: the best learning rate {row['best_lr']:.3g} sits at "
                     f"the {'lower' if low else 'upper'} edge of the searched range [{lr.low:.3g}, {lr.high:.3g}] "
                     f"(in its {'lowest' if low else 'highest'} {fraction:.0%} of the {scale}): the optimum may lie "
                     f"outside it; widen `sweep.space.lr.{'low' if low else 'high'}` to tell.")
    return lines
