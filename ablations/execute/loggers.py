"""Loggers (`trainer.logger=csv|tensorboard|mlflow|wandb`): where a run's metrics go besides its CSV log.

Why beside and not instead: the suite itself reads `metrics.csv` (learning curves, diagnostics, the report), so the
CSV log is always written; the logger a user names is added next to it, with the same rows (Lightning writes every
row to each of its loggers; a stacked member's `stack._LossLog` does the same). Each stays on this machine unless
the user says otherwise: TensorBoard event files in `run_dir/tensorboard/`, an MLflow file store in
`run_dir/mlruns/` (or `$MLFLOW_TRACKING_URI` when set; MLflow 3 wants `MLFLOW_ALLOW_FILE_STORE=true` for a
file store, which is set for it), W&B in offline mode under `run_dir/wandb/` (or the mode
`$WANDB_MODE` names). The three are optional extras of the package; a missing one is a one-line error
before any work (`check`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

#: `trainer.logger` -> (the module it needs, the extra of this package that installs it).
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


#: The per-run MLflow stores made here: MLflow writes the last one into $MLFLOW_TRACKING_URI, where it must not be
#: mistaken for a store the user chose (the next run would log into the previous run's directory).
_OWN_STORES: set[str] = set()


#: The folders the loggers beside the CSV log write in a run directory.
FOLDERS = ("tensorboard", "mlruns", "wandb")


def clear(run_dir) -> None:
    """Remove what these loggers wrote in `run_dir`: a rerun must not add its rows to an earlier run's, and an
    interrupted run leaves no partial log (as `run.PARTIAL_FILES`)."""
    for folder in FOLDERS:
        shutil.rmtree(Path(run_dir) / folder, ignore_errors=True)


def missing(kind: str) -> str:
    """A one-line reason why `trainer.logger=kind` cannot run here, or '' when it can."""
    if kind not in NEEDS:
        return ""
    module, extra = NEEDS[kind]
    if importlib.util.find_spec(module) is None and not (kind == "tensorboard" and importlib.util.find_spec(
            "tensorboardX") is not None):
        return (f"trainer.logger={kind} needs the '{module}' package, which is not installed: "
                f"pip install 'transformer-resilience[{extra}]'")
    return ""


def extra_loggers(kind: str, run_dir, name: str = "") -> list:
    """The Lightning loggers `trainer.logger=kind` adds beside the CSV log (none for `csv`). `name`: the run's
    name in the tracking UI (default: the run directory's name)."""
    run_dir = Path(run_dir)
    name = name or run_dir.name
    if kind == "csv":
        return []
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger
        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)]
    if kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri or uri in _OWN_STORES:  # a file store per run: no server, no database shared by parallel workers
            uri = (run_dir / "mlruns").resolve().as_uri()
            _OWN_STORES.add(uri)  # mlflow.set_tracking_uri exports it to the environment: not the user's setting
            # MLflow 3 refuses its file store (in "maintenance mode") unless this opt-out is set
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return [MLFlowLogger(experiment_name="ablate", run_name=name, tracking_uri=uri)]
    if kind == "wandb":
        mode = os.environ.get("WANDB_MODE", "offline")
        return [_own_wandb_logger()(name=name, project=os.environ.get("WANDB_PROJECT", "ablate"), save_dir=str(run_dir),
                                    offline=mode == "offline", mode=mode)]
    raise ValueError(f"unknown logger {kind!r}")  # TrainerConfig validates it first


def _own_wandb_logger():
    """Lightning's WandbLogger with a W&B run of its own, finished with the run. Why: Lightning's logger reuses
    whatever W&B run is active in the process (`wandb.run`) and never finishes its own, so the second run of a worker
    and every member of a stack after the first would log into the first one's W&B run and directory. Each logger
    here starts its own (`reinit="create_new"`, W&B's way to hold several runs in one process) and finishes it in
    `finalize`."""
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import WandbLogger

    class OwnRunWandbLogger(WandbLogger):
        @property
        @rank_zero_experiment
        def experiment(self):
            if self._experiment is None:
                import wandb

                self._experiment = wandb.init(**self._wandb_init, reinit="create_new")
                self._experiment.define_metric("trainer/global_step")  # the x-axis, as Lightning's logger sets it
                self._experiment.define_metric("*", step_metric="trainer/global_step", step_sync=True)
            return self._experiment

        def finalize(self, status: str) -> None:
            super().finalize(status)
            if self._experiment is not None:
                self._experiment.finish(exit_code=0 if status == "success" else 1)

    return OwnRunWandbLogger
