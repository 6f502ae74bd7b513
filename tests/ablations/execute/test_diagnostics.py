"""ablations/diagnostics.py: each measurement on hand-built models whose answer is known."""

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from ablations.config import compose_config, to_run_config
from ablations.execute.diagnostics import Probe, attention_entropy, gradient_rows, rank1_residual, token_spread
from ablations.analyse.diagnostics import loss_events
from ablations.execute.run import train
from models import ModelConfig, build_model

CFG = ModelConfig(d_model=32, n_layers=4, n_heads=4, d_ff=64)
VOCAB = 13


def model(causal=True, **changes):
    torch.manual_seed(0)
    return build_model(dataclasses.replace(CFG, **changes), vocab_size=VOCAB, causal=causal)


def tokens(n=8, t=16, seed=0):
    return torch.randint(0, VOCAB, (n, t), generator=torch.Generator().manual_seed(seed))


def measure(net, inputs=None):
    frame = pd.DataFrame(Probe(net).measure(tokens() if inputs is None else inputs, step=0))
    return frame.set_index(["metric", "layer", "branch", "head"])["value"]


def test_zero_initialised_branches_contribute_nothing_at_step_0():
    values = measure(model(zero_init_branches=True))
    for metric in ("branch_ratio", "update_ratio"):
        contributions = values[metric]
        assert len(contributions) == 2 * CFG.n_layers  # every block, both branches
        assert (contributions == 0).all()
    # ...so every layer carries the embedding unchanged
    spread = values["token_spread"]
    assert spread.max() - spread.min() < 1e-12


def test_standard_branches_contribute_at_step_0_and_the_update_is_the_branch():
    values = measure(model())
    assert (values["branch_ratio"] > 0).all()
    # pre-norm with a standard residual: stream_out - stream_in is exactly the branch output
    assert torch.allclose(torch.tensor(values["branch_ratio"].values), torch.tensor(values["update_ratio"].values),
                          rtol=1e-6)


def test_rezero_gates_make_the_update_zero_while_the_branch_is_not():
    values = measure(model(residual="rezero"))
    assert (values["update_ratio"] == 0).all() and (values["branch_ratio"] > 0).all()


def test_pure_attention_without_residuals_collapses_rank_with_depth():
    """Dong et al. (2021): stacked self-attention without skip connections or MLPs loses rank doubly
    exponentially with depth. PyTorch's default (larger) init keeps the attention away from uniform, so the
    decay is visible layer by layer instead of complete after the first."""
    net = model(causal=False, n_layers=6, ffn="none", residual="none", norm="none")
    torch.manual_seed(1)
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
        elif isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight)
    spread = measure(net)["token_spread"].droplevel(["branch", "head"]).sort_index()
    assert list(spread.index) == list(range(7))  # the embedding, then after each of 6 blocks
    assert spread[0] > 0.9  # random tokens: far from identical
    assert spread[1] < spread[0] and spread[2] < 0.1 * spread[1]
    assert all(spread[i + 1] <= spread[i] for i in range(6)) and spread[6] < 1e-6
    # the full block (residuals, MLP, norms) at the suite's own init keeps the tokens apart at the same depth
    full = measure(model(causal=False, n_layers=6))["token_spread"].droplevel(["branch", "head"])
    assert full[6] > 0.5


