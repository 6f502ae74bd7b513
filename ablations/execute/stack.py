"""Stacked runs: K runs of one architecture trained as one stacked model in one pass, each its own run.

Why: the suite's models are tiny. On a GPU one of them uses well under 1% of the device, so K runs that share an
architecture (the seeds of a cell, the trials of a sweep: they may differ in seed, hence initialisation, data
splits and batch order, and in learning rate, warmup and weight decay) cost about as much stacked as one alone.
This is HFTA's horizontal fusion of training jobs (Wang et al., MLSys 2021, https://arxiv.org/abs/2102.02344),
done generically with `torch.func`, so that a plugin component stacks without edits.

How each member stays its own run:
- Parameters: every member is built exactly as `run.train` builds it (`pl.seed_everything(seed)`, then
  `run.build`), and `torch.func.stack_module_state` stacks the K models' parameters along a new leading
  dimension, which the one optimiser updates. Two engines compute the losses and gradients (`trainer.stack_engine`;
  `auto` picks the one measured faster on the device, `AUTO_ENGINE`):
  - `vmap`: one forward is `vmap(functional_call)` over that dimension, the stacked buffers and the K batches, one
    kernel per op for all members. Each member's loss depends only on its own slice, so one backward of the summed
    losses gives each member its own gradient. For a GPU, where one tiny model leaves the device idle.
  - `loop`: each member's own module, its parameters views of its slice of the stacked storage, runs its forward
    and backward in turn, with its unstacked run's very kernels; the gradients are stacked for the update. For the
    CPU, where vmap's batched kernels are slower than the plain ones and one model already keeps the cores busy:
    what a stack saves there is the per-run harness (one update for all, no Trainer per run), not arithmetic.
- Optimiser: `StackedAdamW` is torch.optim.AdamW's update (eps, bias correction, decoupled decay, `optim.betas`
  and `optim.eps`) over the stacked tensors, with one learning rate and weight decay per member, decay only on
  parameters of dimension >= 2 per member, as `module.AblationModule` groups them; with `optim.name=adam` it is
  torch.optim.Adam's (L2 decay), and `StackedSGD` is torch.optim.SGD's (momentum). Each member's learning rate
  follows `module.lr_factor` with its own warmup and schedule, and its gradients are clipped to its own
  `trainer.grad_clip` where Lightning clips them (`_Stack.clip`).
- Batches: each member has its own `TaskDataModule` and draws from its own `train_dataloader()` stream.
- Ending: a member ends where it would have ended alone, by `module.Divergence` checked every `log_every`
  steps, by its `on_validation` callback (an Optuna trial's pruning), by an exception attributable to it (its
  own validation, diagnostics, or a failing step retried alone), or at `max_steps`. An ended member is taken
  out of the stack (its parameters and optimiser state are sliced away), so the others continue unchanged: no
  member's numbers depend on which others share its stack.
- Files: the member's parameters are loaded into its own template model for validation, test and diagnostics
  (the same `evaluate` and `Diagnostics` code as an unstacked run, at the same steps), its Lightning CSV log is
  written by Lightning's own `CSVLogger` at the rows Lightning's Trainer would have written (see `_LossLog`),
  and its row and result.json by `run.finish_run`, the function `run.train` uses; its checkpoint
  (`checkpoint.StackedCheckpoint`) and any logger beside the CSV log (`loggers.extra_loggers`) as its run alone.

Lightning: a plain loop with `lightning.fabric.Fabric` for the device and precision (`run.resolve_hardware`, the
same resolution as `run.train`; forward and validation under Fabric's autocast, the test in full precision as
in `run.train`). A `Trainer` has one global step, one `should_stop` and one logger, while K members stop,
prune, validate and log on their own; driving that through a Trainer would fight it at every step.

Default `trainer.stack` per device: 1, so that a tuned sweep's sampler sees each trial's result before it samples
the next (a stack of K samples K trials before any of them ends). Measured on the 2-core CPU (OMP_NUM_THREADS=1,
task copy, default model, 100 steps, 8 runs, benchmarks/README.md "stack engines"): 8 unstacked `train` runs took
13.1-13.8 s, one loop-engine stack of the same 8 12.2-12.8 s (0.93 of the time), a vmap stack 16.0-16.7 s (1.22).
On a GPU, where each tiny model leaves the device idle, the vmap engine is expected to pay (HFTA; not yet measured
here: no GPU session so far).

What does not stack (`stackable` says why, and the caller runs those units unstacked): several devices
(`trainer.devices` > 1), `16-mixed` precision (a loss scaler per member), dropout (the masks come from one
global random stream that a stack cannot replay per member), and, for the vmap engine only, any model whose
forward is not a pure function of its parameters and input under `vmap` (data-dependent Python control flow such
as `.item()`, in-place updates of state shared across members, random ops): `stackable` probes the architecture
once with two members and compares the stacked loss and gradients with the unstacked ones. Under the loop engine
every member runs its own module, so any such model stacks.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from lightning.pytorch.loggers import CSVLogger
from optuna.exceptions import TrialPruned
from torch.func import functional_call, stack_module_state, vmap

from ablations.config import MAX_SEED, RunConfig
from ablations.execute import checkpoint as checkpoints
from ablations.execute.diagnostics import Diagnostics
from ablations.execute import loggers
from ablations.execute.module import BETAS, Divergence, batch_scores, evaluate, lr_factor, validation_due
from ablations.execute.run import (build, count_params, final_check, finish_run, finite_only, new_folders,
                                  remove_partial_run, resolve_hardware)
from ablations.execute.signals import Interrupted
from models.components import REGISTRIES
from tasks import TASKS
from tasks.datamodule import OrderedBatches, TaskDataModule

#: What members of one stack may differ in: everything else must be equal (`stack_key`).
#: The optimiser's name, betas, eps and momentum are not: one stacked optimiser updates all members.
PER_MEMBER = {"seed": None, "optim": ("lr", "warmup_steps", "weight_decay", "schedule"),
              "trainer": ("stack", "diagnostics_every", "diagnostics_schedule", "grad_clip", "checkpoint",
                          "logger")}
EPS = 1e-8  # torch.optim.AdamW's default eps (`optim.eps`)


@dataclass
class Member:
    """One run of a stack: what `run.train` takes, plus `on_validation(step, value) -> prune?`, called after
    every validation with the number of updates done and the task's validation metric (an Optuna trial's report
    and should_prune; it may also raise optuna.TrialPruned)."""

    cfg: RunConfig
    run_dir: Path
    variant: str
    ablation: str = ""
    on_validation: Callable[[int, float], bool] | None = None


def stack_key(cfg: RunConfig) -> str:
    """Runs with equal keys may share a stack: equal in everything but seed, learning rate, warmup, weight
    decay, schedule, gradient clipping, `trainer.stack`, the diagnostics interval (each member measures its own),
    its checkpoint and its logger (`PER_MEMBER`)."""
    values = cfg.to_dict()
    values.pop("seed")
    for section in ("optim", "trainer"):
        values[section] = {k: v for k, v in values[section].items() if k not in PER_MEMBER[section]}
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --- attention without a batching rule --------------------------------------------------------------------------

_SDPA = F.scaled_dot_product_attention


class _FoldedAttention(torch.autograd.Function):
    """`F.scaled_dot_product_attention` with a vmap rule: the member dimension joins the batch dimension, so the
    stack makes one kernel call (and autograd records the kernel's own backward) instead of vmap's fallback."""

    @staticmethod
    def forward(q, k, v, mask, dropout_p, is_causal, scale, enable_gqa):
        return _SDPA(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                     enable_gqa=enable_gqa)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, mask, *options = inputs
        ctx.options = options
        ctx.save_for_backward(q, k, v, mask)

    @staticmethod
    def backward(ctx, grad):  # only outside vmap (never in the stack): the kernel's gradient, recomputed
        q, k, v, mask = ctx.saved_tensors
        dropout_p, is_causal, scale, enable_gqa = ctx.options
        with torch.enable_grad():
            inputs = [t.detach().requires_grad_() for t in (q, k, v)]
            out = _SDPA(*inputs, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                        enable_gqa=enable_gqa)
            grads = torch.autograd.grad(out, inputs, grad)
        return (*grads, None, None, None, None, None)

    @staticmethod
    def vmap(info, in_dims, q, k, v, mask, dropout_p, is_causal, scale, enable_gqa):
        n = info.batch_size

        def leading(t, dim):  # the member dimension first (a tensor shared by all members: expanded, a view)
            return t.movedim(dim, 0) if dim is not None else t.expand(n, *t.shape)

        q, k, v = (leading(t, d) for t, d in zip((q, k, v), in_dims[:3]))
        if q.dim() < 4:  # no batch dimension to fold into: the member dimension is the batch
            if mask is not None and in_dims[3] is not None:
                mask = leading(mask, in_dims[3])
                mask = mask.reshape(n, *[1] * (q.dim() - mask.dim()), *mask.shape[1:])
            return _SDPA(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                         enable_gqa=enable_gqa), 0
        batch = q.shape[1]

        def fold(t):
            return t.reshape(n * t.shape[1], *t.shape[2:])

        if mask is not None:
            per_sample = q.dim() - 1
            if in_dims[3] is None and (mask.dim() < per_sample or mask.shape[0] == 1):
                pass  # broadcasts over the folded batch as it did over the batch
            else:
                mask = leading(mask, in_dims[3])
                mask = mask.reshape(n, *[1] * (per_sample - (mask.dim() - 1)), *mask.shape[1:])
                mask = fold(mask.expand(n, batch, *mask.shape[2:]))
        out = _SDPA(fold(q), fold(k), fold(v), attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                    scale=scale, enable_gqa=enable_gqa)
        return out.reshape(n, batch, *out.shape[1:]), 0


def _folded_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return _FoldedAttention.apply(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@contextlib.contextmanager
def folded_attention():
    """While the stack's forward runs, components that call `F.scaled_dot_product_attention` get the folded one
    (components that bound the function at import keep vmap's slower, equally exact fallback)."""
    F.scaled_dot_product_attention = _folded_sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = _SDPA


# --- the stacked model and its optimiser ------------------------------------------------------------------------

class StackedAdamW:
    """torch.optim.AdamW over stacked parameters (leading dimension: the members), one learning rate and weight
    decay per member. The arithmetic follows torch's single-tensor AdamW step by step, so a member's update is
    the one its unstacked run makes; decay applies to parameters of dimension >= 2 per member only. With `l2`, it
    is torch.optim.Adam instead: the decay is added to the gradient (L2) rather than applied to the weights."""

    def __init__(self, params: dict[str, torch.Tensor], betas=BETAS, eps: float = EPS, l2: bool = False):
        self.params = params
        self.betas, self.eps, self.l2 = tuple(betas), eps, l2
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.steps = 0  # every member in the stack has made the same number of updates

    @torch.no_grad()
    def step(self, lrs: list[float], weight_decays: list[float]) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        bias_correction1 = 1 - beta1 ** self.steps
        bias_correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for name, p in self.params.items():
            if p.grad is None:
                continue  # torch's AdamW skips a parameter without gradient (decay included)
            shape = (len(lrs),) + (1,) * (p.dim() - 1)
            grad = p.grad
            if p.dim() - 1 >= 2 and any(weight_decays):
                if self.l2:  # torch.optim.Adam: grad = grad + weight_decay * param
                    grad = _l2(grad, p, weight_decays)
                else:
                    p.mul_(torch.tensor([1 - lr * wd for lr, wd in zip(lrs, weight_decays)], dtype=p.dtype,
                                        device=p.device).view(shape))
            self.exp_avg[name].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[name].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (self.exp_avg_sq[name].sqrt() / bias_correction2_sqrt).add_(self.eps)
            step_size = torch.tensor([-lr / bias_correction1 for lr in lrs], dtype=p.dtype, device=p.device)
            p.add_(self.exp_avg[name].mul(step_size.view(shape)).div_(denom))

    def keep(self, index: torch.Tensor) -> None:
        """Only the members at `index` stay (new leaf tensors, gradients kept for this step's update; the dropped
        members' state is gone)."""
        for name in list(self.params):
            old = self.params[name]
            self.params[name] = old.detach()[index].requires_grad_(old.requires_grad)
            if old.grad is not None:
                self.params[name].grad = old.grad[index]
            self.exp_avg[name] = self.exp_avg[name][index]
            self.exp_avg_sq[name] = self.exp_avg_sq[name][index]


class StackedSGD:
    """torch.optim.SGD (momentum, no dampening, no Nesterov, L2 decay) over stacked parameters, one learning rate and
    weight decay per member, decay on parameters of dimension >= 2 per member only, step by step as torch's
    single-tensor SGD: the first update's momentum buffer is the gradient itself."""

    def __init__(self, params: dict[str, torch.Tensor], momentum: float):
        self.params, self.momentum = params, momentum
        self.buffers: dict[str, torch.Tensor] = {}  # a parameter's momentum, from its first gradient on

    @torch.no_grad()
    def step(self, lrs: list[float], weight_decays: list[float]) -> None:
        for name, p in self.params.items():
            if p.grad is None:
                continue  # torch's SGD skips a parameter without gradient (its momentum too)
            grad = p.grad
            if p.dim() - 1 >= 2 and any(weight_decays):
                grad = _l2(grad, p, weight_decays)
            if self.momentum:
                if name not in self.buffers:
                    self.buffers[name] = grad.clone().detach()
                else:
                    self.buffers[name].mul_(self.momentum).add_(grad)
                grad = self.buffers[name]
            for i, lr in enumerate(lrs):  # torch's `param.add_(grad, alpha=-lr)`, member by member (see `_l2`)
                p[i].add_(grad[i], alpha=-lr)

    def keep(self, index: torch.Tensor) -> None:
        """Only the members at `index` stay (as `StackedAdamW.keep`)."""
        for name in list(self.params):
            old = self.params[name]
            self.params[name] = old.detach()[index].requires_grad_(old.requires_grad)
            if old.grad is not None:
                self.params[name].grad = old.grad[index]
        self.buffers = {n: b[index] for n, b in self.buffers.items()}


def _l2(grad: torch.Tensor, p: torch.Tensor, weight_decays: list[float]) -> torch.Tensor:
    """`grad + weight_decay * param` per member, as torch's Adam and SGD compute it (`grad.add(param, alpha=wd)`):
    a scalar `alpha` per member slice, since the CPU kernel fuses that multiply-add, which a product with a tensor of
    decays would round differently (one ulp: the loop engine's members would no longer match their runs exactly)."""
    grad = grad.clone()
    for i, wd in enumerate(weight_decays):
        if wd:
            grad[i].add_(p[i], alpha=wd)
    return grad


def stacked_optimizer(params: dict[str, torch.Tensor], optim):
    """The stacked form of `module.make_optimizer` for `optim.name` (its name, betas, eps and momentum are part of
    `stack_key`: equal for every member)."""
    if optim.name in ("adamw", "adam"):
        return StackedAdamW(params, betas=optim.betas, eps=optim.eps, l2=optim.name == "adam")
    if optim.name == "sgd":
        return StackedSGD(params, optim.momentum)
    raise ValueError(f"unknown optimiser {optim.name!r}")  # OptimConfig validates it first


@torch.no_grad()
def clip_member(grads: list[torch.Tensor], max_norm: float) -> None:
    """Clip one member's gradients (in `module.param_groups` order) to a global 2-norm of `max_norm`, in place:
    torch.nn.utils.clip_grad_norm_'s arithmetic (what Lightning's `gradient_clip_val` calls), step by step."""
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)


@torch.no_grad()
def clip_stacked(grads: list[torch.Tensor], max_norms: list[float]) -> None:
    """Clip each member of stacked gradients (leading dimension: the members) to its own global 2-norm, in place: the
    vmap engine's batched form of `clip_member` (member norms over the stacked tensors; a `max_norm` of 0 is off)."""
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), 2.0, dim=1) for g in grads])
    total = torch.linalg.vector_norm(norms, 2.0, dim=0)
    limits = torch.tensor(max_norms, dtype=total.dtype, device=total.device)
    coef = torch.where(limits > 0, torch.clamp(limits / (total + 1e-6), max=1.0), torch.ones_like(total))
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def _stacked_losses(base, params, buffers, inputs, targets) -> torch.Tensor:
    """Each member's mean scored training loss (K,), its parameters' slice applied to its own batch."""
    def member_loss(p, b, x, y):
        loss_sum, _, count = batch_scores(functional_call(base, (p, b), (x,)), y)
        return loss_sum / count.clamp_min(1)

    with folded_attention():
        return vmap(member_loss, randomness="error")(params, buffers, inputs, targets)


