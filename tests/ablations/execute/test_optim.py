"""`optim.name`, `optim.betas`/`eps`/`momentum`, `optim.schedule` and `trainer.grad_clip`: validated in one line,
each trains, the schedules take their published values, clipping bounds the norm, and a stack computes what its
members compute alone (ablations/execute/module.py, stack.py)."""

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

import ablations.execute.stack as stack_module
from ablations.config import OPTIM_DEFAULTS, OptimConfig, compose_config, to_run_config, without_later_defaults
from ablations.execute.module import BETAS, lr_factor, make_optimizer
from ablations.execute.run import train
from ablations.execute.stack import (Member, StackedAdamW, StackedSGD, clip_member, clip_stacked, stack_key,
                                     stackable, train_stack)
from models.errors import ConfigError
from tests.ablations.execute.test_stack import steps_like_torch

TINY = ["task=copy", "model.d_model=32", "model.n_layers=1", "trainer.max_steps=40", "trainer.log_every=5",
        "trainer.val_every=20", "trainer.diagnostics_every=0", "task.n_train=1000", "task.n_eval=100"]


def _config(*overrides):
    return to_run_config(compose_config([*TINY, *overrides]))


def _losses(run_dir) -> pd.Series:
    log = pd.read_csv(run_dir / "metrics.csv").dropna(subset=["train/loss"])
    return log.set_index("step")["train/loss"]


# --- validation ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override,words", [
    ("optim.name=lamb", "valid: adamw, adam, sgd, muon"),
    ("optim.schedule=cosin", "did you mean 'cosine'"),
    ("optim.betas=[0.9]", "two numbers in [0, 1)"),
    ("optim.betas=[0.9,1.0]", "two numbers in [0, 1)"),
    ("optim.eps=0", "optim.eps must be positive"),
    ("optim.momentum=1.0", "optim.momentum must be in [0, 1)"),
    ("trainer.grad_clip=-1", "trainer.grad_clip must be >= 0"),
])
def test_bad_values_are_one_line_errors(override, words):
    with pytest.raises(ConfigError) as error:
        _config(override)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_the_defaults_are_todays_optimiser_and_keep_todays_hash():
    cfg = _config()
    assert (cfg.optim.name, cfg.optim.betas, cfg.optim.eps, cfg.optim.schedule) == ("adamw", (0.9, 0.98), 1e-8,
                                                                                  "cosine")
    assert cfg.trainer.grad_clip == 0
    assert OPTIM_DEFAULTS["betas"] == BETAS  # the config's default is the module's
    # at their defaults the new keys drop out of what a hash covers: the keys of the earlier configs remain
    assert set(without_later_defaults("optim", dataclasses.asdict(cfg.optim))) == {"lr", "warmup_steps",
                                                                                  "weight_decay", "batch_size"}
    assert not {"grad_clip", "checkpoint", "logger"} & set(without_later_defaults("trainer",
                                                                                  dataclasses.asdict(cfg.trainer)))
    # an explicit default is the same run; a changed value is another run
    assert _config("optim.name=adamw", "optim.betas=[0.9,0.98]", "trainer.grad_clip=0").hash() == cfg.hash()
    for override in ("optim.name=adam", "optim.betas=[0.9,0.99]", "optim.eps=1e-6", "optim.schedule=constant",
                     "trainer.grad_clip=1.0"):
        assert _config(override).hash() != cfg.hash(), override


# --- the schedules -----------------------------------------------------------------------------------------------

