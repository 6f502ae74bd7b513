"""ablations/execute/stack.py: stacked members train exactly as their unstacked runs, with either engine (vmap,
loop), end on their own without touching the others, write the same files, and a plugin component either stacks or
is reported unstackable."""

import json

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
from optuna.exceptions import TrialPruned

import ablations.execute.stack as stack_module
import ablations.plugins as plugins
from ablations.config import compose_config, to_run_config
from ablations.execute.module import BETAS, lr_factor
from ablations.execute.run import train
from ablations.execute.stack import Member, StackedAdamW, engine, folded_attention, stack_key, stackable, train_stack
from models.errors import ConfigError

TINY = ["task=copy", "model.d_model=32", "model.n_layers=2", "trainer.max_steps=60", "trainer.log_every=1",
        "trainer.val_every=20", "trainer.diagnostics_every=20", "task.n_train=2000", "task.n_eval=200"]
MEMBERS = [("seed=0", "optim.lr=3e-3"), ("seed=1", "optim.lr=1e-3"), ("seed=2", "optim.lr=5e-3")]


def _config(*overrides):
    return to_run_config(compose_config([*TINY, *overrides]))


def _losses(run_dir) -> pd.Series:
    log = pd.read_csv(run_dir / "metrics.csv").dropna(subset=["train/loss"])
    return log.set_index("step")["train/loss"]


def _diagnostics(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "diagnostics.csv", keep_default_na=False)


@pytest.fixture(params=["loop", "vmap"])
def engine_on_cpu(request, monkeypatch):
    """The engine `trainer.stack_engine=auto` picks on the CPU, set to each of them in turn."""
    monkeypatch.setattr(stack_module, "AUTO_ENGINE", {"cpu": request.param})
    return request.param


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The three members' unstacked runs (row, run directory)."""
    folder = tmp_path_factory.mktemp("alone")
    return [(train(_config(*o), folder / str(i), variant="v"), folder / str(i)) for i, o in enumerate(MEMBERS)]


@pytest.mark.slow
def test_each_member_trains_as_its_unstacked_run(engine_on_cpu, alone, tmp_path):
    rows = train_stack([Member(_config(*o), tmp_path / str(i), "v") for i, o in enumerate(MEMBERS)])
    assert len(rows) == len(MEMBERS)
    for i, (row, (ref, ref_dir)) in enumerate(zip(rows, alone)):
        run_dir = tmp_path / str(i)
        assert row.keys() == ref.keys() and row["status"] == ref["status"] == "ok"
        assert row["seed"] == ref["seed"] and row["steps"] == ref["steps"] and row["config_hash"] == ref["config_hash"]
        assert abs(row["score"] - ref["score"]) < 0.01
        losses, ref_losses = _losses(run_dir), _losses(ref_dir)
        assert list(losses.index) == list(ref_losses.index)
        first = ref_losses.index < 50
        assert ((losses[first] - ref_losses[first]).abs() / ref_losses[first]).max() < 1e-4
        log, ref_log = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(ref_dir / "metrics.csv")
        assert list(log.columns) == list(ref_log.columns) and list(log["step"]) == list(ref_log["step"])
        keys = ["step", "layer", "branch", "head", "metric"]
        diag, ref_diag = _diagnostics(run_dir), _diagnostics(ref_dir)
        assert diag[keys].equals(ref_diag[keys])
        assert ((diag["value"] - ref_diag["value"]).abs() <= 1e-3 * ref_diag["value"].abs() + 1e-6).all()
        result, ref_result = (json.loads((d / "result.json").read_text()) for d in (run_dir, ref_dir))
        assert set(result) - {"stack"} == set(ref_result) and result["config"] == ref_result["config"]
    assert len({r["score"] for r in rows}) > 1  # the members really are different runs


class PruneAtFirstValidation(pl.Callback):
    def on_validation_end(self, trainer, pl_module):
        raise TrialPruned(f"pruned at step {trainer.global_step}")


