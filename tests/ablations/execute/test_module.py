"""ablations/module.py: exact scores, evaluation, divergence detection, the optimiser and its schedule."""

import math
import warnings
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ablations.config import OptimConfig
from ablations.execute.module import AblationModule, batch_scores, evaluate
from models import ModelConfig, build_model
from tasks import IGNORE
from tasks.base import Split
from tasks.datamodule import OrderedBatches, ShuffledBatches

I = IGNORE
SCALE = 5.0


class Echo(nn.Module):
    """Predicts its input token (logits SCALE * one_hot); records the mode it was called in."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.n_classes = n_classes
        self.weight = nn.Parameter(torch.ones(()))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return SCALE * self.weight * F.one_hot(x, self.n_classes).float()


# Five rows whose per-row correct/scored counts are 2/2, 1/2, 1/1, 0/3, 2/3: 6 of 11 overall.
INPUTS = torch.tensor([[0, 1, 2], [1, 1, 1], [2, 0, 1], [0, 0, 0], [2, 2, 2]])
TARGETS = torch.tensor([[0, 1, I], [I, 0, 1], [2, I, I], [1, 1, 1], [2, 2, 0]])
CORRECT, COUNT = 6, 11


def expected_loss(correct, count, n_classes=3):
    lse = math.log(math.exp(SCALE) + n_classes - 1)
    return (count * lse - SCALE * correct) / count


# --- batch_scores -------------------------------------------------------------------------------------------

def test_batch_scores_counts_and_sums():
    logits = Echo()(INPUTS)
    loss_sum, correct, count = batch_scores(logits, TARGETS)
    assert (correct.item(), count.item()) == (CORRECT, COUNT)
    assert loss_sum.item() == pytest.approx(expected_loss(CORRECT, COUNT) * COUNT, rel=1e-5)
    mean = F.cross_entropy(logits.reshape(-1, 3), TARGETS.reshape(-1), ignore_index=IGNORE)
    assert (loss_sum / count).item() == pytest.approx(mean.item(), rel=1e-6)


def test_batch_scores_ignores_ignored_positions():
    logits = torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(0))
    scrambled = logits.clone()
    ignored = TARGETS == IGNORE
    scrambled[ignored] = torch.randn(int(ignored.sum()), 3) * 100  # anything at unscored positions
    for a, b in zip(batch_scores(logits, TARGETS), batch_scores(scrambled, TARGETS)):
        assert torch.equal(a, b)
    assert batch_scores(logits, torch.full_like(TARGETS, IGNORE))[2] == 0


def test_batch_scores_for_sequence_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    loss_sum, correct, count = batch_scores(logits, torch.tensor([0, 0, 0]))
    assert (correct.item(), count.item()) == (2, 3)
    assert loss_sum.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0, 0, 0]), reduction="sum").item())


def test_batch_scores_in_low_precision_is_computed_in_float32():
    logits = Echo()(INPUTS).bfloat16()
    loss_sum, _, _ = batch_scores(logits, TARGETS)
    assert loss_sum.dtype == torch.float32


# --- evaluate -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 2, 3, 5])
def test_evaluate_is_exact_over_uneven_batches(batch_size):
    # batches of size 2 have accuracies 3/4, 1/4, 2/3: their mean (0.556) is not the exact 6/11 (0.545)
    metrics = evaluate(Echo(), OrderedBatches(Split(INPUTS, TARGETS), batch_size), "cpu")
    assert metrics["accuracy"] == pytest.approx(CORRECT / COUNT, abs=1e-12)
    assert metrics["loss"] == pytest.approx(expected_loss(CORRECT, COUNT), rel=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_runs_in_eval_mode_and_restores_the_mode(training):
    model = Echo().train(training)
    evaluate(model, OrderedBatches(Split(INPUTS, TARGETS), 2), "cpu")
    assert model.modes == [False, False, False]
    assert model.training is training


def test_evaluate_does_not_track_gradients():
    model = Echo()
    seen = []
    model.register_forward_hook(lambda m, a, out: seen.append(out.requires_grad))
    evaluate(model, OrderedBatches(Split(INPUTS, TARGETS), 5), "cpu")
    assert seen == [False]


def test_evaluate_with_nothing_scored():
    metrics = evaluate(Echo(), [(INPUTS, torch.full_like(TARGETS, IGNORE))], "cpu")
    assert metrics == {"loss": 0.0, "accuracy": 0.0, "bits_per_char": 0.0}


# --- divergence ---------------------------------------------------------------------------------------------

def module_with_fake_trainer(factor=4.0):
    module = AblationModule(Echo(), optim=None, max_steps=100, check_every=1, divergence_factor=factor)
    module.trainer = SimpleNamespace(global_step=0, should_stop=False)
    return module


def feed(module, losses):
    for step, value in enumerate(losses):
        module.trainer.global_step = step
        module._check_divergence(value)


def test_finite_losses_within_the_factor_do_not_diverge():
    module = module_with_fake_trainer()
    feed(module, [2.0, 3.0, 7.9, 8.0, 1.0])
    assert module.diverged_step is None and module.trainer.should_stop is False
    assert module.first_loss == 2.0 and module.last_finite_loss == 1.0


def test_a_runaway_loss_diverges():
    module = module_with_fake_trainer()
    feed(module, [2.0, 5.0, 8.1])
    assert module.diverged_step == 2 and module.trainer.should_stop is True
    assert module.last_finite_loss == 5.0  # the runaway value is not recorded as a good one


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_diverges(bad):
    module = module_with_fake_trainer()
    feed(module, [2.0, 1.5, bad])
    assert module.diverged_step == 2 and module.trainer.should_stop is True
    assert module.last_finite_loss == 1.5


def test_a_non_finite_first_loss_diverges_at_once():
    module = module_with_fake_trainer()
    feed(module, [math.nan])
    assert module.diverged_step == 0 and module.trainer.should_stop is True
    assert module.first_loss is None and module.last_finite_loss is None


def test_the_factor_is_relative_to_the_first_loss():
    module = module_with_fake_trainer(factor=1.5)
    feed(module, [1.0, 1.4, 1.6])
    assert module.diverged_step == 2


def test_training_step_returns_the_mean_scored_loss():
    module = module_with_fake_trainer()
    module.trainer.global_step = 1  # not a check step (check_every=3 below): no logging needed
    module.check_every = 3
    loss = module.training_step((INPUTS, TARGETS), 0)
    assert loss.item() == pytest.approx(expected_loss(CORRECT, COUNT), rel=1e-6)
    assert loss.requires_grad


class Runaway(nn.Module):
    """A model whose loss grows by 10 each call: about 10, 20, 30, ... on targets 0."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        wrong = torch.full(x.shape, 10.0 * self.calls) + self.bias
        return torch.stack([torch.zeros(x.shape), wrong], dim=-1)


