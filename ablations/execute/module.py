"""The LightningModule that trains any model on any task.

It is deliberately thin: cross-entropy on the task's targets (positions marked IGNORE are not scored),
the configured optimiser (`make_optimizer`: AdamW by default) with warmup and a schedule (`lr_factor`: cosine by
default), and exact validation metrics accumulated over the whole split. Divergence
is data, not a crash: a non-finite or runaway training loss stops the run and is recorded (`diverged_step`).
The loss is inspected only every `log_every` steps and at the last one, so there is no host sync on the other
steps; a validation or test loss that is not finite at the end also makes the run `diverged` (`run.train`).
A run validates every `val_every` steps and after its last one (`validation_due`).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from tasks.base import IGNORE

BETAS = (0.9, 0.98)  # AdamW's default betas (`optim.betas`), for the Lightning module and the stacked runs alike


def batch_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed loss, number of correct predictions and number of scored positions, as 0-d tensors."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_targets = targets.reshape(-1)
    scored = flat_targets != IGNORE
    loss_sum = F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE, reduction="sum")
    correct = ((flat_logits.argmax(-1) == flat_targets) & scored).sum()
    return loss_sum, correct, scored.sum()


def metrics_from_totals(loss_sum, correct, count) -> dict:
    """Every metric a task may name, from summed loss, correct predictions and scored positions.
    `bits_per_char` is the mean cross-entropy in bits (for language modelling)."""
    count = max(float(count), 1.0)
    loss = float(loss_sum) / count
    return {"loss": loss, "accuracy": float(correct) / count, "bits_per_char": loss / math.log(2)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, device) -> dict[str, float]:
    """Exact loss and accuracy over every batch (eval mode restored to the caller's mode afterwards)."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        totals += torch.stack([s.double() for s in batch_scores(model(inputs), targets)])
    model.train(was_training)
    return metrics_from_totals(*totals.tolist())


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """The learning-rate multiplier of update `step` (0-based): linear warmup over `warmup` steps, then `schedule`
    (`optim.schedule`) up to `total` steps. One definition for the Lightning module and the stacked runs.
    - cosine: decay to 10% of the peak at `total`;
    - constant: the peak;
    - linear: decay to 0 at `total`;
    - inverse_sqrt: lr * min(1, s/w) * sqrt(w / max(s, w)) with s = step + 1 and w = max(warmup, 1), the
      Transformer's schedule (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, eq. 3, normalised to peak 1)
      that Xiong et al. 2020 (https://arxiv.org/abs/2002.04745) train their Post-LN baselines with."""
    if schedule == "inverse_sqrt":
        w, s = max(warmup, 1), step + 1
        return min(1.0, s / w) * math.sqrt(w / max(s, w))  # Vaswani et al. 2017, eq. 3 / peak
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - progress
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")  # OptimConfig validates it first
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine down to 10% of lr


def param_groups(params, weight_decay: float, matrix=lambda p: p.dim() >= 2) -> list[dict]:
    """Decay matrices only (not biases, norm gains or gates), as in GPT-2 / nanoGPT; the matrices first. This order
    is also the order the gradient norm is summed in (Lightning clips over the optimiser's groups in turn)."""
    params = [p for p in params if p.requires_grad]
    return [{"params": [p for p in params if matrix(p)], "weight_decay": weight_decay},
            {"params": [p for p in params if not matrix(p)], "weight_decay": 0.0}]


class MuonWithAdamW(torch.optim.Optimizer):
    """`optim.name=muon`: torch.optim.Muon on the hidden layers' matrices, AdamW on everything else, as one optimiser.

    Why two: Muon orthogonalises each 2-D update and is meant for hidden-layer weights only; torch's own docs say to
    give embeddings, the output head, biases and norm gains to a standard optimiser such as AdamW. Why one object:
    Lightning's automatic optimisation, the learning-rate schedule (which writes `lr` into these shared
    param_groups) and checkpoints then see a single optimiser. Muon's step is scaled to match AdamW's update RMS
    (`adjust_lr_fn="match_rms_adamw"`), so one `optim.lr` and `optim.weight_decay` serve both halves."""

    def __init__(self, hidden: list, other_groups: list[dict], optim):
        self.muon = torch.optim.Muon(hidden, lr=optim.lr, weight_decay=optim.weight_decay,  # Jordan et al. 2024,
                                     adjust_lr_fn="match_rms_adamw")  # https://kellerjordan.github.io/posts/muon/
        self.adamw = torch.optim.AdamW(other_groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
        super().__init__([*self.muon.param_groups, *self.adamw.param_groups], {})

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])


def hidden_matrices(model: torch.nn.Module) -> list:
    """The 2-D weights of the transformer's blocks: what Muon may take (not the embedding or the head)."""
    return [p for name, p in model.named_parameters() if name.startswith("blocks.") and p.dim() == 2
            and p.requires_grad]