# --- which architectures stack ------------------------------------------------------------------------------

_STACKABLE: dict[tuple, tuple[bool, str]] = {}

#: `trainer.stack_engine=auto`, per accelerator, as measured (benchmarks/README.md, "stack engines"): on the 2-core
#: CPU one training step of the default model cost 12.3-13.3 ms a member with the loop engine, 12.7-13.2 ms
#: unstacked and 15.4-18.6 ms with vmap at 1, 2, 4 and 8 members (vmap's batched kernels, bmm with a broadcast
#: bias add and an unfused GELU backward, are slower there than the plain ones, at any stack size). On a GPU one
#: tiny model leaves the device idle, so one kernel for all members is the point: vmap (not yet measured).
AUTO_ENGINE = {"cpu": "loop"}


def engine(cfg: RunConfig) -> str:
    """The engine a stack of this config uses: `trainer.stack_engine`, or for `auto` the device's measured one."""
    chosen = cfg.trainer.stack_engine
    if chosen != "auto":
        return chosen
    accelerator, _ = resolve_hardware(cfg.trainer.accelerator, cfg.trainer.precision)
    return AUTO_ENGINE.get(accelerator, "vmap")


def _components(cfg: RunConfig) -> tuple:
    """The classes a config's names resolve to: a test or plugin that re-registers a name gets a fresh probe."""
    classes = [registry.get(getattr(cfg.model, kind)) for kind, registry in REGISTRIES.items()]
    classes.append(TASKS.get(cfg.task["name"]))
    return tuple((c.__module__, c.__qualname__, id(c)) for c in classes)


