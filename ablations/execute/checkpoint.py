"""Checkpoints (`trainer.checkpoint=none|last|best`): which weights a run keeps, and how to load them back.

Why: a trained model is something to probe (damage tolerance, attention maps) after the run, not only a score.
A run writes `run_dir/checkpoints/last.ckpt` (its weights at its last validation, which `run.FinalValidation`
puts after its last update) or `best.ckpt` (at its best validation by the task's metric, in the task's
direction), through Lightning's `ModelCheckpoint(save_weights_only=True)`; a stacked member writes the same file
format at the same validations (`StackedCheckpoint`). Only tensors and plain values are in the file, so
`torch.load(weights_only=True)` reads it without running any pickled code.

    from ablations.execute.checkpoint import load_model
    model = load_model("results/train/copy/baseline-s0", which="last")   # result.json's config, eval mode
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

#: The checkpoint folder inside a run directory.
FOLDER = "checkpoints"
#: The prefix of the model's parameters in the checkpoint's state_dict (`module.AblationModule.model`).
PREFIX = "model."


def path(run_dir, which: str) -> Path:
    """Where a run's `which` (last | best) checkpoint lies."""
    return Path(run_dir) / FOLDER / f"{which}.ckpt"


def clear(run_dir) -> None:
    """Remove an earlier run's checkpoints from `run_dir`: a rerun must not leave the last one's weights behind."""
    shutil.rmtree(Path(run_dir) / FOLDER, ignore_errors=True)


def callback(which: str, run_dir, task) -> ModelCheckpoint | None:
    """Lightning's ModelCheckpoint for `trainer.checkpoint=which`, or None for `none`. It saves when a validation
    ends (the Trainer validates every `val_every` steps, not per epoch), `best` by `val/<task.metric>`."""
    if which == "none":
        return None
    options = dict(dirpath=str(Path(run_dir) / FOLDER), filename=which, save_weights_only=True, save_top_k=1,
                   enable_version_counter=False, auto_insert_metric_name=False, save_on_train_epoch_end=False)
    if which == "best":
        options.update(monitor=f"val/{task.metric}", mode="max" if task.higher_is_better else "min")
    return ModelCheckpoint(**options)


class StackedCheckpoint:
    """A stacked member's checkpoint, written as `callback`'s ModelCheckpoint writes an unstacked run's: after each
    validation (`last`), or after a validation whose metric is strictly better than the best so far (`best`; a NaN
    counts as the worst value, the first validation always saves), with the same keys in the file."""

    def __init__(self, which: str, run_dir, task):
        self.which, self.run_dir = which, Path(run_dir)
        self.metric, self.higher = f"val/{task.metric}", task.higher_is_better
        self.best: float | None = None

    def validated(self, model: torch.nn.Module, steps: int, val: dict) -> None:
        if self.which == "none":
            return
        if self.which == "best":
            value = val.get(self.metric, math.nan)
            value = value if math.isfinite(value) else (-math.inf if self.higher else math.inf)
            if self.best is not None and not (value > self.best if self.higher else value < self.best):
                return
            self.best = value
        target = path(self.run_dir, self.which)
        target.parent.mkdir(parents=True, exist_ok=True)
        state = {PREFIX + k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save({"epoch": 0, "global_step": steps, "pytorch-lightning_version": pl.__version__,
                    "state_dict": state}, target)


def load_state_dict(run_dir, which: str = "last", map_location="cpu") -> dict:
    """The model's parameters and buffers from a run's checkpoint (read with `weights_only=True`)."""
    file = path(run_dir, which)
    if not file.is_file():
        raise FileNotFoundError(f"no {which} checkpoint in {run_dir} (was it run with trainer.checkpoint={which}?)")
    checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    return {k.removeprefix(PREFIX): v for k, v in checkpoint["state_dict"].items() if k.startswith(PREFIX)}


def run_config(run_dir):
    """The `RunConfig` a run's result.json records (its `trainer.logger` as `csv`)."""
    from ablations.config import OptimConfig, RunConfig, TrainerConfig
    from models.config import ModelConfig

    values = json.loads((Path(run_dir) / "result.json").read_text())["config"]
    # where it logged does not change the model, and its logger's package need not be installed where it is loaded
    values["trainer"] = {**values["trainer"], "logger": "csv"}
    return RunConfig(model=ModelConfig.from_dict(values["model"]), task=dict(values["task"]),
                     optim=OptimConfig(**values["optim"]), trainer=TrainerConfig(**values["trainer"]),
                     seed=values["seed"])


def load_model(run_dir, which: str = "last", map_location="cpu") -> torch.nn.Module:
    """The run's model, rebuilt by `run.build` from its result.json config, with its `which` (last | best)
    checkpoint's weights loaded, in eval mode."""
    from ablations.execute.run import build

    _, model = build(run_config(run_dir))
    model.load_state_dict(load_state_dict(run_dir, which, map_location))
    return model.to(map_location).eval()