def test_schedule_values_at_known_steps():
    warmup, total = 10, 110
    assert lr_factor(4, warmup, total, "constant") == 0.5  # warmup is linear in every schedule but inverse_sqrt
    assert lr_factor(9, warmup, total, "constant") == 1.0 == lr_factor(100, warmup, total, "constant")
    assert lr_factor(10, warmup, total, "linear") == 1.0
    assert lr_factor(60, warmup, total, "linear") == pytest.approx(0.5)
    assert lr_factor(110, warmup, total, "linear") == 0.0
    assert lr_factor(60, warmup, total, "cosine") == pytest.approx(0.55)  # halfway down to 10%
    assert lr_factor(110, warmup, total, "cosine") == pytest.approx(0.1)
    # inverse_sqrt: lr * min(1, s/w) * sqrt(w / max(s, w)), s = step + 1 (Vaswani et al. 2017)
    assert lr_factor(4, warmup, total, "inverse_sqrt") == pytest.approx(0.5)
    assert lr_factor(9, warmup, total, "inverse_sqrt") == 1.0
    assert lr_factor(39, warmup, total, "inverse_sqrt") == pytest.approx(0.5)  # s = 40 = 4w: 1/sqrt(4)
    assert lr_factor(999, warmup, total, "inverse_sqrt") == pytest.approx(math.sqrt(10 / 1000))
    assert lr_factor(3, 0, total, "inverse_sqrt") == pytest.approx(0.5)  # no warmup: 1/sqrt(s)


# --- the optimisers against torch's own --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_make_optimizer_is_the_torch_optimiser_with_decay_on_matrices(name):
    model = torch.nn.Linear(4, 3)
    optim = OptimConfig(lr=0.1, warmup_steps=0, weight_decay=0.2, batch_size=4, name=name, betas=[0.8, 0.9],
                        eps=1e-6, momentum=0.5)
    optimizer = make_optimizer(model.parameters(), optim)
    assert type(optimizer) is {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.2, 0.0]
    assert optimizer.param_groups[0]["params"] == [model.weight] and optimizer.param_groups[1]["params"] == [model.bias]
    if name == "sgd":
        assert optimizer.defaults["momentum"] == 0.5 and optimizer.defaults["nesterov"] is False
    else:
        assert optimizer.defaults["betas"] == (0.8, 0.9) and optimizer.defaults["eps"] == 1e-6


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_stacked_optimiser_is_torch_optimiser_per_member(name):
    torch.manual_seed(0)
    lrs, decays = [1e-2, 3e-3, 5e-2], [0.0, 0.1, 0.01]
    optim = OptimConfig(lr=1.0, warmup_steps=0, weight_decay=0.0, batch_size=4, name=name, betas=[0.8, 0.95],
                        eps=1e-6, momentum=0.9)
    start = {"w": torch.randn(3, 4, 5), "b": torch.randn(3, 5)}
    stacked = {n: p.clone().requires_grad_() for n, p in start.items()}
    optimizer = stack_module.stacked_optimizer(stacked, optim)
    assert isinstance(optimizer, StackedSGD if name == "sgd" else StackedAdamW)
    alone = [{n: p[k].clone().requires_grad_() for n, p in start.items()} for k in range(3)]
    # each member alone: torch's own optimiser, as module.make_optimizer builds it (decay on the matrix only)
    references = [make_optimizer([a["w"], a["b"]], OptimConfig(**{**optim.__dict__, "lr": lrs[k],
                                                                  "weight_decay": decays[k]}))
                  for k, a in enumerate(alone)]
    steps_like_torch(stacked, optimizer, alone, references, lrs, decays, schedule="linear")


# --- gradient clipping ------------------------------------------------------------------------------------------

def test_clipping_is_torchs_clip_grad_norm_per_member():
    torch.manual_seed(0)
    grads = [torch.randn(3, 4, 5) * 3, torch.randn(3, 5)]
    limits = [1.0, 0.0, 100.0]  # clipped, off, above the norm (unchanged)
    for engine_clip in ("member", "stacked"):
        stacked = [g.clone() for g in grads]
        if engine_clip == "member":
            for i, limit in enumerate(limits):
                if limit:
                    clip_member([g[i] for g in stacked], limit)
        else:
            clip_stacked(stacked, limits)
        for i, limit in enumerate(limits):
            params = [torch.nn.Parameter(torch.zeros_like(g[i])) for g in grads]
            for p, g in zip(params, grads):
                p.grad = g[i].clone()
            if limit:
                torch.nn.utils.clip_grad_norm_(params, limit)
            for p, g in zip(params, stacked):
                torch.testing.assert_close(g[i], p.grad, rtol=1e-6, atol=0)
        norms = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g[0]) for g in stacked]))
        assert float(norms) <= 1.0 + 1e-5