@pytest.mark.slow
def test_a_diverging_and_a_pruned_member_leave_the_others_unchanged(engine_on_cpu, tmp_path):
    common = ["trainer.log_every=3", "trainer.val_every=20"]
    keep = [_config(*o, *common) for o in MEMBERS[:2]]
    hot = _config("seed=3", "optim.lr=1e3", "optim.warmup_steps=0", *common)
    pruned = _config("seed=4", *common)
    asked = []

    def prune(step, value):
        asked.append((step, value))
        return True

    with_them = train_stack([Member(keep[0], tmp_path / "a0", "v"), Member(hot, tmp_path / "hot", "v"),
                             Member(keep[1], tmp_path / "a1", "v"), Member(pruned, tmp_path / "pruned", "v",
                                                                           on_validation=prune)])
    without = train_stack([Member(c, tmp_path / f"b{i}", "v") for i, c in enumerate(keep)])
    for i, row in enumerate([with_them[0], with_them[2]]):
        assert row["status"] == without[i]["status"] == "ok"
        assert row["score"] == pytest.approx(without[i]["score"], abs=1e-6)
        assert row["test_loss"] == pytest.approx(without[i]["test_loss"], rel=1e-6)
        a, b = _losses(tmp_path / f"a{i}"), _losses(tmp_path / f"b{i}")
        assert list(a.index) == list(b.index) and ((a - b).abs() <= 1e-6 * b.abs()).all()

    # The ended members end as their unstacked runs do: same status, steps and logged rows.
    hot_row, pruned_row = with_them[1], with_them[3]
    assert hot_row["status"] == "diverged" and pruned_row["status"] == "pruned"
    assert asked == [(20, pruned_row["val_score"])] and pruned_row["steps"] == 20
    ref_hot = train(hot, tmp_path / "hot_alone", variant="v")
    ref_pruned = train(pruned, tmp_path / "pruned_alone", variant="v", callbacks=[PruneAtFirstValidation()])
    for row, ref, name in [(hot_row, ref_hot, "hot"), (pruned_row, ref_pruned, "pruned")]:
        assert (row["status"], row["steps"], row["diverged_step"]) == (ref["status"], ref["steps"], ref["diverged_step"])
        log, ref_log = pd.read_csv(tmp_path / name / "metrics.csv"), pd.read_csv(tmp_path / f"{name}_alone" / "metrics.csv")
        assert list(log.columns) == list(ref_log.columns)
        assert sorted(log["step"]) == sorted(ref_log["step"])
        if name == "pruned" or engine_on_cpu == "loop":
            # A diverged run's last validation reads parameters blown up by lr=1e3: under vmap's other kernels
            # their rounding differs and the blow-up amplifies it, so only the loop engine (its unstacked run's
            # own kernels) repeats that number.
            assert row["val_score"] == pytest.approx(ref["val_score"], rel=1e-4)
    assert 0 < hot_row["diverged_step"] < 60


@pytest.mark.parametrize("max_steps, val_every, rows", [(30, 100, [29]), (40, 20, [19, 39])])
def test_members_validate_at_their_last_step_as_their_unstacked_runs(engine_on_cpu, max_steps, val_every, rows,
                                                                      tmp_path):
    """A budget below val_every validates once, after the last update; one on a multiple validates at each multiple
    once. The log rows equal the unstacked run's, with log_every=7 leaving a loss pending at the end (written at the
    last batch, before its validation row, as Lightning writes a stopping run's)."""
    budget = [f"trainer.max_steps={max_steps}", f"trainer.val_every={val_every}", "trainer.log_every=7"]
    cfgs = [_config(*o, *budget) for o in MEMBERS[:2]]
    asked = []
    members = [Member(cfgs[0], tmp_path / "s0", "v", on_validation=lambda step, value: asked.append(step) or False),
               Member(cfgs[1], tmp_path / "s1", "v")]
    stacked = train_stack(members)
    assert asked == [r + 1 for r in rows]
    for i, (cfg, row) in enumerate(zip(cfgs, stacked)):
        ref = train(cfg, tmp_path / f"r{i}", variant="v")
        assert row["status"] == ref["status"] == "ok" and row["steps"] == ref["steps"] == max_steps
        assert row["val_score"] is not None and row["val_score"] == pytest.approx(ref["val_score"], abs=1e-3)
        log, ref_log = pd.read_csv(tmp_path / f"s{i}" / "metrics.csv"), pd.read_csv(tmp_path / f"r{i}" / "metrics.csv")
        assert list(log.columns) == list(ref_log.columns)
        assert list(log["step"]) == list(ref_log["step"])  # the same rows in the same order
        assert log.isna().equals(ref_log.isna())  # each row holds the same values (a loss or a validation)
        pd.testing.assert_frame_equal(log, ref_log, rtol=1e-3)
        assert list(log.dropna(subset=["val/accuracy"])["step"]) == rows


