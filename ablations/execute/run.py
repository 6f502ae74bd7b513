"""One run: a `RunConfig` in, a result row out, `result.json` and the Lightning CSV log in its directory.

A run never raises because the model misbehaves: divergence ends it with status `diverged`, any other error
inside training with status `failed` and the error message kept. Only invalid configuration (caught before any
work) raises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
import traceback
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from optuna.exceptions import TrialPruned

from ablations import __version__
from ablations.config import RunConfig
from ablations.execute import checkpoint as checkpoints
from ablations.execute.diagnostics import Diagnostics
from ablations.execute import loggers
from ablations.execute.module import AblationModule, Divergence, evaluate
from ablations.execute.signals import Interrupted
from ablations.store.files import write_json_atomic
from models import build_model
from tasks import TASKS
from tasks.datamodule import OrderedBatches, TaskDataModule

# Lightning's start-up chatter (which accelerators exist, "seed set") and its advice to add DataLoader workers,
# which is wrong for data already in memory, would drown the one line a user wants per run.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*`training_step` returned `None`.*")  # our divergence stop
# Under ddp every rank validates on the whole split, so the logged validation metrics agree without a sync.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\('val/.*sync_dist=True.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")  # lightning vs torch


def resolve_hardware(accelerator: str, precision: str) -> tuple[str, str]:
    """`auto` means a GPU in bf16 mixed precision when one is present, else the CPU in float32."""
    gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if accelerator == "auto":
        accelerator = "gpu" if gpu else "cpu"
    if precision == "auto":
        precision = "bf16-mixed" if gpu else "32-true"
    return accelerator, precision


class FinalValidation(pl.Callback):
    """Ends the fit at its last batch the way any stop ends it, so that every run validates after its last update
    (`module.validation_due`) and its last checked loss reaches metrics.csv.

    Lightning validates every `val_check_interval` batches only, so a run whose budget is below `val_every`, or
    off its multiples, would end without validating its last parameters: no validation score (a sweep's trial then
    has nothing to be ranked by) and, below `val_every`, no learning curve at all. And at a plain end Lightning
    never writes a training loss still waiting for its `log_every` row (checked at step 28 of 30 with log_every 7,
    say). With `should_stop` set after the last update, Lightning's own loop writes that loss row and validates
    once, also on a multiple of `val_every` (one decision per batch, so never twice), as it does for a diverged
    run: the pruning callback sees that validation, the CSV logger writes its row once, and `callback_metrics`
    holds its values for the result row. The stacked runs write the same rows (`stack._after_batch`)."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.max_steps:  # updates done, this batch's included
            trainer.should_stop = True  # read by Lightning when it logs this batch and decides whether to validate


def build(cfg: RunConfig):
    """The task and the model a config describes."""
    params = {k: v for k, v in cfg.task.items() if k != "name"}
    task = TASKS.get(cfg.task["name"])(**params)
    model = build_model(cfg.model, vocab_size=task.vocab_size, input_dim=task.input_dim, out_dim=task.n_classes,
                        causal=task.causal, head="token" if task.output_kind == "token" else cfg.model.pool,
                        max_len=task.max_len())
    return task, model


