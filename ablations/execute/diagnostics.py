"""Diagnostics of how a transformer learns, measured per layer during training.

Why: the claims this suite tests are about mechanisms, not only final scores. "Residual branches contribute
nothing at initialisation, so later layers kick in over training" is a statement about each branch's size
relative to the stream; "residuals let the gradient reach the first layer" is one about gradient norms by
depth; "without residuals and MLPs, attention collapses tokens toward rank one" is one about the spread of the
token representations. The `Diagnostics` callback measures each of these on a fixed probe batch from the
validation split (eval mode, no gradient, no randomness: training is bit-identical with or without it) at step
0, every `every` steps and at the end (or, with `trainer.diagnostics_schedule=geometric`, densely at the start
and ever more sparsely later: see `schedule_steps`), and `run.train` writes them to `diagnostics.csv` in the run
directory,
one tidy row per (step, layer, branch, head, metric):

- `branch_ratio`: ||branch output|| / ||stream it is added to|| (Frobenius norms over the probe batch), per block
  and branch (`attn`, `ffn`). Zero for a zero-initialised branch. Under `residual=none` the branch replaces the
  stream rather than adding to it, and the ratio compares the two.
- `update_ratio`: ||stream after the sublayer - stream before|| / ||stream before||: how much the sublayer
  changed the stream, whatever its residual mode and norm placement (a ReZero gate at 0 gives 0).
- `grad_norm`: the gradient norm of each block's parameters (and `layer` 0 = the input embedding, and
  `layer` L+1 = the output head), measured on the training batch of that step.
- `token_spread`: ||X - 1 mean(X)|| / ||X|| of each sequence's token representations X (tokens x width)
  after `layer` blocks (0: the embedding), averaged over the probe sequences. Zero means every token carries the
  same vector, the rank-one collapse of Dong et al. (2021, https://arxiv.org/abs/2103.03404), whose residual
  res(X) = X - 1 x^T this is, normalised.
- `rank1_residual`: sqrt(1 - s1^2 / sum s_i^2) of the same X: the relative distance to its best rank-one
  approximation (0: exactly rank one).
- `attention_entropy`: mean entropy (nats) of each head's attention distribution over the keys, per block and
  head; absent for kernelised attention, which never forms the distribution.

`ablations.analyse.diagnostics.loss_events` finds loss spikes in the run's training-loss log (see its docstring); divergence itself is the
run's `diverged` status and `diverged_step`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch

from ablations.analyse.diagnostics import COLUMNS, _row, loss_events
from ablations.store.files import write_text_atomic

PROBE_SIZE = 16
#: `trainer.diagnostics_schedule`: `every` (step 0, every `diagnostics_every` steps, the last) or `geometric`
SCHEDULES = ("every", "geometric")
#: under the geometric schedule each gap is this fraction of the step reached (at least 1, at most `every`)
GEOMETRIC_GROWTH = 0.25


def schedule_steps(every: int, max_steps: int, schedule: str = "every") -> list[int]:
    """The steps at which diagnostics are measured, 0 and `max_steps` included.

    Why the geometric schedule: what changes fast changes early. A layer's onset within the first hundred steps
    is invisible at a fixed interval of 25 (every onset reads "25"), while a fixed interval of 1 would measure
    thousands of late steps where nothing moves. Geometric steps (0, 1, 2, ..., 8, 10, 12, 15, 18, 22, ...: each
    gap a quarter of the step reached, capped at `every`) resolve onsets to within 25% of when they happen, at
    any time, for about 30 + max_steps / every measurements."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown diagnostics schedule '{schedule}'; valid: {', '.join(SCHEDULES)}")
    if every <= 0:
        return []
    if schedule == "every":
        steps = list(range(0, max_steps + 1, every))
    else:
        steps, step = [], 0
        while step <= max_steps:
            steps.append(step)
            step += max(1, min(every, int(step * GEOMETRIC_GROWTH)))
    return steps if steps[-1] == max_steps else [*steps, max_steps]


def _norm(x: torch.Tensor) -> float:
    return float(x.detach().double().pow(2).sum().sqrt())


def token_spread(h: torch.Tensor) -> torch.Tensor:
    """Per sequence: ||X - 1 mean(X)||_F / ||X||_F for X = h[i] of shape (time, width)."""
    h = h.detach().double()
    centred = h - h.mean(dim=1, keepdim=True)
    return centred.flatten(1).norm(dim=1) / h.flatten(1).norm(dim=1).clamp_min(1e-30)


