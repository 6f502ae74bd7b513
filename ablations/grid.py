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
        known = ("name", "description", "baseline", "tasks", "seeds", "variants")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown ablation key 'ablation.{unknown[0]}'; valid: "
                              f"{', '.join('ablation.' + k for k in known)}")
        missing = [k for k in ("name", "baseline", "tasks", "seeds", "variants") if data.get(k) in (None, "")]
        if missing:
            raise ConfigError(f"ablation {data.get('name', '?')} needs 'ablation.{missing[0]}'; required: "
                              f"name, baseline, tasks, seeds, variants")
        name = str(data["name"])
        tasks, seeds, variants = data["tasks"], data["seeds"], data["variants"]
        if not _is_list(tasks) or not _is_list(seeds):
            raise ConfigError(f"ablation {name}: tasks and seeds must be lists, e.g. tasks: [copy] seeds: [0]")
        if not hasattr(variants, "items"):
            raise ConfigError(f"ablation {name}: variants must map each name to a list of overrides, "
                              f"e.g. no_residual: [model.residual=none]")
        for variant, overrides in variants.items():
            if overrides is not None and (not _is_list(overrides) or not all(isinstance(o, str) for o in overrides)):
                raise ConfigError(f"ablation {name}: variant '{variant}' must be a list of overrides, "
                                  f"e.g. [model.residual=none], got {overrides!r}")
        ablation = cls(name=name, description=str(data.get("description") or ""), baseline=str(data["baseline"]),
                       tasks=tuple(tasks), seeds=tuple(seeds),
                       variants={str(k): tuple(v or ()) for k, v in variants.items()})
        if ablation.baseline not in ablation.variants:
            raise ConfigError(f"ablation {name}: baseline '{ablation.baseline}' is not one of its "
                              f"variants; valid: {', '.join(ablation.variants)}")
        for task in ablation.tasks:
            TASKS.get(task)
        for seed in ablation.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"ablation {name}: seeds must be non-negative integers, got {seed!r}")
        if not ablation.tasks or not ablation.seeds:
            raise ConfigError(f"ablation {name}: needs at least one task and one seed")
        return ablation

    def cells(self, tasks: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        """The grid, baseline first; `tasks`/`seeds` replace the ablation's own (from `task=`/`seed=`)."""
        order = [self.baseline] + [v for v in self.variants if v != self.baseline]
        return [Cell(variant, task, seed, self.variants[variant])
                for task in (tasks or self.tasks) for seed in (seeds or self.seeds) for variant in order]


def _is_list(value) -> bool:
    """A YAML list (plain or an OmegaConf ListConfig), not a string."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") and not hasattr(value, "items")
