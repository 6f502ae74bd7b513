"""Expanding an ablation into its grid of runs: variants x tasks x seeds.

An ablation (conf/ablation/<name>.yaml) names a baseline variant and every variant as a list of overrides on
top of the base config. A cell's overrides are applied in this order, later ones winning: the user's
command-line overrides, then the cell's task and seed, then the variant's own overrides (they define it).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ConfigError
from tasks import TASKS


@dataclass(frozen=True)
class Cell:
    variant: str
    task: str
    seed: int
    overrides: tuple[str, ...]  # the variant's own overrides

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.task}/s{self.seed}"


@dataclass(frozen=True)
class Ablation:
    name: str
    description: str
    baseline: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: dict[str, tuple[str, ...]]

    @classmethod
    def from_dict(cls, data: dict) -> "Ablation":
        known = {"name", "description", "baseline", "tasks", "seeds", "variants"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ablation key 'ablation.{unknown[0]}'; valid: "
                              f"{', '.join('ablation.' + k for k in sorted(known))}")
        variants = {str(k): tuple(v or ()) for k, v in (data.get("variants") or {}).items()}
        ablation = cls(name=str(data["name"]), description=str(data.get("description", "")),
                       baseline=str(data["baseline"]), tasks=tuple(data["tasks"]),
                       seeds=tuple(data["seeds"]), variants=variants)
        if ablation.baseline not in variants:
            raise ConfigError(f"ablation {ablation.name}: baseline '{ablation.baseline}' is not one of its "
                              f"variants; valid: {', '.join(variants)}")
        for task in ablation.tasks:
            TASKS.get(task)
        for seed in ablation.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"ablation {ablation.name}: seeds must be non-negative integers, got {seed!r}")
        if not ablation.tasks or not ablation.seeds:
            raise ConfigError(f"ablation {ablation.name}: needs at least one task and one seed")
        return ablation

    def cells(self, tasks: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        """The grid, baseline first; `tasks`/`seeds` replace the ablation's own (from `task=`/`seed=`)."""
        order = [self.baseline] + [v for v in self.variants if v != self.baseline]
        return [Cell(variant, task, seed, self.variants[variant])
                for task in (tasks or self.tasks) for seed in (seeds or self.seeds) for variant in order]