def stackable(cfg: RunConfig) -> tuple[bool, str]:
    """Whether runs of this architecture can train stacked, and why not (or, when they can, a note such as an
    op vmap runs member by member). Probed once per `stack_key` (see the module docstring)."""
    if cfg.optim.name == "muon":  # Muon's Newton-Schulz step is per matrix: no stacked form (StackedAdamW, SGD)
        return False, "optim.name=muon has no stacked optimiser; its runs train one by one"
    key = (stack_key(cfg), engine(cfg), _components(cfg))
    if key not in _STACKABLE:
        _STACKABLE[key] = _probe(cfg)
    return _STACKABLE[key]


def _probe(cfg: RunConfig) -> tuple[bool, str]:
    trainer = cfg.trainer
    if trainer.devices != 1 or trainer.strategy != "auto":
        return False, f"a stack trains on one device (trainer.devices={trainer.devices}, strategy={trainer.strategy})"
    accelerator, precision = resolve_hardware(trainer.accelerator, trainer.precision)
    if precision == "16-mixed":
        return False, "16-mixed precision scales the loss with one scaler per run; a stack has one for all"
    if cfg.model.dropout > 0:
        return False, (f"model.dropout={cfg.model.dropout}: dropout masks come from one global random stream, "
                       f"which a stack cannot replay per member")
    if engine(cfg) == "loop":
        return True, ""  # each member runs its own module: any architecture computes exactly as alone
    try:
        fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
        models, batches = [], []
        for seed in (cfg.seed, (cfg.seed + 1) % (MAX_SEED + 1)):
            pl.seed_everything(seed, verbose=False)
            task, model = build(cfg)
            models.append(fabric.setup_module(model).module)
            split = TaskDataModule(task, cfg.optim.batch_size, seed, trainer.eval_batch_size).split("train")
            batches.append((split.inputs[:4].to(fabric.device), split.targets[:4].to(fabric.device)))
        reference = []
        for model, (x, y) in zip(models, batches):
            with fabric.autocast():
                loss_sum, _, count = batch_scores(model(x), y)
            (loss_sum / count.clamp_min(1)).backward()
            reference.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    except Exception as exc:  # noqa: BLE001 - e.g. a model too large to allocate: each run fails on its own
        first = (str(exc).strip().splitlines() or [""])[0]
        return False, f"the model cannot be built and run to probe it: {type(exc).__name__}: {first}"
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0])
    note = ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fabric.autocast():
                losses = _stacked_losses(base, params, buffers, torch.stack([x for x, _ in batches]),
                                         torch.stack([y for _, y in batches]))
            losses.sum().backward()
        fallbacks = sorted({str(w.message).split(" for ")[-1].split(".")[0].strip() for w in caught
                            if "batching rule" in str(w.message)})
        if fallbacks:
            note = "vmap runs these ops member by member (slower, exact): " + ", ".join(fallbacks)
    except Exception as exc:  # noqa: BLE001 - any failure means: not stackable, and why
        first = (str(exc).strip().splitlines() or [""])[0]
        return False, f"the model's forward cannot run under torch.func.vmap: {type(exc).__name__}: {first}"
    tolerance = 1e-3 if precision in ("32-true", "64-true") else 5e-2
    for i, grads in enumerate(reference):
        for name, grad in grads.items():
            stacked = params[name].grad
            if stacked is None:
                return False, f"stacked training gives {name} no gradient"
            error = float((stacked[i] - grad).abs().max()) / max(float(grad.abs().max()), 1e-12)
            if not error <= tolerance:
                return False, (f"stacked gradients differ from the unstacked ones ({name}: relative error "
                               f"{error:.2g}): the forward is not a pure function of parameters and input")
    return True, note