def rank1_residual(h: torch.Tensor) -> torch.Tensor:
    """Per sequence: the relative Frobenius distance of X = h[i] to its best rank-one approximation."""
    h = h.detach().double()
    if not torch.isfinite(h).all():  # a diverging model: the SVD would raise; the run's status says why
        return torch.full(h.shape[:1], float("nan"), dtype=torch.float64)
    s = torch.linalg.svdvals(h)
    return (1.0 - s[:, 0] ** 2 / (s ** 2).sum(dim=1).clamp_min(1e-30)).clamp_min(0.0).sqrt()


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) per head of attention weights (batch, heads, queries, keys), each row a distribution
    (rows that do not sum to one, as with sigmoid or ReLU attention, are renormalised first)."""
    w = weights.detach().double().clamp_min(0.0)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-30)
    return -(w * torch.log(w.clamp_min(1e-300))).sum(-1).mean(dim=(0, 2))


class Probe:
    """Runs a model on a batch with hooks on every block and returns the activation diagnostics as rows."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def measure(self, inputs: torch.Tensor, step: int) -> list[dict]:
        model, sums, spreads, entropies, handles = self.model, {}, {}, {}, []

        def add(key, value):
            sums[key] = sums.get(key, 0.0) + value

        def sublayer(layer, branch, place, module):
            stream = {}

            def before(_, args):
                stream["in"] = args[0]

            def after(_, args, output):
                x = stream.pop("in")
                add((layer, branch, "update"), _norm(output - x) ** 2)
                add((layer, branch, "stream"), _norm(x) ** 2)

            def branch_out(_, args, output):
                add((layer, branch, "branch"), _norm(output) ** 2)
                if branch == "attn" and hasattr(module, "attention_weights"):
                    weights = module.attention_weights(*args)
                    if weights is not None:
                        entropies.setdefault(layer, []).append(attention_entropy(weights))

            handles.extend([place.register_forward_pre_hook(before), place.register_forward_hook(after),
                            module.register_forward_hook(branch_out)])

        def depth(layer):
            def after(_, args, output):
                spreads.setdefault(layer, []).append(output)
            return after

        blocks = list(model.blocks)
        handles.append(blocks[0].register_forward_pre_hook(lambda _, args: spreads.setdefault(0, []).append(args[0])))
        for i, block in enumerate(blocks, 1):
            for branch in ("attn", "ffn"):
                if getattr(block, branch) is not None:
                    sublayer(i, branch, getattr(block, f"{branch}_place"), getattr(block, branch))
            handles.append(block.register_forward_hook(depth(i)))
        was_training = model.training
        model.eval()
        try:
            model(inputs)
        finally:
            model.train(was_training)
            for handle in handles:
                handle.remove()
        rows = []
        for (layer, branch, kind), total in sorted(sums.items()):
            if kind == "stream":
                continue
            stream = math.sqrt(sums[(layer, branch, "stream")])
            metric = "branch_ratio" if kind == "branch" else "update_ratio"
            rows.append(_row(step, layer, branch, -1, metric, math.sqrt(total) / max(stream, 1e-30)))
        for layer, outputs in sorted(spreads.items()):
            h = torch.cat([o for o in outputs], dim=1) if len(outputs) > 1 else outputs[0]  # segments: whole sequence
            rows.append(_row(step, layer, "", -1, "token_spread", float(token_spread(h).mean())))
            rows.append(_row(step, layer, "", -1, "rank1_residual", float(rank1_residual(h).mean())))
        for layer, values in sorted(entropies.items()):
            for head, value in enumerate(torch.stack(values).mean(0).tolist()):
                rows.append(_row(step, layer, "attn", head, "attention_entropy", value))
        return rows


def gradient_rows(model, step: int) -> list[dict]:
    """Gradient norm of the embedding (layer 0), every block (1..L) and the head (L+1), after a backward pass."""
    groups = [model.embed] + list(model.blocks) + [model.head]
    norms = []
    for group in groups:
        grads = [p.grad.detach().double().pow(2).sum() for p in group.parameters() if p.grad is not None]
        norms.append(torch.stack(grads).sum().sqrt() if grads else torch.zeros((), dtype=torch.float64))
    values = torch.stack([n.to(norms[0].device) for n in norms]).tolist()  # one host sync
    return [_row(step, layer, "", -1, "grad_norm", value) for layer, value in enumerate(values)]


class Diagnostics(pl.Callback):
    """Measures the diagnostics above at the steps of `schedule_steps(every, max_steps, schedule)`.

    The Lightning hooks only decide when; `due`, `measure` and `gradients` take the model itself, so that a
    stacked run (`ablations.execute.stack`) measures each member on its own parameters at the same steps."""

    def __init__(self, every: int, probe_inputs: torch.Tensor, schedule: str = "every"):
        self.every = every
        self.schedule = schedule
        schedule_steps(every, 0, schedule)  # an unknown schedule fails here, before any training
        self.probe_inputs = probe_inputs[:PROBE_SIZE]
        self.rows: list[dict] = []
        self._measured: set[int] = set()
        self._due: dict[int, frozenset] = {}

    def due(self, step: int, max_steps: int) -> bool:
        if max_steps not in self._due:
            self._due[max_steps] = frozenset(schedule_steps(self.every, max_steps, self.schedule))
        return step in self._due[max_steps]

    def measure(self, model, step: int, device) -> None:
        """The activation diagnostics of `model` at `step` (once per step)."""
        if step in self._measured:
            return
        self._measured.add(step)
        self.rows.extend(Probe(model).measure(self.probe_inputs.to(device), step))

    def gradients(self, model, step: int) -> None:
        """The gradient norms of `model` at `step`, after its backward pass."""
        self.rows.extend(gradient_rows(model, step))

    def on_train_start(self, trainer, pl_module):
        self.measure(pl_module.model, 0, pl_module.device)

    def on_after_backward(self, trainer, pl_module):
        if self.due(trainer.global_step, trainer.max_steps):
            self.gradients(pl_module.model, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.due(trainer.global_step, trainer.max_steps):
            self.measure(pl_module.model, trainer.global_step, pl_module.device)

    def on_train_end(self, trainer, pl_module):
        self.measure(pl_module.model, trainer.global_step, pl_module.device)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def write(self, run_dir: Path, metrics_csv: Path | None = None) -> None:
        """`diagnostics.csv` in the run directory (atomically), with the loss spikes of the run's log added."""
        frame = self.frame()
        if metrics_csv is not None:
            frame = pd.concat([frame, loss_events(metrics_csv)], ignore_index=True)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        write_text_atomic(Path(run_dir) / "diagnostics.csv", buffer.getvalue())