def quiet_trainer(**kwargs):
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_a_real_trainer_stops_when_the_loss_runs_away():
    split = Split(torch.zeros(16, 4, dtype=torch.long), torch.zeros(16, 4, dtype=torch.long))
    loader = DataLoader(ShuffledBatches(split, 4, seed=0), batch_size=None)
    module = AblationModule(Runaway(), OptimConfig(lr=1e-3, warmup_steps=0, weight_decay=0.0, batch_size=4),
                            max_steps=50, check_every=1, divergence_factor=4.0)
    trainer = quiet_trainer(max_steps=50, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    # losses ~10, 20, 30, 40, 50: the fifth step (index 4) is the first above 4 x the first
    assert module.first_loss == pytest.approx(10.0, abs=1e-3)
    assert module.diverged_step == 4
    assert module.last_finite_loss == pytest.approx(40.0, abs=0.1)
    assert trainer.global_step < 10  # stopped long before max_steps


def test_validation_metrics_equal_evaluate():
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32), vocab_size=3, max_len=3)
    module = AblationModule(model, None, max_steps=1, check_every=1, divergence_factor=4.0)
    loader = DataLoader(OrderedBatches(Split(INPUTS, TARGETS), 2), batch_size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [logged] = quiet_trainer().validate(module, dataloaders=loader, verbose=False)
    expected = evaluate(model, OrderedBatches(Split(INPUTS, TARGETS), 2), "cpu")
    assert logged["val/accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert logged["val/loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert module._val_totals == []  # cleared for the next validation


# --- optimiser and schedule ---------------------------------------------------------------------------------

def test_weight_decay_applies_to_matrices_only():
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32), vocab_size=5, max_len=8)
    optim = OptimConfig(lr=0.01, warmup_steps=2, weight_decay=0.1, batch_size=4)
    config = AblationModule(model, optim, max_steps=10, check_every=1, divergence_factor=4.0).configure_optimizers()
    decay, no_decay = config["optimizer"].param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["params"] and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["params"] and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
    assert config["lr_scheduler"]["interval"] == "step"


def test_schedule_warms_up_linearly_then_decays_to_a_tenth():
    optim = OptimConfig(lr=0.5, warmup_steps=4, weight_decay=0.0, batch_size=4)
    config = AblationModule(Echo(), optim, max_steps=20, check_every=1, divergence_factor=4.0).configure_optimizers()
    scheduler, optimizer = config["lr_scheduler"]["scheduler"], config["optimizer"]
    factor = scheduler.lr_lambdas[0]
    assert [factor(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factor(4) == pytest.approx(1.0)
    assert factor(12) == pytest.approx(0.55)  # half way through the cosine
    assert factor(20) == pytest.approx(0.1) and factor(1000) == pytest.approx(0.1)
    after = [factor(s) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 0.25)  # step 0 already warmed by 1/4


def test_schedule_without_warmup_starts_at_full_lr():
    optim = OptimConfig(lr=0.5, warmup_steps=0, weight_decay=0.0, batch_size=4)
    config = AblationModule(Echo(), optim, max_steps=10, check_every=1, divergence_factor=4.0).configure_optimizers()
    assert config["lr_scheduler"]["scheduler"].lr_lambdas[0](0) == pytest.approx(1.0)