def steps_like_torch(stacked, optimizer, alone, references, lrs, decays, schedule="cosine") -> None:
    """Five updates with the same random gradients, stacked and member by member (torch's optimisers as
    `references`, each over its member's `alone` tensors); then every member's parameters must agree."""
    for step in range(5):
        grads = {n: torch.randn_like(p) for n, p in stacked.items()}
        for n, p in stacked.items():
            p.grad = grads[n].clone()
        factor = lr_factor(step, 2, 5, schedule)
        optimizer.step([lr * factor for lr in lrs], decays)
        for k, (a, reference) in enumerate(zip(alone, references)):
            for group in reference.param_groups:
                group["lr"] = lrs[k] * factor
            for n, p in a.items():
                p.grad = grads[n][k].clone()
            reference.step()
    for k, a in enumerate(alone):
        for n, p in a.items():
            torch.testing.assert_close(stacked[n][k], p, rtol=1e-6, atol=1e-7)


def test_stacked_adamw_is_torch_adamw_per_member():
    torch.manual_seed(0)
    lrs, decays = [1e-2, 3e-3, 5e-2], [0.0, 0.1, 0.01]
    start = {"w": torch.randn(3, 4, 5), "b": torch.randn(3, 5)}
    stacked = {n: p.clone().requires_grad_() for n, p in start.items()}
    optimizer = StackedAdamW(stacked)
    alone = [{n: p[k].clone().requires_grad_() for n, p in start.items()} for k in range(3)]
    references = [torch.optim.AdamW([{"params": [a["w"]], "weight_decay": decays[k]},
                                     {"params": [a["b"]], "weight_decay": 0.0}], lr=lrs[k], betas=BETAS)
                  for k, a in enumerate(alone)]
    steps_like_torch(stacked, optimizer, alone, references, lrs, decays)


@pytest.mark.parametrize("mask_shape,batched_mask", [(None, False), ((7, 7), False), ((5, 4, 7, 7), False),
                                                     ((4, 7, 7), True), ((5, 1, 7, 7), True)])
def test_folded_attention_is_attention_per_member(mask_shape, batched_mask):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 5, 4, 7, 8, requires_grad=True) for _ in range(3))
    mask = None
    if mask_shape is not None:
        mask = torch.randn(((3,) if batched_mask else ()) + mask_shape)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    in_dims = (0, 0, 0, 0 if batched_mask else None)
    with folded_attention():
        out = torch.func.vmap(lambda a, b, c, m: torch.nn.functional.scaled_dot_product_attention(a, b, c, attn_mask=m),
                              in_dims=in_dims)(q, k, v, mask)
    assert torch.nn.functional.scaled_dot_product_attention is sdpa  # restored
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    member_mask = (lambda i: mask[i]) if batched_mask else (lambda i: mask)
    ref = torch.stack([sdpa(q[i], k[i], v[i], attn_mask=member_mask(i)) for i in range(3)])
    torch.testing.assert_close(out, ref)
    for grad, ref_grad in zip(grads, torch.autograd.grad(ref.square().sum(), (q, k, v))):
        torch.testing.assert_close(grad, ref_grad)


PLUGIN = '''
import torch
from models.attention._base import MultiHeadAttention, softmax_weights, visible
from models.components import ATTENTION


@ATTENTION.register("{name}")
class Written(MultiHeadAttention):
    """Softmax attention written out{why}."""

    def mix(self, q, k, v, *, bias, n_prefix):
        scale = {scale}
        weights = softmax_weights(q * scale, k, bias, visible(q.shape[2], k.shape[2], causal=self.causal,
                                                            prefix=n_prefix, device=q.device))
        return weights @ v
'''


def _plugin(folder, module, name, scale="1.0", why=""):
    (folder / f"{module}.py").write_text(PLUGIN.format(name=name, scale=scale, why=why))
    plugins.load_plugins([module])


