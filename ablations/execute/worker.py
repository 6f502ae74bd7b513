"""Fair sweeps: the same tuning budget for every variant, then the best parameters re-run with K seeds.

Optuna is driven directly from Python (ask/tell), so the trial object is inside the run and prunes it from the
validation metrics. The study storage is the only coordination between workers, so any number of processes on
any number of machines (`ablate run`, `sweep.workers=N`, `ablate worker DIR`) share one sweep and together do
exactly the budgeted work:

- A unit of work is claimed by asking the storage for a trial. Trial numbers are assigned atomically, so the
  claim rule "trial n runs only if fewer than `budget` trials numbered below n count" admits exactly `budget`
  trials however many workers ask at once; a surplus trial is closed at once (marked `surplus`) and ignored.
- A trial counts when it finished (complete, pruned, diverged, failed) or is running and alive. A running trial
  whose process is gone (same host, dead pid) or whose heartbeat is older than `sweep.grace_seconds` is marked
  `stale`, stops counting, and its unit is claimed again: a killed sweep loses nothing and repeats nothing
  that finished.
- Tuning trials of one cell live in one study named `<ablation>.<variant>.<task>.<config hash>`; each final
  seeded run is the single trial of its own study `<...>.final.s<seed>` (budget 1), so it too runs exactly once.

`trials.csv` and `runs.csv` are exported from the storage at the end, so they always agree with it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import multiprocessing
import os
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from ablations.config import RunConfig, compose_config, to_run_config
from ablations.config.ablation import Ablation
from ablations.config.sweep import SPACE_KEYS, SweepConfig
from ablations.execute.plan import CellPlan
from ablations.execute.storage import Heartbeat, _alive, _counts, claim, fail_stale, open_storage, progress_of
from ablations.store.files import COLUMNS, append_run, write_text_atomic
from tasks import TASKS

TRIAL_COLUMNS = ["ablation", "variant", "task", "trial", "status", "lr", "warmup_frac", "weight_decay",
                 "val_score", "steps", "wall_seconds", "seed", "run_dir", "error", "study"]
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


class Worker:
    """Does claimable units of a sweep until none is left; several may run at once against one storage."""

    def __init__(self, out: Path, ablation: Ablation, plans: list[CellPlan], sweep: SweepConfig, seeds: list[int],
                 *, on_done=None):
        self.out, self.ablation, self.plans, self.sweep, self.seeds = Path(out), ablation, plans, sweep, seeds
        self.storage = open_storage(sweep.storage, self.out)
        self.on_done = on_done or (lambda label, row: None)
        self._studies: dict[str, optuna.Study] = {}

    def study(self, name: str, direction: str) -> optuna.Study:
        if name not in self._studies:
            pruner = (optuna.pruners.MedianPruner(n_startup_trials=self.sweep.pruner_startup_trials)
                      if self.sweep.pruner == "median" else optuna.pruners.NopPruner())
            self._studies[name] = optuna.create_study(study_name=name, storage=self.storage, direction=direction,
                                                      pruner=pruner, load_if_exists=True)
        return self._studies[name]

    # one unit of work -----------------------------------------------------------------------------------
    def _config(self, plan: CellPlan, seed: int, params: dict | None) -> RunConfig:
        overrides = list(plan.overrides) + [f"seed={seed}"]
        cfg = to_run_config(compose_config(overrides))
        if not params:
            return cfg
        optim = cfg.optim
        values = {"lr": params.get("lr", optim.lr), "weight_decay": params.get("weight_decay", optim.weight_decay),
                  "warmup_steps": (round(params["warmup_frac"] * cfg.trainer.max_steps) if "warmup_frac" in params
                                   else optim.warmup_steps)}
        return dataclasses.replace(cfg, optim=dataclasses.replace(optim, **values))

    def _suggest(self, trial) -> dict:
        return {key: trial.suggest_float(key, float(b["low"]), float(b["high"]), log=bool(b.get("log")))
                for key, b in self.sweep.space.items()}

    def _run(self, study, trial, cfg: RunConfig, run_dir: Path, variant: str, callbacks=()) -> dict:
        from ablations.execute.run import train

        with Heartbeat(study, trial, max(1.0, min(20.0, self.sweep.grace_seconds / 4))):
            return train(cfg, run_dir, variant=variant, ablation=self.ablation.name, callbacks=callbacks)

    def tune_one(self, plan: CellPlan) -> bool:
        study = self.study(plan.study, plan.direction)
        fail_stale(study, self.sweep.grace_seconds)
        done, running = progress_of(study, self.sweep.trials)
        if done + running >= self.sweep.trials:
            return False
        # Reseed the sampler by the number of trials so far: reproducible alone, different across workers.
        study.sampler = optuna.samplers.TPESampler(seed=self.sweep.sampler_seed + len(study.trials),
                                                   n_startup_trials=max(1, min(10, self.sweep.trials // 3)))
        trial = claim(study, self.sweep.trials)
        if trial is None:
            return False
        params = self._suggest(trial)
        cfg = self._config(plan, TRIAL_SEED_OFFSET + trial.number, params)
        metric = TASKS.get(plan.task).metric
        run_dir = self.out / "trials" / plan.variant / plan.task / f"t{trial.number}"
        row = self._run(study, trial, cfg, run_dir, plan.variant, [PruningCallback(trial, f"val/{metric}")])
        for key in ("status", "val_score", "steps", "wall_seconds", "error"):
            trial.set_user_attr(key, row[key])
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seed", cfg.seed)
        value = row["val_score"]
        if row["status"] == "ok" and value is not None and math.isfinite(value):
            study.tell(trial, value)
        elif row["status"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:  # diverged or failed: a result that counts against the variant
            study.tell(trial, state=TrialState.FAIL)
        self.on_done(f"{plan.variant} x {plan.task} trial {trial.number}", row)
        return True

    def best_params(self, plan: CellPlan) -> dict | None:
        if not self.sweep.tunes:
            return None
        study = self.study(plan.study, plan.direction)
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _counts(t)]
        if not complete:
            return None  # every trial diverged, failed or was pruned: the final runs use the task defaults
        best = (max if plan.direction == "maximize" else min)(complete, key=lambda t: t.value)
        return dict(best.params)

    def tuning_finished(self, plan: CellPlan) -> bool:
        if not self.sweep.tunes:
            return True
        study = self.study(plan.study, plan.direction)
        done, running = progress_of(study, self.sweep.trials)
        return done >= self.sweep.trials and not running

    def final_one(self, plan: CellPlan, seed: int) -> bool:
        study = self.study(plan.final_study(seed), plan.direction)
        fail_stale(study, self.sweep.grace_seconds)
        done, running = progress_of(study, 1)
        if done + running >= 1:
            return False
        trial = claim(study, 1)
        if trial is None:
            return False
        params = self.best_params(plan)
        cfg = self._config(plan, seed, params)
        run_dir = self.out / "runs" / plan.variant / plan.task / f"s{seed}"
        row = self._run(study, trial, cfg, run_dir, plan.variant)
        row["tuned_params"] = json.dumps(params) if params else ""
        trial.set_user_attr("row", json.dumps(row, default=str))
        trial.set_user_attr("status", row["status"])
        append_run(self.out, row)
        score = row["score"]
        if row["status"] == "ok" and score is not None and math.isfinite(score):
            study.tell(trial, score)
        else:
            study.tell(trial, state=TrialState.FAIL)
        self.on_done(f"{plan.variant} x {plan.task} (seed {seed})", row)
        return True

    def step(self) -> bool:
        """Do one claimable unit (a tuning trial, or a final run of a cell whose tuning is finished)."""
        for plan in self.plans:
            if self.sweep.tunes and self.tune_one(plan):
                return True
            if self.tuning_finished(plan):
                for seed in self.seeds:
                    if self.final_one(plan, seed):
                        return True
        return False

    def finished(self) -> bool:
        for plan in self.plans:
            if not self.tuning_finished(plan):
                return False
            for seed in self.seeds:
                if progress_of(self.study(plan.final_study(seed), plan.direction), 1)[0] < 1:
                    return False
        return True

    def units(self) -> tuple[int, int]:
        """(finished, total) units of work across the plan, as the storage sees them."""
        done = total = 0
        for plan in self.plans:
            if self.sweep.tunes:
                done += progress_of(self.study(plan.study, plan.direction), self.sweep.trials)[0]
                total += self.sweep.trials
            for seed in self.seeds:
                done += progress_of(self.study(plan.final_study(seed), plan.direction), 1)[0]
                total += 1
        return done, total

    def run(self, *, wait: bool = True, poll_seconds: float = 2.0) -> None:
        """Work until nothing is claimable; with `wait`, then wait for other workers to finish theirs."""
        while True:
            while self.step():
                pass
            if not wait or self.finished():
                return
            time.sleep(poll_seconds)  # others are running units; stale ones are reclaimed on the next pass

    # export ------------------------------------------------------------------------------------------
    def export(self) -> None:
        """Write trials.csv and runs.csv from the storage (atomically): they always agree with it."""
        trial_rows, run_rows = [], []
        for plan in self.plans:
            if self.sweep.tunes:
                for t in self.study(plan.study, plan.direction).get_trials(deepcopy=False):
                    if not _counts(t) or _alive(t):
                        continue
                    a = t.user_attrs
                    trial_rows.append({"ablation": self.ablation.name, "variant": plan.variant, "task": plan.task,
                                       "trial": t.number, "status": a.get("status", t.state.name.lower()),
                                       **{k: t.params.get(k) for k in SPACE_KEYS}, "val_score": a.get("val_score"),
                                       "steps": a.get("steps"), "wall_seconds": a.get("wall_seconds"),
                                       "seed": a.get("seed"), "run_dir": a.get("run_dir"), "error": a.get("error"),
                                       "study": plan.study})
            for seed in self.seeds:
                for t in self.study(plan.final_study(seed), plan.direction).get_trials(deepcopy=False):
                    if _counts(t) and not _alive(t) and "row" in t.user_attrs:
                        run_rows.append(json.loads(t.user_attrs["row"]))
        if self.sweep.tunes:
            _write_csv(self.out / "trials.csv", pd.DataFrame(trial_rows, columns=TRIAL_COLUMNS))
        _write_csv(self.out / "runs.csv", pd.DataFrame(run_rows).reindex(columns=COLUMNS + ["tuned_params"]))


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_text_atomic(path, buffer.getvalue())


# --- several workers on this machine ---------------------------------------------------------------------

def _worker_process(out: str, ablation: dict, plans: list, sweep: dict, seeds: list, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    worker = Worker(Path(out), Ablation.from_dict(ablation), [CellPlan(**p) for p in plans],
                    SweepConfig.from_dict(sweep), seeds)
    worker.run(wait=False)


def start_local_workers(worker: Worker, n: int) -> list:
    """Start n extra worker processes beside this one, splitting the CPU threads between all of them."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // (n + 1))
    torch.set_num_threads(threads)
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(n):
        process = context.Process(target=_worker_process, daemon=False, args=(
            str(worker.out), dataclasses.asdict(worker.ablation), [dataclasses.asdict(p) for p in worker.plans],
            dataclasses.asdict(worker.sweep), list(worker.seeds), threads))
        process.start()
        processes.append(process)
    return processes
