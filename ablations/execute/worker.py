"""Fair sweeps: the same tuning budget for every variant, then the best parameters re-run with K seeds.

Optuna is driven directly from Python (ask/tell), so the trial object is inside the run and prunes it from the
validation metrics. The study storage is the only coordination between workers, so any number of processes on
any number of machines (`ablate run`, `sweep.workers=N`, `ablate worker DIR`) share one sweep and together do
exactly the budgeted work:

A grid is a sweep with no tuning trials: its units are the final seeded runs alone, claimed the same way, so
a plain `ablate run` is shared by `ablate worker DIR`, `sweep.workers=N` and SLURM array tasks like any sweep.

- How a unit is claimed, and redone after a crash with the same slot, parameters and seed: see
  `ablations.execute.storage`.
- Tuning trials of one cell live in one study named `<ablation>.<variant>.<task>.<config hash>`; its final
  seeded runs live beside it in one study `<...>.final[.t<budget>]`, one trial per seed (the trial's slot is the
  seed, claimed once: `storage.claim_slot`), so optuna-dashboard shows two studies per cell, each objective named
  by its metric. Each study carries what it holds in its user attributes (ablation, variant, task, kind, budget),
  so the tables can be exported from the storage alone. A directory whose finals were one study per seed
  (`<...>.final[.t<budget>].s<seed>`, before) keeps them: they count as done and are exported, never redone.
- A later command into the same directory adds to it: other tasks, seeds and variants accumulate, a larger
  trial budget re-runs the finals that depend on it (the old ones are superseded), and a cell whose config
  changed is refused in one line (it would mix two configurations under one name).
- With `trainer.stack=K`, up to K claimed units that share one architecture train as one stacked model
  (`ablations.execute.stack`); each is still its own trial, run directory and result row.

`trials.csv` and `runs.csv` are exported from the storage after every finished unit, so they always agree with
it, and their rows are sorted by the plan (not by finishing order): the same command gives the same tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ablations.config import RunConfig, check_seed, compose_config, to_run_config
from ablations.config.ablation import Ablation, task_name
from ablations.config.sweep import SPACE_KEYS, SweepConfig, heartbeat_seconds
from ablations.execute.plan import CellPlan
from ablations.execute.signals import Interrupted, deferred, ignored_by_children
from ablations.execute.storage import (SLOT, Heartbeat, _alive, _counts, claim, claim_slot, claimable, fail_stale,
                                      give_back,
                                      holds_slot, next_slot, open_storage, progress_of, slots_of, upcoming_slot)
from ablations.store.directory import ResultsDir
from ablations.store.files import locked
from models.errors import ConfigError
from tasks import TASKS

TRIAL_SEED_OFFSET = 1000  # tuning trials use seeds 1000 + trial number, never the seeds reported


class PruningCallback:
    """Reports the validation metric to the trial after every validation and prunes the run when Optuna
    says so (equivalent to optuna-integration's Lightning callback, in the `lightning.pytorch` namespace)."""

    def __new__(cls, trial, monitor: str):
        import lightning.pytorch as pl

        class _Callback(pl.Callback):
            def on_validation_end(self, trainer, pl_module):
                value = trainer.callback_metrics.get(monitor)
                if value is None or trainer.sanity_checking:
                    return
                step = trainer.global_step
                trial.report(float(value), step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step} ({monitor}={float(value):.4g})")

        return _Callback()


@dataclass
class Unit:
    """One claimed unit of work: a tuning trial (`slot` is its number in the cell's budget) or a final run
    (`slot` is its seed)."""

    plan: CellPlan
    kind: str                     # tune | final
    study: optuna.Study
    trial: optuna.Trial
    slot: int
    cfg: RunConfig
    run_dir: Path
    params: dict | None

    @property
    def label(self) -> str:
        which = f"trial {self.slot}" if self.kind == "tune" else f"(seed {self.slot})"
        return f"{self.plan.variant} x {self.plan.task} {which}"


class Worker:
    """Does claimable units of a grid or sweep until none is left; several may run at once against one storage."""

    def __init__(self, out: Path, ablation: Ablation, plans: list[CellPlan], sweep: SweepConfig, seeds: list[int],
                 *, on_done=None, stack: int = 1):
        self.results = ResultsDir(out)
        self.out, self.ablation, self.plans, self.sweep, self.seeds = self.results.path, ablation, plans, sweep, seeds
        self.stack = max(1, int(stack))
        self.storage = open_storage(sweep.storage, self.out)
        self.on_done = on_done or (lambda label, row: None)
        self.notices: set[str] = set()
        self._studies: dict[str, optuna.Study] = {}
        self._keys: dict[str, str] = {}
        self._seedless: dict[str, RunConfig | None] = {}
        self._legacy: set[str] | None = None  # one-run finals studies of an older directory (`_legacy_done`)

    # studies --------------------------------------------------------------------------------------------
    def study(self, name: str, direction: str, *, pruner=None, metric: str | None = None, **attrs) -> optuna.Study:
        if name not in self._studies:
            study = optuna.create_study(study_name=name, storage=self.storage, direction=direction,
                                        pruner=pruner or optuna.pruners.NopPruner(), load_if_exists=True)
            if attrs and study.user_attrs.get("ablation") is None:
                for key, value in {"ablation": self.ablation.name, **attrs}.items():
                    study.set_user_attr(key, value)
                if metric:  # optuna-dashboard names the objective by it (else "Objective 0")
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        study.set_metric_names([metric])
            self._studies[name] = study
        return self._studies[name]

    def pruner(self, plan: CellPlan):
        """The sweep's pruner for a cell's tuning study. Hyperband and successive halving (Li et al. 2018,
        https://arxiv.org/abs/1603.06560; Jamieson & Talwalkar 2016, https://arxiv.org/abs/1502.07943) count
        their resource in training steps, from the first validation (`trainer.val_every`) to `trainer.max_steps`."""
        kind = self.sweep.pruner
        if kind == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.sweep.pruner_startup_trials)
        if kind in ("hyperband", "successive_halving"):
            trainer = self._seeded(plan, 0).trainer
            first = min(trainer.val_every, trainer.max_steps)
            if kind == "hyperband":
                return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=trainer.max_steps,
                                                      reduction_factor=3)
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def tuning(self, plan: CellPlan) -> optuna.Study:
        return self.study(plan.study, plan.direction, pruner=self.pruner(plan),
                          metric=f"val/{TASKS.get(task_name(plan.task)).metric}", variant=plan.variant, task=plan.task,
                          kind="tune", cell=plan.study, budget=self.sweep.trials)

    def final(self, plan: CellPlan) -> optuna.Study:
        """The cell's finals study: one trial per seed."""
        return self.study(plan.finals_study(self.sweep.trials), plan.direction,
                          metric=f"test/{TASKS.get(task_name(plan.task)).metric}", variant=plan.variant, task=plan.task,
                          kind="final", cell=plan.study, budget=self.sweep.trials)

    def _legacy_done(self, plan: CellPlan, seed: int) -> bool:
        """Whether a one-run study of this final (the layout before `finals_study`) holds it finished."""
        if self._legacy is None:
            self._legacy = {s.study_name for s in self.storage.get_all_studies()
                            if s.user_attrs.get("kind") == "final" and "seed" in s.user_attrs}
        name = plan.final_study(seed, self.sweep.trials)
        if name not in self._legacy:
            return False
        study = optuna.load_study(study_name=name, storage=self.storage)
        return progress_of(study, 1)[0] >= 1

    def final_done(self, plan: CellPlan, seed: int) -> bool:
        return seed in slots_of(self.final(plan))[0] or self._legacy_done(plan, seed)

    def check_conflicts(self) -> None:
        """Refuse, before any work, a cell that this storage already holds under another configuration."""
        wanted = {(p.variant, p.task): p.study for p in self.plans}
        for frozen in self.storage.get_all_studies():
            attrs = frozen.user_attrs
            key = (attrs.get("variant"), attrs.get("task"))
            if attrs.get("ablation") != self.ablation.name or key not in wanted or attrs.get("cell") == wanted[key]:
                continue
            if any(t.state != TrialState.WAITING for t in self.storage.get_all_trials(frozen._study_id,
                                                                                      deepcopy=False)):
                raise ConfigError(f"{self.out} already holds {key[0]} x {key[1]} of ablation {self.ablation.name} "
                                  f"with a different config ({attrs.get('cell')} != {wanted[key]}); choose another "
                                  f"out=DIR or remove that directory")

    # one unit of work -----------------------------------------------------------------------------------
    def _seeded(self, plan: CellPlan, seed: int) -> RunConfig:
        """The cell's config at this seed. Composing costs about 0.15 s (Hydra reads every YAML file again), a
        tenth of a short run, so each cell is composed at two seeds once; when they differ in the seed alone
        (no value interpolates it) every other seed is the same config with that seed."""
        def compose(at: int) -> RunConfig:
            return to_run_config(compose_config(list(plan.overrides) + [f"seed={at}"]))

        if plan.study not in self._seedless:
            first, second = compose(0), compose(1)
            self._seedless[plan.study] = first if dataclasses.replace(second, seed=0) == first else None
        template = self._seedless[plan.study]
        if template is None:
            return compose(seed)
        check_seed(seed)
        return dataclasses.replace(template, seed=seed)

    def _config(self, plan: CellPlan, seed: int, params: dict | None) -> RunConfig:
        """The unit's config: the cell's at this seed, with the searched values. The optimiser's short names are
        set directly; any other searched key (`model.d_ff`, `task.n_pairs`) is one more override composed."""
        others = {k: v for k, v in (params or {}).items() if k not in SPACE_KEYS}
        if others:
            cfg = to_run_config(compose_config([*plan.overrides, *(f"{k}={_override_value(v)}" for k, v in
                                                                  sorted(others.items())), f"seed={seed}"]))
        else:
            cfg = self._seeded(plan, seed)
        if not params:
            return cfg
        optim = cfg.optim
        values = {"lr": params.get("lr", optim.lr), "weight_decay": params.get("weight_decay", optim.weight_decay),
                  "warmup_steps": (round(params["warmup_frac"] * cfg.trainer.max_steps) if "warmup_frac" in params
                                   else optim.warmup_steps)}
        return dataclasses.replace(cfg, optim=dataclasses.replace(optim, **values))

    def _suggest(self, trial) -> dict:
        """One value per searched key: a categorical choice, an integer or a float (each on a log scale if asked)."""
        values = {}
        for key, b in self.sweep.space.items():
            if "choices" in b:
                values[key] = trial.suggest_categorical(key, list(b["choices"]))
            elif b.get("type") == "int":
                values[key] = trial.suggest_int(key, int(b["low"]), int(b["high"]), log=bool(b.get("log")))
            else:
                values[key] = trial.suggest_float(key, float(b["low"]), float(b["high"]), log=bool(b.get("log")))
        return values

    def _claim_tune(self, plan: CellPlan) -> Unit | None:
        study = self.tuning(plan)
        fail_stale(study, self.sweep.grace_seconds)
        if not claimable(study, self.sweep.trials):
            return None
        # The sampler is seeded by the slot the trial will take: the same slot samples the same parameters from
        # the same history, whether or not the sweep was interrupted before it.
        slot = next_slot(study, self.sweep.trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # multivariate: the searched keys are modelled jointly (Falkner et al. 2018,
            # https://arxiv.org/abs/1807.01774); constant_liar: trials running elsewhere count as bad results, so
            # that workers asking at once do not all sample the same region.
            study.sampler = optuna.samplers.TPESampler(seed=self.sweep.sampler_seed + (slot or 0),
                                                       n_startup_trials=self.sampler_startup(), multivariate=True,
                                                       constant_liar=True)
        trial = claim(study, self.sweep.trials)
        if trial is None:
            return None
        slot = trial.user_attrs[SLOT]
        params = self._suggest(trial)
        cfg = self._config(plan, TRIAL_SEED_OFFSET + slot, params)
        return Unit(plan, "tune", study, trial, slot, cfg, self.results.trial_dir(plan.variant, plan.task, slot),
                    params)

    def sampler_startup(self) -> int:
        """Trials the TPE sampler draws at random before it models the finished ones."""
        return max(1, min(10, self.sweep.trials // 3))

    def _may_join(self, plan: CellPlan) -> bool:
        """Whether the cell's next tuning trial may join a stack that is being formed. Trials of one stack all
        start before any of them ends, so a trial that would learn from earlier ones (the sampler models finished
        trials after its startup draws, the median pruner compares with finished trials after its startup ones)
        joins only once those startup trials have ended; until then the stack takes just the startup trials. A
        stack thus forfeits neither the pruning that a one-by-one sweep gets nor, beyond what any parallel
        tuning gives up, its sampling."""
        if not self.sweep.stackable:
            return False  # the space changes the architecture or data: each trial is its own
        startup = self.sampler_startup()
        if self.sweep.pruner != "none":
            startup = max(startup, self.sweep.pruner_startup_trials)
        startup = min(startup, self.sweep.trials)
        study = self.tuning(plan)
        slot = upcoming_slot(study, self.sweep.trials)
        if slot is None or slot < startup:
            return True
        finished, _ = slots_of(study)
        return all(s in finished for s in range(startup))

    def _claim_final(self, plan: CellPlan, seed: int) -> Unit | None:
        study = self.final(plan)
        fail_stale(study, self.sweep.grace_seconds)
        waiting = any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))
        finished, running = slots_of(study)
        if not waiting and (seed in finished | running or self._legacy_done(plan, seed)):
            return None
        trial = claim_slot(study, seed)  # an enqueued redo comes first, with its own seed
        if trial is None:
            return None
        seed = int(trial.user_attrs[SLOT])
        params = self.best_params(plan)
        if params is None and self.sweep.tunes:
            self._notice(f"note: no tuning trial of {plan.variant} x {plan.task} has a validation score (every one "
                         f"failed, diverged or was pruned; see trials.csv): its final runs use the task's default "
                         f"hyper-parameters (tuned_params is empty in runs.csv)")
        cfg = self._config(plan, seed, params)
        return Unit(plan, "final", study, trial, seed, cfg, self.results.run_dir(plan.variant, plan.task, seed),
                    params)

    def _candidates(self):
        """Claim attempts in plan order: each cell's tuning trials, then its finals once its tuning is done. An
        attempt takes `joining`: whether the unit would join a stack that already has members (`_may_join`)."""
        for plan in self.plans:
            if self.sweep.tunes:
                yield plan, lambda joining, plan=plan: (None if joining and not self._may_join(plan)
                                                        else self._claim_tune(plan))
            if self.tuning_finished(plan):
                for seed in self.seeds:
                    yield plan, lambda joining, plan=plan, seed=seed: self._claim_final(plan, seed)

    def _stack_key(self, plan: CellPlan) -> str:
        from ablations.execute.stack import stack_key

        if plan.study not in self._keys:
            self._keys[plan.study] = stack_key(self._config(plan, 0, None))
        return self._keys[plan.study]

    def claim_units(self) -> list[Unit]:
        """Up to `stack` claimable units that share one architecture (the first claimable one decides which)."""
        units: list[Unit] = []
        for plan, attempt in self._candidates():
            if units and (len(units) >= self.stack or self._stack_key(plan) != self._stack_key(units[0].plan)):
                continue
            while len(units) < self.stack:
                unit = attempt(bool(units))
                if unit is None:
                    break
                units.append(unit)
            if len(units) >= self.stack:
                break
        return units

    def _train(self, units: list[Unit]) -> list[dict]:
        """Train `units` (stacked where they can be) and return their rows, each naming its cell's task label
        (`copy@length=24`, not the task's name `copy`): two levels of one task are two columns of the grid."""
        rows = self._train_units(units)
        for unit, row in zip(units, rows):
            row["task"] = unit.plan.task
        return rows

    def _train_units(self, units: list[Unit]) -> list[dict]:
        from ablations.execute.run import train

        if len(units) > 1:
            from ablations.execute.stack import Member, stackable, train_stack

            ok, reason = stackable(units[0].cfg)
            if ok:
                members = [Member(u.cfg, u.run_dir, u.plan.variant, self.ablation.name,
                                  on_validation=_pruner(u.trial) if u.kind == "tune" else None) for u in units]
                return train_stack(members)
            self._notice(f"note: {units[0].plan.variant} does not stack ({reason}); its runs train one by one")
        rows = []
        for u in units:
            callbacks = [PruningCallback(u.trial, f"val/{TASKS.get(task_name(u.plan.task)).metric}")] if u.kind == "tune" else []
            rows.append(train(u.cfg, u.run_dir, variant=u.plan.variant, ablation=self.ablation.name,
                              callbacks=callbacks))
        return rows

    def _notice(self, line: str) -> None:
        if line not in self.notices:
            self.notices.add(line)
            import sys

            print(line, file=sys.stderr)

    def _finish(self, unit: Unit, row: dict) -> None:
        """Record a finished unit in its trial and tell Optuna its outcome.

        A tuning trial exists to be ranked by its validation score, so one that trained to the end (`ok`) without
        a finite score is `failed`, with an error that says so and why (`no_score_error`), and is told to Optuna
        as FAIL: were it told COMPLETE it would have no value, and recorded `ok` it would look like a result while
        the final runs, with no trial to take parameters from, fell back to the defaults (`best_params`)."""
        trial, study = unit.trial, unit.study
        row["run_dir"] = self.results.relative(unit.run_dir)
        if unit.kind == "tune" and row["status"] == "ok" and not _finite(row["val_score"]):
            row["status"], row["error"] = "failed", no_score_error(unit.cfg, row)
        if unit.kind == "tune":
            for key in ("status", "val_score", "steps", "wall_seconds", "error"):
                trial.set_user_attr(key, row[key])
            trial.set_user_attr("run_dir", row["run_dir"])
            trial.set_user_attr("seed", unit.cfg.seed)
            value = row["val_score"]
        else:
            row["tuned_params"] = json.dumps(unit.params, sort_keys=True) if unit.params else ""
            trial.set_user_attr("row", json.dumps(row, default=str))
            trial.set_user_attr("status", row["status"])
            value = row["score"]
        if not holds_slot(study, trial):  # another worker's claim of the same slot at the same moment won
            trial.set_user_attr("surplus", True)
            state = dict(state=TrialState.FAIL)
        elif row["status"] == "ok" and _finite(value):
            state = dict(values=value)
        elif row["status"] == "pruned":
            state = dict(state=TrialState.PRUNED)
        else:  # diverged or failed: a result that counts against the variant
            state = dict(state=TrialState.FAIL)
        try:
            study.tell(trial, **state)
        except (RuntimeError, ValueError):  # marked stale by another worker meanwhile: its redo reports it
            pass
        self.on_done(unit.label, row)

    def step(self) -> bool:
        """Claim and do the next units (one, or a stack of up to `stack`); False when none is claimable.

        Interrupted (`signals.Interrupted`: SIGINT, SIGTERM) while its units train, it records none of them: their
        claims are released (marked stale, each redo enqueued with the same slot, parameters and seed), so that
        whoever asks next, the same command run again included, redoes them. Claiming, telling results and
        exporting the tables are never cut in half: a signal there takes effect at the end of that section."""
        units: list[Unit] = []
        told: list[Unit] = []
        try:
            with deferred():
                units.extend(self.claim_units())
            if not units:
                return False
            interval = heartbeat_seconds(self.sweep.grace_seconds)
            with contextlib.ExitStack() as beats:
                for unit in units:
                    beats.enter_context(Heartbeat(unit.study, unit.trial, interval))
                rows = self._train(units)
            with deferred():
                for unit, row in zip(units, rows):
                    self._finish(unit, row)
                    told.append(unit)
                self.export()
        except Interrupted:
            with deferred():
                release([u for u in units if u not in told])
            raise
        return True

    # progress -------------------------------------------------------------------------------------------
    def best_params(self, plan: CellPlan) -> dict | None:
        if not self.sweep.tunes:
            return None
        study = self.tuning(plan)
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _counts(t)]
        if not complete:
            # Every trial diverged, failed or was pruned: the final runs use the task's defaults (what a variant
            # that cannot be tuned gets), said in one line by `_claim_final` and visible as an empty tuned_params.
            return None
        # Ties go to the lower slot, so the choice does not depend on which worker finished first.
        best = sorted(complete, key=lambda t: (-t.value if plan.direction == "maximize" else t.value,
                                               t.user_attrs.get(SLOT, t.number)))[0]
        return dict(best.params)

    def tuning_finished(self, plan: CellPlan) -> bool:
        if not self.sweep.tunes:
            return True
        done, running = progress_of(self.tuning(plan), self.sweep.trials)
        return done >= self.sweep.trials and not running

    def finished(self) -> bool:
        return all(self.tuning_finished(plan) and all(self.final_done(plan, s) for s in self.seeds)
                   for plan in self.plans)

    def units(self) -> tuple[int, int]:
        """(finished, total) units of work across the plan, as the storage sees them."""
        done = total = 0
        for plan in self.plans:
            if self.sweep.tunes:
                done += progress_of(self.tuning(plan), self.sweep.trials)[0]
                total += self.sweep.trials
            for seed in self.seeds:
                done += self.final_done(plan, seed)
                total += 1
        return done, total

    def run(self, *, wait: bool = True, poll_seconds: float = 2.0) -> None:
        """Work until nothing is claimable; with `wait`, then wait for other workers to finish theirs."""
        self.check_conflicts()
        while True:
            while self.step():
                pass
            if not wait or self.finished():
                return
            time.sleep(poll_seconds)  # others are running units; stale ones are reclaimed on the next pass

    # export ------------------------------------------------------------------------------------------
    def export(self) -> None:
        """Write trials.csv and runs.csv from the storage (atomically, under the directory lock): every study
        of this ablation, not only this command's cells, so that earlier results are never dropped."""
        order = {(p.variant, p.task): i for i, p in enumerate(self.plans)}
        finals: dict[tuple, tuple] = {}
        trial_rows = []
        for frozen in self.storage.get_all_studies():
            attrs = frozen.user_attrs
            if attrs.get("ablation") != self.ablation.name:
                continue
            rank = (order.get((attrs.get("variant"), attrs.get("task")), len(order)), str(attrs.get("task")),
                    str(attrs.get("variant")))
            trials = [t for t in self.storage.get_all_trials(frozen._study_id, deepcopy=False)
                      if _counts(t) and not _alive(t)]
            if attrs.get("kind") == "tune":
                for t in trials:
                    a = t.user_attrs
                    trial_rows.append((rank, a.get(SLOT, t.number), {
                        "ablation": self.ablation.name, "variant": attrs["variant"], "task": attrs["task"],
                        "trial": a.get(SLOT, t.number), "status": a.get("status", t.state.name.lower()),
                        **{k: t.params.get(k) for k in (*SPACE_KEYS, *self.sweep.space)}, "val_score": a.get("val_score"),
                        "steps": a.get("steps"), "wall_seconds": a.get("wall_seconds"), "seed": a.get("seed"),
                        "run_dir": a.get("run_dir"), "error": a.get("error"), "study": frozen.study_name}))
            elif attrs.get("kind") == "final":  # a cell's finals study (a legacy one holds a single seed)
                budget = int(attrs.get("budget") or 0)
                for row in (json.loads(t.user_attrs["row"]) for t in trials if "row" in t.user_attrs):
                    key = (attrs.get("cell"), int(row["seed"]))
                    if key not in finals or budget > finals[key][0]:  # a larger budget supersedes
                        finals[key] = (budget, rank, row)
        run_rows = [row for _, rank, row in sorted(finals.values(), key=lambda f: (f[1], int(f[2]["seed"])))]
        with locked(self.out):
            if trial_rows or self.sweep.tunes:
                self.results.write_trials([row for _, _, row in sorted(trial_rows, key=lambda r: r[:2])])
            self.results.write_runs(run_rows)