# --- the members ------------------------------------------------------------------------------------------------

class _LossLog:
    """A member's `metrics.csv`, written by Lightning's CSVLogger at the rows Lightning's Trainer writes them:
    the loss checked at step s (s a multiple of log_every) is written as the row of batch
    s + log_every - 1, or of the run's last batch if that comes first; a validation after n updates is the row
    of batch n - 1. A stacked member's log thus reads exactly like the same run's log trained alone. The same rows
    go to the loggers `trainer.logger` adds beside the CSV log (`loggers.extra_loggers`), as Lightning writes each
    row to every logger of its Trainer."""

    def __init__(self, run_dir: Path, log_every: int, kind: str = "csv", name: str = ""):
        self.logger = CSVLogger(str(run_dir), name="", version="")
        self.extra = loggers.extra_loggers(kind, run_dir, name)
        self.log_every = log_every
        self.pending: float | None = None

    def _write(self, metrics: dict, step: int) -> None:
        self.logger.log_metrics(metrics, step=step)
        for logger in self.extra:
            logger.log_metrics(metrics, step=step)

    def loss(self, value: float) -> None:
        self.pending = float(torch.tensor(value))  # float32, as Lightning's self.log stores it

    def batch_end(self, batch: int, last: bool = False) -> None:
        if self.pending is not None and ((batch + 1) % self.log_every == 0 or last):
            self._write({"epoch": 0, "train/loss": self.pending}, step=batch)
            self.pending = None

    def validation(self, batch: int, values: dict) -> None:
        self._write({"epoch": 0, **values}, step=batch)

    def close(self, status: str) -> None:
        for logger in (self.logger, *self.extra):
            logger.finalize("success" if status == "ok" else "failed")