def test_grad_clip_bounds_the_update_norm_of_a_run(tmp_path, monkeypatch):
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        total = original(parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters]))
        seen.append((float(total), float(after)))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    row = train(_config("trainer.grad_clip=0.05", "trainer.max_steps=10"), tmp_path, variant="v")
    assert row["status"] == "ok" and len(seen) == 10
    assert max(before for before, _ in seen) > 0.05  # the limit was reached ...
    assert all(after <= 0.05 * (1 + 1e-4) for _, after in seen)  # ... and held


# --- each optimiser and schedule trains, and stacks as it trains alone -----------------------------------------------

COMBINATIONS = [("optim.name=adam", "optim.weight_decay=0.01", "optim.schedule=constant"),
                ("optim.name=sgd", "optim.lr=0.3", "optim.schedule=linear", "optim.weight_decay=0.001"),
                ("optim.betas=[0.9,0.99]", "optim.eps=1e-6", "optim.schedule=inverse_sqrt",
                 "optim.warmup_steps=8", "trainer.grad_clip=0.5")]


@pytest.mark.slow
@pytest.mark.parametrize("stack_engine", ["loop", "vmap"])
@pytest.mark.parametrize("overrides", COMBINATIONS, ids=["adam-constant", "sgd-linear", "adamw-invsqrt-clip"])
def test_each_optimiser_and_schedule_trains_and_stacks_as_alone(overrides, stack_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(stack_module, "AUTO_ENGINE", {"cpu": stack_engine})
    members = [_config("seed=0", *overrides), _config("seed=1", *overrides, "optim.lr=0.002")
               if "optim.name=sgd" not in overrides else _config("seed=1", *overrides, "optim.lr=0.1")]
    assert stack_key(members[0]) == stack_key(members[1]) and stackable(members[0])[0]
    alone = [train(cfg, tmp_path / f"alone{i}", variant="v") for i, cfg in enumerate(members)]
    rows = train_stack([Member(cfg, tmp_path / f"stacked{i}", "v") for i, cfg in enumerate(members)])
    for i, (row, ref) in enumerate(zip(rows, alone)):
        assert row["status"] == ref["status"] == "ok"
        losses, ref_losses = _losses(tmp_path / f"stacked{i}"), _losses(tmp_path / f"alone{i}")
        assert ref_losses.iloc[-1] < ref_losses.iloc[0]  # it trains
        assert list(losses.index) == list(ref_losses.index)
        tolerance = 0 if stack_engine == "loop" else 1e-4  # the loop engine runs the very kernels of the run alone
        assert ((losses - ref_losses).abs() / ref_losses).max() <= tolerance
        assert abs(row["score"] - ref["score"]) < 0.01
        result = json.loads((tmp_path / f"stacked{i}" / "result.json").read_text())
        assert result["config"]["optim"] == json.loads((tmp_path / f"alone{i}" / "result.json").read_text())[
            "config"]["optim"]


def test_members_may_differ_in_schedule_and_clip_but_not_in_optimiser():
    base = _config()
    assert stack_key(_config("optim.schedule=linear", "trainer.grad_clip=1.0")) == stack_key(base)
    for override in ("optim.name=adam", "optim.betas=[0.9,0.99]", "optim.eps=1e-6", "optim.momentum=0.5"):
        assert stack_key(_config(override)) != stack_key(base), override


# --- a searched schedule stacks: a member with its own schedule computes what it computes alone ----------------------

def test_a_stacked_member_with_its_own_schedule_equals_its_run_alone(tmp_path, monkeypatch):
    from ablations.config.sweep import SweepConfig

    space = {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}, "optim.schedule": {"choices": ["cosine", "linear"]}}
    sweep = {"name": "s", "trials": 2, "seeds": 0, "pruner": "none", "pruner_startup_trials": 0, "sampler_seed": 0,
             "storage": None, "workers": 1, "grace_seconds": 120}
    assert SweepConfig.from_dict({**sweep, "space": space}).stackable
    monkeypatch.setattr(stack_module, "AUTO_ENGINE", {"cpu": "loop"})
    short = ("trainer.max_steps=16", "trainer.val_every=8", "optim.warmup_steps=4")
    members = [_config("seed=0", *short, "optim.schedule=cosine"),
               _config("seed=0", *short, "optim.schedule=constant", "optim.lr=0.002")]
    assert stack_key(members[0]) == stack_key(members[1]) and stackable(members[0])[0]
    alone = [train(cfg, tmp_path / f"alone{i}", variant="v") for i, cfg in enumerate(members)]
    rows = train_stack([Member(cfg, tmp_path / f"stacked{i}", "v") for i, cfg in enumerate(members)])
    first = [_losses(tmp_path / f"alone{i}") for i in range(2)]
    assert not first[0].equals(first[1])  # the schedules make the two runs differ ...
    for i, (row, ref) in enumerate(zip(rows, alone)):
        assert row["status"] == ref["status"] == "ok"
        assert _losses(tmp_path / f"stacked{i}").equals(first[i])  # ... and each member is its run alone, exactly
        assert row["score"] == ref["score"]