def make_optimizer(params, optim, *, hidden: list | None = None) -> torch.optim.Optimizer:
    """The torch optimiser `optim.name` names, over `param_groups` (decay on matrices only):
    adamw: decoupled decay (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101);
    adam: L2 decay added to the gradient, as torch.optim.Adam does it (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980);
    sgd: heavy-ball momentum `optim.momentum`, L2 decay, no Nesterov;
    muon: `MuonWithAdamW`, Muon on `hidden` (the blocks' matrices, `hidden_matrices`), AdamW on the rest."""
    if optim.name == "muon":
        params = list(params)
        taken = {id(p) for p in hidden or ()}
        rest = param_groups([p for p in params if id(p) not in taken], optim.weight_decay)
        if not taken:  # no hidden matrix (no blocks): AdamW alone
            return torch.optim.AdamW(rest, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
        return MuonWithAdamW([p for p in params if id(p) in taken], rest, optim)
    groups = param_groups(params, optim.weight_decay)
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    if optim.name == "adam":
        return torch.optim.Adam(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=False)
    raise ValueError(f"unknown optimiser {optim.name!r}")  # OptimConfig validates it first


def validation_due(steps: int, val_every: int, max_steps: int) -> bool:
    """Whether a run validates after `steps` updates: every `val_every` updates, and after its last one. Why the
    last one too: a budget below `val_every` (or off its multiples) would otherwise end unvalidated, with no
    validation score for a tuner to rank and no learning curve, so that a sweep could neither compare its trials nor
    say why. One rule for the Lightning run (`run.FinalValidation`) and the stacked members (`stack._after_batch`)."""
    return steps % val_every == 0 or steps >= max_steps


class Divergence:
    """The divergence rule, shared by the Lightning module and each member of a stacked run: a checked training
    loss that is non-finite, or above `factor` times the first finite checked loss, diverges the run."""

    def __init__(self, factor: float):
        self.factor = factor
        self.first_loss: float | None = None
        self.diverged_step: int | None = None
        self.last_finite_loss: float | None = None

    def check(self, step: int, value: float) -> bool:
        """Record the loss checked at `step`; True when it diverges the run."""
        if self.first_loss is None and math.isfinite(value):
            self.first_loss = value
        runaway = self.first_loss is not None and value > self.factor * self.first_loss
        if not math.isfinite(value) or runaway:
            self.diverged_step = step
            return True
        self.last_finite_loss = value
        return False

    def mark(self, step: int) -> None:
        """Record a divergence found after training (a non-finite validation or test loss at the end)."""
        if self.diverged_step is None:
            self.diverged_step = step

    @staticmethod
    def due(step: int, check_every: int, max_steps: int) -> bool:
        """Whether the loss of update `step` (0-based) is checked: every `check_every` steps, and the last one,
        so that a run cannot blow up between its last check and its end unseen."""
        return step % check_every == 0 or step == max_steps - 1


class AblationModule(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, optim, max_steps: int, check_every: int, divergence_factor: float):
        super().__init__()
        self.model, self.optim, self.max_steps = model, optim, max_steps
        self.check_every, self.divergence_factor = check_every, divergence_factor
        self.divergence = Divergence(divergence_factor)
        self._val_totals: list[torch.Tensor] = []

    def forward(self, inputs):
        return self.model(inputs)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss_sum, _, count = batch_scores(self.model(inputs), targets)
        loss = loss_sum / count.clamp_min(1)
        step = self.global_step
        if Divergence.due(step, self.check_every, self.max_steps):
            self._check_divergence(loss.item())  # the only host sync, every `check_every` steps and the last
            if step % self.check_every == 0:
                self.log("train/loss", loss.detach(), on_step=True, on_epoch=False)
            if self.diverged_step is not None:
                return None  # skip the update: Lightning ends the fit at the next check
        return loss

    @property
    def first_loss(self) -> float | None:
        return self.divergence.first_loss

    @property
    def diverged_step(self) -> int | None:
        return self.divergence.diverged_step

    @property
    def last_finite_loss(self) -> float | None:
        return self.divergence.last_finite_loss

    def _check_divergence(self, value: float) -> None:
        if self.divergence.check(self.global_step, value):
            self.trainer.should_stop = True

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self._val_totals.append(torch.stack([s.double() for s in batch_scores(self.model(inputs), targets)]))

    def on_validation_epoch_end(self):
        totals = torch.stack(self._val_totals).sum(0).tolist()  # one host sync per validation
        self._val_totals.clear()
        for name, value in metrics_from_totals(*totals).items():
            self.log(f"val/{name}", value)

    def configure_optimizers(self):
        optimizer = make_optimizer(self.model.parameters(), self.optim, hidden=hidden_matrices(self.model))
        warmup, total, schedule = self.optim.warmup_steps, self.max_steps, self.optim.schedule
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total, schedule))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