def _override_value(value) -> str:
    """A searched value as a Hydra override value (a string is quoted, so that `1e3` or `null` stays a string)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    return repr(value) if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def _finite(value) -> bool:
    """Whether a score is a number a study can rank (not None, not NaN, not infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def no_score_error(cfg: RunConfig, row: dict) -> str:
    """The error of a tuning trial that trained to its end without a validation score, and why that can happen.
    Every run validates every `trainer.val_every` steps and after its last one (`module.validation_due`), so a run
    that trained to its end without one validated but did not produce the task's metric: a task naming a metric
    the module does not compute, or a value that is not finite (`run.finite_only` leaves it out)."""
    from ablations.execute.module import metrics_from_totals

    metric = row.get("metric") or TASKS.get(cfg.task["name"]).metric
    known = ", ".join(metrics_from_totals(0.0, 0.0, 1.0))
    return (f"no validation score was recorded (val/{metric} after {row.get('steps')} of "
            f"{cfg.trainer.max_steps} steps, trainer.val_every={cfg.trainer.val_every}), so the trial cannot be "
            f"ranked: a run validates every val_every steps and after its last one, so either its validation did "
            f"not compute the task's metric '{metric}' (the module computes {known}) or gave a non-finite value")


def _pruner(trial):
    """A stacked member's pruning hook: report the validation metric to its trial and ask whether to stop."""
    def on_validation(step: int, value: float) -> bool:
        trial.report(float(value), step)
        return trial.should_prune()

    return on_validation


# --- several workers on this machine ---------------------------------------------------------------------

def release(units: list[Unit]) -> None:
    """Give back the claims of units that did not finish (an interruption): each trial is marked stale, as a
    dead worker's would be, and its redo enqueued with the same slot and parameters (hence the same seed), so
    it is claimable at once, here or on another machine (which would otherwise wait out the grace period). A
    storage that cannot be reached leaves the trial running; it goes stale when this process is gone."""
    for unit in units:
        try:
            give_back(unit.study, unit.trial)
        except Exception:  # noqa: BLE001 - the storage is gone: the trial goes stale when this process is gone
            continue


def _worker_process(out: str, ablation: dict, plans: list, sweep: dict, seeds: list, threads: int,
                    stack: int, parent: int | None = None) -> None:
    """A local helper worker (a spawned process). It stops with its parent: on the SIGTERM its parent sends
    when interrupted, and on the parent's death (the kernel sends SIGTERM: `die_with_parent`). It was started
    ignoring SIGINT, so a terminal's Ctrl-C, which reaches every process of the group, reaches it only
    through its parent. It exits quietly (the parent prints the one line) with status 128 + the signal."""
    import sys

    from ablations.execute.signals import die_with_parent, handled

    try:
        with handled((signal.SIGTERM,)):
            if parent is not None:
                die_with_parent(parent)
            import torch

            torch.set_num_threads(threads)
            worker = Worker(Path(out), Ablation.from_dict(ablation), [CellPlan(**p) for p in plans],
                            SweepConfig.from_dict(sweep), seeds, stack=stack)
            worker.run(wait=False)
    except Interrupted as interrupted:
        sys.exit(interrupted.status)


def gpu_assignment(n_workers: int, visible: str | None, n_gpus: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES of each local worker (worker 0 is this process): with several GPUs visible each
    worker gets its own, round-robin, so that N workers on an N-GPU node use N devices (several workers share
    one when there are more workers than GPUs). None where there is no GPU."""
    if n_gpus <= 0:
        return [None] * n_workers
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(n_gpus)]
    ids = ids[:n_gpus] or [str(i) for i in range(n_gpus)]
    return [ids[i % len(ids)] for i in range(n_workers)]


def start_local_workers(worker: Worker, n: int) -> list:
    """Start n extra worker processes beside this one, splitting the CPU threads between all of them, and
    giving each its own GPU where several are visible."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // (n + 1))
    torch.set_num_threads(threads)
    devices = gpu_assignment(n + 1, os.environ.get("CUDA_VISIBLE_DEVICES"),
                             torch.cuda.device_count() if torch.cuda.is_available() else 0)
    context = multiprocessing.get_context("spawn")
    processes = []
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        for index in range(1, n + 1):
            if devices[index] is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = devices[index]  # a spawned child inherits the environment
            process = context.Process(target=_worker_process, daemon=False, args=(
                str(worker.out), dataclasses.asdict(worker.ablation), [dataclasses.asdict(p) for p in worker.plans],
                dataclasses.asdict(worker.sweep), list(worker.seeds), threads, worker.stack, os.getpid()))
            with ignored_by_children((signal.SIGINT,)):  # Ctrl-C stops a child through its parent only
                process.start()
            processes.append(process)
    except BaseException:
        stop_local_workers(processes)
        raise
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    return processes


def stop_local_workers(processes: list, timeout: float = 30.0) -> None:
    """Stop local helper workers (this process was interrupted or failed): SIGTERM each, which releases its
    running units for their redo, wait up to `timeout` seconds, then kill what is left."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.terminate()  # SIGTERM
    deadline = time.monotonic() + timeout
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5.0)