# --- muon: torch.optim.Muon on the blocks' matrices, AdamW on the rest --------------------------------------------------

def test_muon_steps_the_hidden_matrices_its_own_way_and_the_rest_as_adamw():
    from ablations.execute.module import MuonWithAdamW, hidden_matrices

    cfg = _config("optim.name=muon", "optim.weight_decay=0.01")
    net = _tiny_transformer()
    twin = _tiny_transformer()
    twin.load_state_dict(net.state_dict())
    hidden = hidden_matrices(net)
    assert hidden and all(p.dim() == 2 for p in hidden)
    assert all(id(p) not in {id(h) for h in hidden} for p in (net.embed.weight, net.head.weight))
    muon = make_optimizer(net.parameters(), cfg.optim, hidden=hidden)
    adamw = make_optimizer(twin.parameters(), dataclasses.replace(cfg.optim, name="adamw"))
    assert isinstance(muon, MuonWithAdamW)
    x = torch.randint(0, 10, (4, 12))
    for model, optimizer in ((net, muon), (twin, adamw)):  # one step from the same weights: the same gradients
        optimizer.zero_grad()
        model(x).logsumexp(-1).mean().backward()
        optimizer.step()
    names = dict(net.named_parameters())
    other = dict(twin.named_parameters())
    hidden_names = [n for n, p in names.items() if any(p is h for h in hidden)]
    before = _tiny_transformer().state_dict()  # the same init (seed 0)
    for name in hidden_names:  # Muon moved them, and not as AdamW did
        assert not torch.equal(names[name], before[name]) and not torch.allclose(names[name], other[name])
    for name in ("embed.weight", "head.weight"):  # AdamW's, as in the AdamW run
        assert torch.allclose(names[name], other[name], atol=1e-6)
    state = muon.state_dict()
    assert set(state) == {"muon", "adamw"} and state["muon"]["state"]
    muon.load_state_dict(state)


def _tiny_transformer():
    from models.config import ModelConfig
    from models.transformer import Transformer

    torch.manual_seed(0)
    return Transformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32), vocab_size=10, max_len=12)


def test_muon_trains_a_run_and_does_not_stack(tmp_path):
    cfg = _config("optim.name=muon", "trainer.max_steps=20", "trainer.val_every=10")
    assert stackable(cfg) == (False, "optim.name=muon has no stacked optimiser; its runs train one by one")
    row = train(cfg, tmp_path / "muon", variant="v")
    losses = _losses(tmp_path / "muon")
    assert row["status"] == "ok" and losses.iloc[-1] < losses.iloc[0]
    adamw = train(_config("trainer.max_steps=20", "trainer.val_every=10"), tmp_path / "adamw", variant="v")
    assert not losses.equals(_losses(tmp_path / "adamw")) and adamw["status"] == "ok"
