"""The plan: an ablation's cells (variant x task), each validated before any work, with its study names.

Tuning trials of one cell live in one study named `<ablation>.<variant>.<task>.<config hash>`; each final
seeded run is the single trial of its own study `<...>.final.s<seed>` (budget 1), so it too runs exactly once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ablations.config import (NEUTRAL_TRAINER_KEYS, compose_config, dedupe_overrides, to_run_config,
                              without_later_defaults)
from ablations.config.ablation import Ablation, task_name, task_overrides
from models.errors import ConfigError
from tasks import TASKS


@dataclass(frozen=True)
class CellPlan:
    variant: str
    task: str
    overrides: tuple[str, ...]   # everything but the tuned parameters and the seed
    study: str                   # tuning study name
    direction: str               # maximize | minimize

    def finals_study(self, trials: int = 0) -> str:
        """The study of the cell's final seeded runs, one trial per seed (its slot is the seed), so that
        optuna-dashboard shows one finals study beside each tuning study. A tuned cell's finals depend on its tuning
        budget (they re-run the best parameters found), so a larger budget names new finals, which re-run; the old
        ones stay in the storage, superseded."""
        return f"{self.study}.final.t{trials}" if trials else f"{self.study}.final"

    def final_study(self, seed: int, trials: int = 0) -> str:
        """The one-run study a final seeded run had before finals shared `finals_study`: read (never written) so
        that a directory made then resumes without redoing its finals."""
        return f"{self.finals_study(trials)}.s{seed}"


#: The optimiser settings each search-space key sets (left out of the study name when tuned).
TUNED_OPTIM_KEYS = {"lr": "lr", "weight_decay": "weight_decay", "warmup_frac": "warmup_steps"}


def plan_cells(ablation: Ablation, user_overrides: list[str], tasks=None, tuned=()) -> list[CellPlan]:
    """One plan per (variant, task): its overrides, validated now, and its study names. `tuned` are the
    search-space keys of the sweep."""
    from ablations.config import override_key

    base = [o for o in user_overrides if override_key(o) not in ("seed", "task")]
    _check_fair_space(ablation, tuned, base)
    plans = []
    for task in (ablation.task_labels(tasks) if tasks else ablation.tasks):
        baseline_cfg = None
        for variant in [ablation.baseline] + [v for v in ablation.variants if v != ablation.baseline]:
            overrides = tuple(dedupe_overrides([*ablation.overrides, *base, *task_overrides(task),
                                                *ablation.variants[variant]]))
            composed = compose_config(list(overrides))
            run_cfg = to_run_config(composed)  # validates before any work
            if baseline_cfg is None:
                baseline_cfg = run_cfg
            elif ablation.match != "none":  # the variant at the baseline's budget (ablations/config/matching.py)
                from ablations.config.matching import match_overrides

                matched = match_overrides(ablation.match, baseline_cfg, run_cfg, ablation.variants[variant],
                                          name=f"variant {variant} on {task}")
                if matched:
                    overrides = tuple(dedupe_overrides([*overrides, *matched]))
                    composed = compose_config(list(overrides))
                    run_cfg = to_run_config(composed)
            _check_searched_keys_exist(composed, tuned)
            if run_cfg.trainer.devices != 1:
                raise ConfigError(f"trainer.devices={run_cfg.trainer.devices} is for single runs (`ablate train`); "
                                  f"a sweep runs one device per trial (use sweep.workers for parallelism)")
            # The study name carries a hash of everything the runs depend on except the tuned optimiser
            # settings and the seed, so a changed config never resumes another config's study.
            skip = {TUNED_OPTIM_KEYS.get(k, k.removeprefix("optim.")) for k in tuned
                    if k in TUNED_OPTIM_KEYS or k.startswith("optim.")}
            # Settings added later are left out while they hold the value that reproduces earlier results, so
            # a directory written before them still resumes its studies (`without_later_defaults`).
            trainer = without_later_defaults("trainer", dataclasses.asdict(run_cfg.trainer))
            optim = without_later_defaults("optim", dataclasses.asdict(run_cfg.optim))
            digest = _hash({"model": run_cfg.model.hash_form(), "task": run_cfg.task,
                            "trainer": {k: v for k, v in trainer.items() if k not in NEUTRAL_TRAINER_KEYS},
                            "optim": {k: v for k, v in optim.items() if k not in skip}})
            direction = "maximize" if TASKS.get(task_name(task)).higher_is_better else "minimize"
            plans.append(CellPlan(variant, task, overrides, f"{ablation.name}.{variant}.{task}.{digest}", direction))
    return plans


def _check_fair_space(ablation: Ablation, tuned, base: list[str]) -> None:
    """Every variant gets the same search space (the fairness rule), so a searched key that a variant sets is
    refused: the search would overwrite what makes the variant."""
    from ablations.config import override_key
    from ablations.config.sweep import SHORT_KEYS

    searched = {SHORT_KEYS.get(k, k): k for k in tuned}
    for variant, overrides in ablation.variants.items():
        for override in overrides:
            key = override_key(override)
            if key in searched:
                raise ConfigError(f"sweep.space.{searched[key]} is searched, but variant {variant} sets {key} "
                                  f"({override}): the search would overwrite the variant; search another key or "
                                  f"drop it from the space")


def _check_searched_keys_exist(composed, tuned) -> None:
    """A searched config key (`model.d_ff`) must be one the config has: a typo is one line, before any work."""
    from omegaconf import OmegaConf

    from ablations.config.sweep import SHORT_KEYS
    from models.registry import closest

    for key in tuned:
        if key in SHORT_KEYS:
            continue
        section, _, name = key.partition(".")
        missing = object()
        if OmegaConf.select(composed, key, default=missing) is missing:
            known = [f"{section}.{k}" for k in (composed.get(section) or {})]
            raise ConfigError(f"unknown search-space key 'sweep.space.{key}'{closest(key, known)}: the config has "
                              f"no {key}")


def _hash(data: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]