def test_token_spread_and_rank1_residual_on_known_matrices():
    same = torch.randn(1, 1, 8).expand(3, 5, 8)  # every token identical: rank one
    assert torch.allclose(token_spread(same), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(rank1_residual(same), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    outer = torch.randn(2, 5, 1) * torch.randn(2, 1, 8)  # rank one, tokens not identical
    assert (token_spread(outer) > 0.1).all() and torch.allclose(rank1_residual(outer), torch.zeros(2).double(),
                                                                   atol=1e-6)
    orthogonal = torch.eye(4).unsqueeze(0)  # four equal singular values: residual sqrt(3/4)
    assert math.isclose(float(rank1_residual(orthogonal)), math.sqrt(0.75), rel_tol=1e-9)


def test_attention_entropy_of_uniform_and_one_hot_weights():
    uniform = torch.full((2, 3, 4, 5), 0.2)
    assert torch.allclose(attention_entropy(uniform), torch.full((3,), math.log(5), dtype=torch.float64))
    one_hot = torch.zeros(2, 3, 4, 5)
    one_hot[..., 1] = 1
    assert torch.allclose(attention_entropy(one_hot), torch.zeros(3, dtype=torch.float64))


def test_entropy_is_per_head_and_absent_for_kernelised_attention():
    values = measure(model())
    assert len(values["attention_entropy"]) == CFG.n_layers * CFG.n_heads
    # causal softmax over up to 16 keys: between one-hot and uniform over all 16
    assert ((values["attention_entropy"] > 0) & (values["attention_entropy"] < math.log(16))).all()
    assert "attention_entropy" not in measure(model(attention="linear")).index.get_level_values("metric")


def test_gradient_norms_by_depth_match_the_parameters_gradients():
    net = model()
    net(tokens()).logsumexp(-1).mean().backward()
    rows = pd.DataFrame(gradient_rows(net, step=0)).set_index("layer")["value"]
    assert list(rows.index) == list(range(CFG.n_layers + 2))  # embedding, blocks, head
    expected = torch.cat([p.grad.flatten() for p in net.blocks[2].parameters()]).norm()
    assert math.isclose(rows[3], float(expected), rel_tol=1e-6)


def test_loss_spikes_are_found_in_the_training_log(tmp_path):
    log = tmp_path / "metrics.csv"
    # as Lightning's CSV logger writes it: empty fields where a column was not logged, "nan" for a NaN loss
    log.write_text("step,train/loss,val/loss\n0,3.0,\n10,2.0,\n20,1.0,\n20,,0.9\n30,2.5,\n40,1.2,\n50,nan,\n")
    events = loss_events(log)
    assert list(events["step"]) == [30, 50]
    assert math.isclose(events["value"].iloc[0], 2.5) and math.isinf(events["value"].iloc[1])
    assert loss_events(tmp_path / "missing.csv").empty


TINY = ["task=copy", "trainer.max_steps=12", "trainer.val_every=6", "trainer.log_every=3", "model.d_model=16",
        "model.d_ff=32", "model.n_heads=2", "task.n_train=256", "task.n_eval=64"]


def test_a_run_writes_its_diagnostics_without_changing_what_it_trains(tmp_path):
    on = to_run_config(compose_config([*TINY, "trainer.diagnostics_every=5"]))
    off = to_run_config(compose_config([*TINY, "trainer.diagnostics_every=0"]))
    assert on.hash() == off.hash()  # diagnostics only read the model
    row_on, row_off = train(on, tmp_path / "on", variant="b"), train(off, tmp_path / "off", variant="b")
    result = lambda d: json.loads((tmp_path / d / "result.json").read_text())["test_metrics"]  # noqa: E731
    assert result("on") == result("off") and row_on["score"] == row_off["score"]
    assert not (tmp_path / "off" / "diagnostics.csv").exists()
    frame = pd.read_csv(tmp_path / "on" / "diagnostics.csv")
    assert list(frame.columns) == ["step", "layer", "branch", "head", "metric", "value"]
    measured = set(frame.loc[frame["metric"] == "branch_ratio", "step"])
    assert measured == {0, 5, 10, 12}  # step 0, every 5 steps, the last step
    assert set(frame.loc[frame["metric"] == "grad_norm", "step"]) == {0, 5, 10}
    assert {"branch_ratio", "update_ratio", "grad_norm", "token_spread", "rank1_residual",
            "attention_entropy"} <= set(frame["metric"])


@pytest.mark.parametrize("memory", ["xl", "tokens"])
def test_diagnostics_follow_memory_wrappers(memory):
    """Segmented memories call the blocks once per segment: the probe sees the whole sequence."""
    net = model(memory=memory, segment_len=8 if memory == "xl" else 0)
    values = measure(net)
    assert len(values["token_spread"]) == CFG.n_layers + 1
    assert (values["branch_ratio"] > 0).all()


def test_non_finite_activations_give_nan_not_an_error():
    """A diverging run still records its diagnostics (NaN where the activations are not finite)."""
    net = model()
    with torch.no_grad():
        net.blocks[1].attn.out_proj.weight.fill_(float("nan"))
    rank = measure(net)["rank1_residual"].droplevel(["branch", "head"])
    assert math.isnan(rank[4]) and math.isfinite(rank[0])


def test_the_geometric_schedule_is_dense_early_sparse_late_and_capped():
    from ablations.execute.diagnostics import schedule_steps

    assert schedule_steps(5, 12) == [0, 5, 10, 12]
    steps = schedule_steps(50, 1000, "geometric")
    assert steps[:9] == list(range(9)) and steps[-1] == 1000 and len(steps) < 60
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps == sorted(gaps[:-1]) + gaps[-1:] and max(gaps) == 50  # widening gaps, never beyond `every`
    assert all(gap <= max(1, 0.25 * step) for step, gap in zip(steps, gaps))  # each onset resolved to 25%
    assert schedule_steps(0, 100, "geometric") == []
    with pytest.raises(ValueError, match="unknown diagnostics schedule 'log'; valid: every, geometric"):
        schedule_steps(5, 10, "log")


def test_a_run_measures_on_the_geometric_schedule_and_an_unknown_one_is_refused(tmp_path):
    from ablations.config import ConfigError
    from ablations.execute.diagnostics import schedule_steps

    cfg = to_run_config(compose_config([*TINY, "trainer.diagnostics_every=5",
                                        "trainer.diagnostics_schedule=geometric"]))
    train(cfg, tmp_path / "g", variant="b")
    frame = pd.read_csv(tmp_path / "g" / "diagnostics.csv")
    assert sorted(set(frame.loc[frame["metric"] == "branch_ratio", "step"])) == schedule_steps(5, 12, "geometric")
    with pytest.raises(ConfigError, match="unknown trainer.diagnostics_schedule 'geometrc'"):
        to_run_config(compose_config([*TINY, "trainer.diagnostics_schedule=geometrc"]))
