"""Damage tolerance: how much of a trained model's test score survives when part of it is removed or perturbed.

Why: large language models tolerate removing many of their middle layers (Gromov et al. 2024,
arXiv:2403.17887; Sun et al. 2024, "Transformer Layers as Painters", arXiv:2407.09298) and most of their heads
(Michel et al. 2019, arXiv:1905.10650). Whether that holds for small models, and for which variants, is measured
here on the kept checkpoints (`trainer.checkpoint=last`) of a results directory. Each run's model is evaluated
on its task's test split (the split the run itself was tested on: `make_split("test", n, seed)` with the run's
seed), with the suite's own scoring (`execute.module.evaluate`), intact and under each damage:

- `layer`: one block removed (skipped: the residual stream passes through it unchanged);
- `head`: one attention head removed (its slice of the attention output zeroed before the output projection);
- `noise`: Gaussian noise on every parameter tensor, of std `scale` x that tensor's own std, a few fixed draws;
- `int8`: every weight matrix rounded to int8 (per-tensor symmetric absmax) and back.

Each damage acts on a copy of the model; scoring is batched over the split (no loop over examples).
`damage(directory)` writes `damage.csv` (COLUMNS, one row per run x damage) atomically and returns it.
`retained` is the damaged score normalised as the report normalises (`aggregate.normalise`): chance 0, the
run's intact score 1.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pandas as pd
import torch

from ablations.analyse.aggregate import normalise
from ablations.store.directory import ResultsDir
from ablations.store.files import write_file_atomic
from models.errors import ConfigError

#: the file `damage(directory)` writes in the results directory
FILE = "damage.csv"
#: relative noise scales: noise std = scale x each parameter tensor's own std
SCALES = (0.01, 0.03, 0.1, 0.3)
#: the seeds of the noise draws at each scale (fixed: the same damage on every run)
DRAWS = (0, 1, 2)
#: the checkpoint damage loads (`trainer.checkpoint=last`)
WHICH = "last"
KINDS = ("layer", "head", "noise", "int8")
COLUMNS = ["variant", "task", "seed", "metric", "higher_is_better", "chance", "damage", "target", "layer",
           "head", "scale", "draw", "score", "intact", "retained", "run_dir"]


# ----------------------------------------------------------------------------------------------- the damages
def remove_layer(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    """A copy of `model` whose block `layer` is skipped: with neither branch the block returns its input, so the
    stream passes through (the layer pruning of Gromov et al. 2024, arXiv:2403.17887, and the skipped layer of
    Sun et al. 2024, arXiv:2407.09298). Memories that look at `block.attn` treat it as a block without attention."""
    damaged = copy.deepcopy(model)
    block = damaged.blocks[layer]
    block.attn = block.ffn = None  # Block.forward runs only the branches that exist
    return damaged


def n_heads(block) -> int:
    """The attention heads of a block whose heads reach an output projection as (b, t, h * hd), as every
    `MultiHeadAttention` lays them out (0 when it has no attention sublayer, or one laid out otherwise)."""
    attn = block.attn
    if attn is None or not all(hasattr(attn, a) for a in ("n_heads", "head_dim", "out_proj")):
        return 0
    return attn.n_heads if attn.out_proj.in_features == attn.n_heads * attn.head_dim else 0


@torch.no_grad()
def remove_head(model: torch.nn.Module, layer: int, head: int) -> torch.nn.Module:
    """A copy of `model` with head `head` of block `layer` removed, whatever the attention variant: the heads'
    outputs (b, h, t, hd) reach `out_proj` as (b, t, h * hd) (models/attention/_base.py), so zeroing the input
    columns head*hd .. (head+1)*hd of the output projection removes exactly that head's contribution (head
    masking as in Michel et al. 2019, arXiv:1905.10650)."""
    damaged = copy.deepcopy(model)
    attn = damaged.blocks[layer].attn
    width = attn.head_dim
    attn.out_proj.weight[:, head * width:(head + 1) * width] = 0.0
    return damaged


@torch.no_grad()
def add_noise(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """A copy of `model` with N(0, (scale x std(tensor))^2) noise added to every parameter tensor of more than one
    element, drawn from a generator seeded with `seed` (the same draw for every run of the same shapes). A tensor
    with no spread (an untrained norm gain of ones) gets none: its relative scale is zero."""
    damaged = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    for parameter in damaged.parameters():  # shared (tied) tensors appear once
        if parameter.numel() < 2 or not parameter.is_floating_point():
            continue
        std = parameter.detach().float().std()
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
        parameter.add_((noise * (scale * std.cpu())).to(parameter.device, parameter.dtype))
    return damaged


@torch.no_grad()
def round_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with every weight matrix (a parameter of two or more dimensions) quantised to int8 and
    back: per-tensor symmetric absmax, w -> round(w / s).clamp(-127, 127) * s with s = max|w| / 127."""
    damaged = copy.deepcopy(model)
    for parameter in damaged.parameters():
        if parameter.dim() < 2 or not parameter.is_floating_point():
            continue
        step = parameter.abs().max() / 127.0
        if step > 0:
            parameter.copy_(torch.round(parameter / step).clamp(-127, 127) * step)
    return damaged