def test_a_plugin_attention_stacks_and_matches_its_unstacked_runs(engine_on_cpu, isolated_plugins, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    _plugin(tmp_path, "written_attention", "written")
    cfgs = [_config("model.attention=written", "plugins=[written_attention]", "trainer.max_steps=12",
                    "trainer.diagnostics_every=6", f"seed={s}") for s in (0, 1)]
    assert stackable(cfgs[0]) == (True, "")
    rows = train_stack([Member(c, tmp_path / f"s{i}", "v") for i, c in enumerate(cfgs)])
    for i, (cfg, row) in enumerate(zip(cfgs, rows)):
        ref = train(cfg, tmp_path / f"r{i}", variant="v")
        assert row["status"] == ref["status"] == "ok" and row["steps"] == ref["steps"]
        a, b = _losses(tmp_path / f"s{i}"), _losses(tmp_path / f"r{i}")
        assert ((a - b).abs() / b).max() < 1e-4
        assert abs(row["score"] - ref["score"]) < 0.01


def _peeking(tmp_path):
    # A scale read from the data with .item(): Python control over a value, which vmap cannot batch.
    _plugin(tmp_path, "peeking_attention", "peeking", scale="1.0 / max(1.0, q.detach().abs().max().item())",
            why=", scaled by a value read back to Python")
    return _config("model.attention=peeking", "plugins=[peeking_attention]", "trainer.max_steps=8",
                   "trainer.val_every=4")


def test_a_plugin_attention_that_cannot_vmap_is_reported(isolated_plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stack_module, "AUTO_ENGINE", {"cpu": "vmap"})
    cfg = _peeking(tmp_path)
    ok, reason = stackable(cfg)
    assert not ok and "vmap" in reason and "\n" not in reason
    with pytest.raises(ValueError, match="does not stack"):
        train_stack([Member(cfg, tmp_path / "s", "v")])


def test_the_loop_engine_stacks_what_cannot_vmap(isolated_plugins, tmp_path, monkeypatch):
    """Under the loop engine each member runs its own module, so the same plugin stacks and trains as alone."""
    monkeypatch.chdir(tmp_path)
    _peeking(tmp_path)
    cfgs = [_config("model.attention=peeking", "plugins=[peeking_attention]", "trainer.stack_engine=loop",
                    "trainer.max_steps=8", "trainer.val_every=4", f"seed={s}") for s in (0, 1)]
    assert engine(cfgs[0]) == "loop" and stackable(cfgs[0]) == (True, "")
    rows = train_stack([Member(c, tmp_path / f"s{i}", "v") for i, c in enumerate(cfgs)])
    for i, (cfg, row) in enumerate(zip(cfgs, rows)):
        ref = train(cfg, tmp_path / f"r{i}", variant="v")
        assert row["status"] == ref["status"] == "ok" and row["steps"] == ref["steps"] == 8
        a, b = _losses(tmp_path / f"s{i}"), _losses(tmp_path / f"r{i}")
        assert list(a.index) == list(b.index) and ((a - b).abs() / b).max() < 1e-4


def test_the_engine_is_the_setting_or_the_devices_measured_one(monkeypatch):
    assert engine(_config("trainer.stack_engine=vmap")) == "vmap"
    assert engine(_config("trainer.stack_engine=loop")) == "loop"
    assert engine(_config("trainer.accelerator=cpu")) == stack_module.AUTO_ENGINE["cpu"] == "loop"
    with pytest.raises(ConfigError, match=r"^unknown trainer\.stack_engine 'fast'; valid: auto, vmap, loop$"):
        _config("trainer.stack_engine=fast")
    assert _config("trainer.stack_engine=vmap").hash() == _config().hash()  # how it computes, not what


def test_what_is_not_stackable_says_why():
    ok, reason = stackable(_config("model.dropout=0.1"))
    assert not ok and "dropout" in reason
    ok, reason = stackable(_config("trainer.devices=2", "trainer.strategy=ddp"))
    assert not ok and "one device" in reason


def test_stack_key_groups_what_may_share_a_stack():
    key = stack_key(_config())
    for same in (["seed=5"], ["optim.lr=1e-2"], ["optim.warmup_steps=3"], ["optim.weight_decay=0.1"],
                 ["trainer.stack=4"], ["trainer.diagnostics_every=0"], ["seed=2", "optim.lr=2e-3"]):
        assert stack_key(_config(*same)) == key, same
    others = [["model.d_model=64"], ["task=reverse"], ["model.attention=linear"], ["optim.batch_size=32"],
              ["trainer.max_steps=30"], ["trainer.log_every=3"], ["task.length=8"]]
    keys = {stack_key(_config(*other)) for other in others}
    assert key not in keys and len(keys) == len(others)


def test_trainer_stack_is_a_positive_integer():
    assert _config().trainer.stack == 1 and _config("trainer.stack=8").trainer.stack == 8
    assert _config("trainer.stack=8").hash() == _config().hash()  # stacking does not change what a run computes
    for bad in ("0", "-1", "1.5"):
        with pytest.raises(ConfigError, match=r"^trainer\.stack must be") as info:
            _config(f"trainer.stack={bad}")
        assert "\n" not in str(info.value)