def train(cfg: RunConfig, run_dir: Path, *, variant: str, ablation: str = "", callbacks=()) -> dict:
    """Train and test one configuration; write `result.json` in `run_dir`; return the result row.
    `callbacks` are extra Lightning callbacks (a sweep's pruning callback); one that raises
    `optuna.TrialPruned` ends the run with status `pruned`. The run validates every `trainer.val_every` steps and
    after its last one (`FinalValidation`), so a run that trains to its end always has a validation score.

    Everything the run does is inside one guard: building the model and the data (an allocation that fails),
    the Trainer, the fit, the test and the diagnostics; any error ends the run `failed` with its message kept
    (and the traceback in error.txt), never the grid. An interruption (`signals.Interrupted`) is not a result:
    the partial log is removed and the exception goes on, so that the unit is redone on resume."""
    run_dir = Path(run_dir)
    created = new_folders(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").unlink(missing_ok=True)  # a rerun must not append to an earlier run's log
    checkpoints.clear(run_dir)  # nor keep an earlier run's weights
    loggers.clear(run_dir)  # nor its TensorBoard, MLflow or W&B log
    task = TASKS.get(cfg.task["name"])(**{k: v for k, v in cfg.task.items() if k != "name"})  # validated already
    accelerator, precision = resolve_hardware(cfg.trainer.accelerator, cfg.trainer.precision)
    status, error, metrics, val = "ok", "", {}, {}
    model = module = trainer = data = None
    n_params = seq_len = None
    start = time.perf_counter()
    wall = 0.0
    try:
        try:
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            task, model = build(cfg)
            n_params = sum(p.numel() for p in model.parameters())
            data = TaskDataModule(task, cfg.optim.batch_size, cfg.seed, cfg.trainer.eval_batch_size)
            seq_len = data.split("train").inputs.shape[1]
            module = AblationModule(model, cfg.optim, cfg.trainer.max_steps, cfg.trainer.log_every,
                                    cfg.trainer.divergence_factor)
            callbacks = [*callbacks, FinalValidation(cfg.trainer.max_steps)]
            saving = checkpoints.callback(cfg.trainer.checkpoint, run_dir, task)  # trainer.checkpoint: none|last|best
            if saving is not None:
                callbacks.append(saving)
            diagnostics = None
            if cfg.trainer.diagnostics_every:
                diagnostics = Diagnostics(cfg.trainer.diagnostics_every, data.split("val").inputs,
                                          cfg.trainer.diagnostics_schedule)
                callbacks.append(diagnostics)
            trainer = pl.Trainer(
                max_steps=cfg.trainer.max_steps, accelerator=accelerator, devices=cfg.trainer.devices,
                strategy=cfg.trainer.strategy,
                precision=precision,
                logger=[CSVLogger(str(run_dir), name="", version=""),  # always: the suite reads it
                        *loggers.extra_loggers(cfg.trainer.logger, run_dir, f"{variant}.{run_dir.name}")],
                val_check_interval=cfg.trainer.val_every, check_val_every_n_epoch=None,
                log_every_n_steps=cfg.trainer.log_every, num_sanity_val_steps=0, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=saving is not None,
                deterministic=not torch.cuda.is_available(),
                gradient_clip_val=cfg.trainer.grad_clip or None, gradient_clip_algorithm="norm",
                callbacks=callbacks)
            try:
                trainer.fit(module, datamodule=data)
            except TrialPruned as exc:
                status, error = "pruned", str(exc)
            except Exception as exc:  # a crash inside training is a result, with its message kept
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                (run_dir / "error.txt").write_text(traceback.format_exc())
            wall = time.perf_counter() - start
            if module.diverged_step is not None and status in ("ok", "failed"):
                status = "diverged"  # an error after the loss blew up (non-finite activations) is its doing
            if not trainer.is_global_zero:  # other ranks of a distributed run: rank 0 tests and writes the result
                return {}
            val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            if diagnostics is not None:  # also for diverged, pruned and failed runs: how they got there is the point
                diagnostics.write(run_dir, run_dir / "metrics.csv")
            if status == "ok":
                device = next(model.parameters()).device
                metrics = evaluate(model, OrderedBatches(data.split("test"), cfg.trainer.eval_batch_size), device)
                status = final_check(module.divergence, trainer.global_step, val, metrics)
                if status == "diverged":
                    metrics = {}
        except Exception as exc:  # a crash anywhere else in the run (building, testing) is a result too
            status, error, metrics = "failed", f"{type(exc).__name__}: {exc}", {}
            (run_dir / "error.txt").write_text(traceback.format_exc())
            if trainer is not None and not trainer.is_global_zero:
                return {}
    except Interrupted:
        remove_partial_run(run_dir, created)
        raise
    wall = wall or time.perf_counter() - start
    if n_params is None:
        n_params = count_params(cfg)
    divergence = module.divergence if module is not None else Divergence(cfg.trainer.divergence_factor)
    if divergence.diverged_step is not None and status == "failed":
        status = "diverged"  # as above: a later error of a run whose loss had blown up
    return finish_run(cfg, run_dir, task=task, variant=variant, ablation=ablation, status=status, error=error,
                      steps=trainer.global_step if trainer is not None else 0, val=finite_only(val),
                      test_metrics=metrics, divergence=divergence, wall=wall, n_params=n_params, seq_len=seq_len,
                      accelerator=accelerator, precision=precision,
                      world_size=trainer.world_size if trainer is not None else 1)


def count_params(cfg: RunConfig) -> int | None:
    """The parameter count of a model that could not be allocated, from a build on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            _, model = build(cfg)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - a component that cannot be built without data: the count is unknown
        return None


def finite_only(values: dict) -> dict:
    """Metrics with non-finite values left out (a diverged run keeps its last finite figures)."""
    return {k: v for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def final_check(divergence: Divergence, steps: int, val: dict, test_metrics: dict) -> str:
    """The divergence check at the very end: a run that trained to the end but whose last validation or test
    loss is not finite (the last updates blew it up between two checks) diverged after its last step."""
    losses = [val.get("val/loss"), test_metrics.get("loss")]
    if any(v is not None and not math.isfinite(v) for v in losses):
        divergence.mark(steps)
        return "diverged"
    return "ok"


#: The files a run writes in its directory while it trains (the Lightning CSV log); result.json, error.txt and
#: diagnostics.csv are written only when it ends.
PARTIAL_FILES = ("metrics.csv", "hparams.yaml")


def new_folders(run_dir: Path) -> list[Path]:
    """The folders that creating `run_dir` would make, innermost first."""
    folders, folder = [], Path(run_dir)
    while not folder.exists() and folder.parent != folder:
        folders.append(folder)
        folder = folder.parent
    return folders


def remove_partial_run(run_dir: Path, created: list[Path]) -> None:
    """What an interrupted run leaves is not a result: its partial log goes, and so do the folders this run
    created (`new_folders`, before it made them), as far as they are empty."""
    run_dir = Path(run_dir)
    for name in PARTIAL_FILES:
        with contextlib.suppress(OSError):
            (run_dir / name).unlink(missing_ok=True)
    checkpoints.clear(run_dir)
    loggers.clear(run_dir)
    for folder in created:
        try:
            folder.rmdir()  # only when empty (another run may have made its own folder there meanwhile)
        except OSError:
            break


def finish_run(cfg: RunConfig, run_dir: Path, *, task, variant: str, ablation: str, status: str, error: str,
               steps: int, val: dict, test_metrics: dict, divergence, wall: float, n_params: int, seq_len: int,
               accelerator: str, precision: str, world_size: int = 1, extra: dict | None = None) -> dict:
    """Write `result.json` and return the result row: one definition for a run trained alone (`train`) and for
    each member of a stacked run (`ablations.execute.stack`), so that the two can never drift apart.
    `val` holds the last validation's `val/<name>` values, `divergence` the run's `module.Divergence`; `extra`
    adds keys to result.json only (never to the row, whose columns runs.csv fixes)."""
    row = {
        "ablation": ablation, "variant": variant, "task": task.name, "seed": cfg.seed, "status": status,
        "metric": task.metric, "higher_is_better": task.higher_is_better, "chance": task.chance,
        "score": test_metrics.get(task.metric), "val_score": val.get(f"val/{task.metric}"),
        "test_loss": test_metrics.get("loss"), "steps": steps, "diverged_step": divergence.diverged_step,
        "wall_seconds": round(wall, 3), "n_params": n_params,
        "tokens_per_second": (round(steps * cfg.optim.batch_size * world_size * seq_len / wall, 1)
                              if wall > 0 and seq_len else None),
        "config_hash": cfg.hash(), "run_dir": str(run_dir), "error": error,
    }
    result = dict(row, config=cfg.to_dict(), last_finite_train_loss=divergence.last_finite_loss,
                  solved_at=task.solved_at, test_metrics=test_metrics,
                  accelerator=accelerator, precision=precision, world_size=world_size,
                  # a CPU run's last digits depend on its thread count (README: Determinism), so it is recorded
                  torch_threads=torch.get_num_threads(),
                  versions={"suite": __version__, "torch": torch.__version__, "lightning": pl.__version__,
                            "python": platform.python_version()}, **(extra or {}))
    write_json_atomic(Path(run_dir) / "result.json", result)
    return row