def damages(model: torch.nn.Module, scales=SCALES, draws=DRAWS):
    """Every damage of `model`: (fields of its damage.csv row, a function returning the damaged copy). Lazy, so
    that one damaged copy lives at a time."""
    for layer in range(len(model.blocks)):
        yield {"damage": "layer", "target": f"layer {layer}", "layer": layer}, \
            lambda layer=layer: remove_layer(model, layer)
    for layer, block in enumerate(model.blocks):
        for head in range(n_heads(block)):
            yield {"damage": "head", "target": f"layer {layer} head {head}", "layer": layer, "head": head}, \
                lambda layer=layer, head=head: remove_head(model, layer, head)
    for scale in scales:
        for draw in draws:
            yield {"damage": "noise", "target": f"noise {scale:g}", "scale": scale, "draw": draw}, \
                lambda scale=scale, draw=draw: add_noise(model, scale, draw)
    yield {"damage": "int8", "target": "int8"}, lambda: round_int8(model)


# ---------------------------------------------------------------------------------------------- evaluation
def split_batches(task, seed: int, batch_size: int):
    """The run's test split, in the batches the run was tested with (tasks.datamodule.OrderedBatches)."""
    from tasks.datamodule import OrderedBatches

    return OrderedBatches(task.make_split("test", task.split_size("test"), seed), batch_size)


def score(model: torch.nn.Module, batches, metric: str) -> float:
    """The task's metric of `model` on `batches`, computed as the run computed its test score."""
    from ablations.execute.module import evaluate

    return evaluate(model, batches, next(model.parameters()).device)[metric]


def damage_run(run_dir: Path, *, scales=SCALES, draws=DRAWS) -> list[dict]:
    """The damage.csv rows of one run (without its variant, task and seed columns)."""
    from ablations.execute.checkpoint import load_model, run_config
    from tasks import TASKS

    cfg = run_config(run_dir)
    task = TASKS.get(cfg.task["name"])(**{k: v for k, v in cfg.task.items() if k != "name"})
    model = load_model(run_dir, WHICH)
    batches = split_batches(task, cfg.seed, cfg.trainer.eval_batch_size)
    intact = score(model, batches, task.metric)
    rows = []
    for fields, make in damages(model, scales, draws):
        value = score(make(), batches, task.metric)
        rows.append({"metric": task.metric, "higher_is_better": task.higher_is_better, "chance": task.chance,
                     **fields, "score": value, "intact": intact,
                     "retained": normalise(value, task.chance, intact, task.higher_is_better)})
    return rows


def damage(directory, *, scales=SCALES, draws=DRAWS) -> tuple[pd.DataFrame, list[str]]:
    """Evaluate every kept checkpoint of the results directory under every damage; write `damage.csv` there.

    Returns (the table, notes): a note says how many runs were skipped for having no checkpoint. A directory in
    which no run kept one is a ConfigError naming `trainer.checkpoint=last`."""
    from ablations.execute.checkpoint import path as checkpoint_path

    results = ResultsDir(directory)
    if not results.has_runs():
        raise ConfigError(f"{results.path} is not a results directory (no runs.csv); give the out= directory of "
                          f"an `ablate run`, e.g. results/default")
    runs = results.read_runs()
    runs = runs[runs["status"] == "ok"]
    rows, skipped = [], 0
    for run in runs.itertuples(index=False):
        run_dir = results.path / str(run.run_dir)
        if not checkpoint_path(run_dir, WHICH).is_file():
            skipped += 1
            continue
        for row in damage_run(run_dir, scales=scales, draws=draws):
            rows.append({"variant": run.variant, "task": run.task, "seed": int(run.seed), **row,
                         "run_dir": str(run.run_dir)})
    if not rows:
        raise ConfigError(f"no run in {results.path} kept a checkpoint: run the ablation with "
                          f"trainer.checkpoint=last (e.g. `ablate run out={results.path} trainer.checkpoint=last`)")
    notes = [f"{skipped} of {len(runs)} runs skipped: no {WHICH} checkpoint (run with trainer.checkpoint=last)"] \
        if skipped else []
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for column in ("layer", "head", "draw"):
        frame[column] = frame[column].astype("Int64")
    write(results.path, frame)
    return frame, notes


def write(directory: Path, frame: pd.DataFrame) -> Path:
    """damage.csv in `directory`, atomically."""
    target = Path(directory) / FILE
    write_file_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))
    return target


def read(directory) -> pd.DataFrame | None:
    """damage.csv of a results directory, or None when there is none; a damaged one is a one-line ConfigError
    naming it (the suite writes it atomically, so damage came from outside)."""
    target = Path(directory) / FILE
    if not target.is_file():
        return None
    try:
        frame = pd.read_csv(io.StringIO(target.read_text()), keep_default_na=False, na_values=[""])
    except (ValueError, UnicodeDecodeError) as error:  # pandas' parse errors are ValueErrors
        raise ConfigError(f"{target} is corrupted ({type(error).__name__}: {str(error).splitlines()[0]}); rerun "
                          f"`ablate damage {directory}`") from error
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{target} is not a damage table (missing columns: {', '.join(missing)}); rerun "
                          f"`ablate damage {directory}`")
    return frame