@dataclass
class _Run:
    """One member's own state: its template model (holding its parameters whenever they are read), data,
    divergence rule, diagnostics, log and bookkeeping."""

    member: Member
    task: object
    model: torch.nn.Module
    data: TaskDataModule
    batches: object
    divergence: Divergence
    log: _LossLog
    diagnostics: Diagnostics | None
    n_params: int
    checkpoint: checkpoints.StackedCheckpoint | None = None
    status: str = "ok"
    error: str = ""
    steps: int = 0
    val: dict = field(default_factory=dict)
    wall: float = 0.0

    @property
    def cfg(self) -> RunConfig:
        return self.member.cfg

    def fail(self, exc: BaseException) -> None:
        self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        (Path(self.member.run_dir) / "error.txt").write_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _start(member: Member, fabric: Fabric) -> _Run:
    """The member's model, data and files, built in the order `run.train` builds them (same initialisation)."""
    cfg, run_dir = member.cfg, Path(member.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    checkpoints.clear(run_dir)
    loggers.clear(run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    task, model = build(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    data = TaskDataModule(task, cfg.optim.batch_size, cfg.seed, cfg.trainer.eval_batch_size)
    diagnostics = None
    if cfg.trainer.diagnostics_every:
        diagnostics = Diagnostics(cfg.trainer.diagnostics_every, data.split("val").inputs,
                                  cfg.trainer.diagnostics_schedule)
    model = fabric.setup_module(model).module
    return _Run(member, task, model, data, iter(data.train_dataloader()), Divergence(cfg.trainer.divergence_factor),
                _LossLog(run_dir, cfg.trainer.log_every, cfg.trainer.logger, f"{member.variant}.{run_dir.name}"),
                diagnostics, n_params,
                checkpoints.StackedCheckpoint(cfg.trainer.checkpoint, run_dir, task))


class _Stack:
    """The active members' stacked parameters and optimiser; members leave it when they end.

    Two engines compute the members' losses and gradients (`trainer.stack_engine`, `engine`):
    - `vmap`: one `torch.func.vmap(functional_call)` over the stacked parameters and buffers and the K batches
      (one kernel per op for all members: what a GPU needs);
    - `loop`: each member's own module in turn, its parameters views of its slice of the stacked storage, so its
      forward and backward are exactly its unstacked run's kernels, and the members' gradients are stacked for
      one optimiser update (what the CPU needs: the plain kernels are faster there than vmap's batched ones).
    """

    def __init__(self, runs: list[_Run], engine: str):
        self.runs = list(runs)
        self.engine = engine
        params, buffers = stack_module_state([r.model for r in runs])
        self.optimizer = stacked_optimizer(params, runs[0].cfg.optim)
        if engine == "loop":
            self.buffers = {}  # each member's module keeps its own
            self._bind()
        else:
            self.buffers = buffers
            self.base = copy.deepcopy(runs[0].model)  # functional_call's module: its own tensors are never read

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return self.optimizer.params

    def _bind(self) -> None:
        """(loop) Each member's module parameters become views of its slice of the stacked parameters: the stacked
        update writes what its forward reads."""
        self.own = []
        for i, run in enumerate(self.runs):
            named = dict(run.model.named_parameters())
            for name, p in named.items():
                p.data = self.params[name].detach()[i]
            self.own.append(named)

    @torch.no_grad()
    def materialise(self, run: _Run, grads: bool = False) -> torch.nn.Module:
        """The member's template model holding its current parameters (and, with `grads`, its gradients); a member
        that has left the stack already holds its last ones."""
        if run not in self.runs or self.engine == "loop":
            return run.model  # (loop) its parameters are views of the stack's, its gradients its own
        i = self.runs.index(run)
        for name, p in run.model.named_parameters():
            p.copy_(self.params[name][i])
            p.grad = self.params[name].grad[i] if grads and self.params[name].grad is not None else None
        for name, b in run.model.named_buffers():
            b.copy_(self.buffers[name][i])
        return run.model

    def drop(self, leaving: list[_Run]) -> None:
        for run in leaving:
            self.materialise(run)
            if self.engine == "loop":
                for p in run.model.parameters():
                    p.data = p.data.clone()  # its last parameters, apart from the stack's storage
        keep = [i for i, r in enumerate(self.runs) if r not in leaving]
        index = torch.tensor(keep, dtype=torch.long, device=next(iter(self.params.values())).device)
        self.optimizer.keep(index)
        self.buffers = {n: b[index] for n, b in self.buffers.items()}
        self.runs = [self.runs[i] for i in keep]
        if self.engine == "loop":
            self._bind()

    def losses(self, inputs, targets) -> torch.Tensor:
        """(vmap) Every member's loss, one backward for all."""
        for p in self.params.values():
            p.grad = None
        losses = _stacked_losses(self.base, self.params, self.buffers, inputs, targets)
        losses.sum().backward()  # each member's gradient is its own loss's: the members share no parameter
        return losses.detach()

    def alone(self, run: _Run, inputs, targets) -> None:
        """(vmap) One member's forward and backward on its own (to find whose failure a failing stacked step is)."""
        i = self.runs.index(run)
        params = {n: p.detach()[i].clone().requires_grad_() for n, p in self.params.items()}
        buffers = {n: b[i].clone() for n, b in self.buffers.items()}
        loss_sum, _, count = batch_scores(functional_call(self.base, (params, buffers), (inputs,)), targets)
        (loss_sum / count.clamp_min(1)).backward()

    def clip(self) -> None:
        """Each member's gradients clipped to its `trainer.grad_clip` (0: off), in `module.param_groups` order, after
        the diagnostics read them and before the update, where Lightning clips (`gradient_clip_val`, norm)."""
        limits = [r.cfg.trainer.grad_clip for r in self.runs]
        if not any(limits):
            return
        order = [n for n, p in self.params.items() if p.requires_grad and p.dim() - 1 >= 2]
        order += [n for n, p in self.params.items() if p.requires_grad and p.dim() - 1 < 2]
        grads = [self.params[n].grad for n in order if self.params[n].grad is not None]
        if self.engine == "vmap":
            clip_stacked(grads, limits)
            return
        for i, limit in enumerate(limits):  # (loop) each member's own norm, exactly as its unstacked run's
            if limit:
                clip_member([g[i] for g in grads], limit)

    def gather(self) -> None:
        """(loop) The members' gradients, stacked for the update. A parameter no member has a gradient for is
        skipped, as torch's AdamW skips it; a member without one (it failed in this step) leaves before the update."""
        for name, stacked in self.params.items():
            grads = [own[name].grad for own in self.own]
            if all(g is None for g in grads):
                stacked.grad = None
                continue
            stacked.grad = torch.stack([g if g is not None else torch.zeros_like(stacked[0]) for g in grads])


def train_stack(members: list[Member]) -> list[dict]:
    """Train the members as one stacked model; write each member's result.json, metrics.csv and diagnostics.csv
    in its run directory, as `run.train` would; return one result row per member, in order. All members must
    share a `stack_key`, which `stackable` must accept."""
    if not members:
        return []
    keys = {stack_key(m.cfg) for m in members}
    if len(keys) > 1:
        raise ValueError(f"members of one stack must share a stack_key, got {len(keys)} different ones")
    ok, reason = stackable(members[0].cfg)
    if not ok:
        raise ValueError(f"this architecture does not stack: {reason}")
    trainer = members[0].cfg.trainer
    accelerator, precision = resolve_hardware(trainer.accelerator, trainer.precision)
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(not torch.cuda.is_available())  # as run.train's Trainer(deterministic=)
    created = {id(m): new_folders(Path(m.run_dir)) for m in members}
    try:
        started: dict[int, _Run] = {}
        rows: dict[int, dict] = {}
        for i, member in enumerate(members):
            try:
                started[i] = _start(member, fabric)
            except Exception as exc:  # noqa: BLE001 - building its model or data failed: its result, not the stack's
                rows[i] = _failed_start(member, exc, accelerator, precision, len(members))
        runs = list(started.values())
        if runs:
            _loop(runs, _Stack(runs, engine(members[0].cfg)), fabric, trainer.max_steps)
        for i, run in started.items():
            rows[i] = _finish(run, accelerator, precision, len(members))
        return [rows[i] for i in range(len(members))]
    except Interrupted:
        for member in members:
            remove_partial_run(member.run_dir, created[id(member)])
        raise
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _failed_start(member: Member, exc: Exception, accelerator: str, precision: str, size: int) -> dict:
    """The row of a member whose model or data could not be built (an allocation that fails, say)."""
    cfg, run_dir = member.cfg, Path(member.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    task = TASKS.get(cfg.task["name"])(**{k: v for k, v in cfg.task.items() if k != "name"})
    return finish_run(cfg, run_dir, task=task, variant=member.variant, ablation=member.ablation, status="failed",
                      error=f"{type(exc).__name__}: {exc}", steps=0, val={}, test_metrics={},
                      divergence=Divergence(cfg.trainer.divergence_factor), wall=0.0, n_params=count_params(cfg),
                      seq_len=None, accelerator=accelerator, precision=precision, extra={"stack": {"size": size}})


def _loop(runs: list[_Run], stack: _Stack, fabric: Fabric, max_steps: int) -> None:
    for run in runs:
        _guard(run, lambda r: r.diagnostics and r.diagnostics.measure(stack.materialise(r), 0, fabric.device))
    ending = [r for r in runs if r.status != "ok"]
    if ending:
        stack.drop(ending)
    batch = 0
    while stack.runs and batch < max_steps:
        start = time.perf_counter()
        inputs, targets = zip(*(next(r.batches) for r in stack.runs))
        if stack.engine == "loop":
            losses = _loop_step(stack, [x.to(fabric.device) for x in inputs], [y.to(fabric.device) for y in targets],
                                fabric)
        else:
            losses = _step(stack, torch.stack(inputs).to(fabric.device), torch.stack(targets).to(fabric.device),
                           batch, fabric)
        active = list(stack.runs)
        stopping = []
        checked = any(Divergence.due(batch, r.cfg.trainer.log_every, max_steps) for r in active)
        values = losses.tolist() if checked else None  # the only host sync, on check steps (and the last)
        for i, run in enumerate(active):
            if run.status != "ok":
                stopping.append(run)  # failed in this step, alone
            elif Divergence.due(batch, run.cfg.trainer.log_every, max_steps):
                if batch % run.cfg.trainer.log_every == 0:
                    run.log.loss(values[i])
                if run.divergence.check(batch, values[i]):
                    stopping.append(run)  # its update is skipped, as a diverged run's is
        for run in active:
            if run not in stopping and run.diagnostics and run.diagnostics.due(batch, max_steps):
                _guard(run, lambda r: r.diagnostics.gradients(stack.materialise(r, grads=True), batch))
        updating = [r for r in active if r not in stopping]
        if len(updating) < len(active):
            stack.drop([r for r in active if r not in updating])
        if stack.runs:
            stack.clip()
            stack.optimizer.step(
                [r.cfg.optim.lr * lr_factor(batch, r.cfg.optim.warmup_steps, max_steps, r.cfg.optim.schedule)
                 for r in stack.runs],
                [r.cfg.optim.weight_decay for r in stack.runs])
        share = (time.perf_counter() - start) / len(active)
        batch += 1
        for run in active:
            run.wall += share
            run.steps = batch if run.status == "ok" else batch - 1
        for run in active:
            start = time.perf_counter()
            _after_batch(run, stack, fabric, batch, max_steps, stopped=run in stopping)
            run.wall += time.perf_counter() - start
        leaving = [r for r in stack.runs if r.status != "ok" or r.divergence.diverged_step is not None]
        if leaving:
            stack.drop(leaving)
    stack.drop(list(stack.runs))  # every template model now holds its member's last parameters


def _loop_step(stack: _Stack, inputs: list, targets: list, fabric: Fabric) -> torch.Tensor:
    """(loop) Each member's forward and backward on its own module, as `module.AblationModule.training_step` and
    Lightning do them (forward under autocast, backward outside it); a member whose step raises fails alone."""
    losses = []
    for run, own, x, y in zip(stack.runs, stack.own, inputs, targets):
        for p in own.values():
            p.grad = None
        try:
            with fabric.autocast():
                loss_sum, _, count = batch_scores(run.model(x), y)
                loss = loss_sum / count.clamp_min(1)
            loss.backward()
            losses.append(loss.detach().float())
        except Exception as exc:  # noqa: BLE001 - its own step failed: its result, not the others'
            run.fail(exc)
            for p in own.values():
                p.grad = None
            losses.append(torch.tensor(math.nan, device=x.device))
    stack.gather()
    return torch.stack(losses)


def _step(stack: _Stack, inputs, targets, batch: int, fabric: Fabric) -> torch.Tensor:
    """(vmap) The stacked forward and backward; when it fails, each member is run alone to find whose failure it is,
    those members fail, and the step is redone for the rest. A failure no member has alone fails them all."""
    try:
        with fabric.autocast():
            return stack.losses(inputs, targets)
    except Exception as exc:  # noqa: BLE001 - attributed to a member below, or to the stack
        nan = torch.full((len(stack.runs),), math.nan)
        culprits = []
        for i, run in enumerate(stack.runs):
            try:
                with fabric.autocast():
                    stack.alone(run, inputs[i], targets[i])
            except Exception as own:  # noqa: BLE001
                run.fail(own)
                culprits.append(i)
        keep = [i for i in range(len(stack.runs)) if i not in culprits]
        if not culprits:
            for run in stack.runs:
                run.fail(exc)
        if not culprits or not keep:
            return nan
        try:
            with fabric.autocast():
                rest = _Subset(stack, keep).losses(inputs[keep], targets[keep])
        except Exception as again:  # noqa: BLE001 - fails only stacked: the stack's doing
            for i in keep:
                stack.runs[i].fail(again)
            return nan
        losses = nan.to(rest.device)
        losses[keep] = rest
        return losses


class _Subset:
    """The stack restricted to some members for one retried step (their gradients land in the full stack)."""

    def __init__(self, stack: _Stack, keep: list[int]):
        self.stack, self.keep = stack, keep
        self.runs = [stack.runs[i] for i in keep]

    def losses(self, inputs, targets) -> torch.Tensor:
        stack, index = self.stack, torch.tensor(self.keep, device=inputs.device)
        params = {n: p.detach()[index].requires_grad_() for n, p in stack.params.items()}
        buffers = {n: b[index] for n, b in stack.buffers.items()}
        losses = _stacked_losses(stack.base, params, buffers, inputs, targets)
        losses.sum().backward()
        for name, p in stack.params.items():
            grad = torch.zeros_like(p)
            if params[name].grad is not None:
                grad[index] = params[name].grad
            p.grad = grad
        return losses.detach()


def _guard(run: _Run, action) -> None:
    """Run a member's own action; an exception fails that member only (a pruning signal prunes it)."""
    try:
        action(run)
    except TrialPruned as exc:
        run.status, run.error = "pruned", str(exc)
    except Exception as exc:  # noqa: BLE001 - a crash inside one member's run is its result
        run.fail(exc)


def _after_batch(run: _Run, stack: _Stack, fabric: Fabric, batch: int, max_steps: int, stopped: bool) -> None:
    """What Lightning does for a run after its batch `batch - 1`: diagnostics, the log row, validation (every
    `val_every` updates and after the last one, `module.validation_due`; also when the run stops: a diverged run
    validates its last parameters), pruning, and at the end the last rows.

    Row order: a run that stops or ends (the Lightning run is asked to stop after its last update,
    `run.FinalValidation`) writes its pending loss row before its validation row, as Lightning does when asked to
    stop."""
    last_batch = batch - 1
    if run.status != "ok":  # failed in the step: nothing more is measured
        run.log.batch_end(last_batch, last=True)
        return
    every = run.cfg.trainer.val_every
    ends = stopped or batch >= max_steps

    def after(r: _Run) -> None:
        if r.diagnostics and r.diagnostics.due(batch, max_steps):
            r.diagnostics.measure(stack.materialise(r), batch, fabric.device)
        r.log.batch_end(last_batch)
        if validation_due(batch, every, max_steps) or stopped:
            model = stack.materialise(r)
            with fabric.autocast():
                values = evaluate(model, OrderedBatches(r.data.split("val"), r.cfg.trainer.eval_batch_size),
                                  fabric.device)
            r.val = {f"val/{k}": float(torch.tensor(v)) for k, v in values.items()}  # float32, as self.log
            r.log.validation(last_batch, r.val)
            callback = r.member.on_validation
            value = r.val.get(f"val/{r.task.metric}")
            if callback is not None and value is not None and callback(batch, value):
                raise TrialPruned(f"pruned at step {batch} (val/{r.task.metric}={value:.4g})")
            if r.checkpoint is not None:  # after the pruning check, as Lightning runs ModelCheckpoint last
                r.checkpoint.validated(model, batch, r.val)

    if ends:
        run.log.batch_end(last_batch, last=True)  # Lightning writes a stopping run's last loss before validating
    _guard(run, after)
    if run.status == "ok" and ends:
        _guard(run, lambda r: r.diagnostics and r.diagnostics.measure(stack.materialise(r), batch, fabric.device))
    if ends or run.status == "failed":
        run.log.batch_end(last_batch, last=True)


def _finish(run: _Run, accelerator: str, precision: str, size: int) -> dict:
    """The member's files and row, as `run.train` writes them (its parameters are in its template model)."""
    start = time.perf_counter()
    run_dir = Path(run.member.run_dir)
    if run.divergence.diverged_step is not None and run.status in ("ok", "failed"):
        run.status = "diverged"  # as in run.train: an error after the loss blew up is the divergence's doing
    run.log.close(run.status)
    metrics = {}
    if run.diagnostics is not None:
        _guard(run, lambda r: r.diagnostics.write(run_dir, run_dir / "metrics.csv"))
    if run.status == "ok":
        try:
            metrics = evaluate(run.model, OrderedBatches(run.data.split("test"), run.cfg.trainer.eval_batch_size),
                               next(run.model.parameters()).device)
        except Exception as exc:  # noqa: BLE001
            run.fail(exc)
            metrics = {}
    if run.status == "ok":
        run.status = final_check(run.divergence, run.steps, run.val, metrics)  # as run.train does
        if run.status == "diverged":
            metrics = {}
    if run.divergence.diverged_step is not None and run.status == "failed":
        run.status = "diverged"
    run.wall += time.perf_counter() - start
    return finish_run(run.cfg, run_dir, task=run.task, variant=run.member.variant, ablation=run.member.ablation,
                      status=run.status, error=run.error, steps=run.steps, val=finite_only(run.val),
                      test_metrics=metrics,
                      divergence=run.divergence, wall=run.wall, n_params=run.n_params,
                      seq_len=run.data.split("train").inputs.shape[1], accelerator=accelerator,
                      precision=precision, extra={"stack": {"size": size}})
