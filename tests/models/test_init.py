"""models/init/: each `model.init` scheme draws what its definition says, and the default is the old behaviour."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import INIT
from models.config import ModelConfig
from models.errors import ConfigError
from models.init.small import small_std
from models.transformer import build_model

VOCAB = 13
# Wide enough that each matrix holds thousands of draws (the moment checks below are a few percent tight).
WIDE = ModelConfig(d_model=64, n_layers=3, n_heads=4, d_ff=256)


def built(seed=0, **changes):
    torch.manual_seed(seed)
    return build_model(dataclasses.replace(WIDE, **changes), vocab_size=VOCAB, max_len=32)


def legacy_init(module: nn.Module) -> None:
    """The suite's initialisation before `model.init` existed (models/transformer.py:_init_weights), verbatim."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def linears(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def embeddings(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]


def test_the_shipped_schemes_are_registered_and_normal_is_the_default():
    assert {"normal", "gpt2", "torch", "xavier", "small"} <= set(INIT.names())
    assert ModelConfig().init == "normal"


@pytest.mark.parametrize("changes", [{}, {"ffn": "swiglu"}, {"memory": "tokens"}, {"zero_init_branches": True},
                                     {"tie_head": True}, {"attention": "performer"}, {"position": "sinusoidal"},
                                     {"residual": "gated", "norm": "rmsnorm"}])
def test_normal_is_bit_identical_to_the_previous_initialisation(changes):
    """The previous code built every module (drawing PyTorch's defaults), then applied `legacy_init` over the
    model, then zeroed branches, then tied the head. `torch` leaves the constructor's draws alone, so applying the
    legacy function to it replays the old code on the same random stream."""
    new = built(seed=3, **changes)
    old = built(seed=3, **{**changes, "init": "torch", "zero_init_branches": False, "tie_head": False})
    old.apply(legacy_init)
    if changes.get("zero_init_branches"):
        for block in old.blocks:
            for branch in block.branches():
                nn.init.zeros_(branch.out_proj.weight)
                nn.init.zeros_(branch.out_proj.bias)
    if changes.get("tie_head"):
        old.head.weight = old.embed.weight
    new_state, old_state = new.state_dict(), old.state_dict()
    assert new_state.keys() == old_state.keys()
    for name in new_state:
        assert torch.equal(new_state[name], old_state[name]), name


def test_normal_draws_every_linear_and_embedding_from_n_0_002_with_zero_biases():
    model = built()
    for name, module in linears(model) + embeddings(model):
        assert module.weight.std().item() == pytest.approx(0.02, rel=0.1), name
        assert module.weight.mean().abs().item() < 0.02 * 0.1, name
    for name, module in linears(model):
        assert module.bias is None or not module.bias.any(), name


def out_proj_names(model):
    return {f"blocks.{i}.{kind}.out_proj.weight" for i, block in enumerate(model.blocks)
            for kind in ("attn", "ffn") if getattr(block, kind) is not None}


@pytest.mark.parametrize("changes,n_residual", [({}, 6), ({"n_layers": 8}, 16), ({"ffn": "none"}, 3),
                                                ({"ffn": "swiglu"}, 6)])
def test_gpt2_scales_exactly_the_output_projections_by_one_over_sqrt_2n(changes, n_residual):
    """Same seed: every tensor equals `normal`'s except each branch's out_proj weight, which is normal's times
    1/sqrt(N), N the residual layers (2 per block; one when the feed-forward sublayer is removed)."""
    normal, gpt2 = built(seed=1, **changes).state_dict(), built(seed=1, init="gpt2", **changes).state_dict()
    scaled = out_proj_names(built(seed=1, **changes))
    assert len(scaled) == n_residual
    for name in normal:
        if name in scaled:
            assert torch.allclose(gpt2[name], normal[name] / math.sqrt(n_residual), rtol=1e-6, atol=0), name
            assert gpt2[name].std().item() == pytest.approx(0.02 / math.sqrt(n_residual), rel=0.1), name
        else:
            assert torch.equal(gpt2[name], normal[name]), name
    # the up-projection, qkv and head are not residual writers: untouched
    assert {n for n in normal if not torch.equal(gpt2[n], normal[n])} == scaled


def test_torch_keeps_pytorchs_module_defaults():
    """nn.Linear: kaiming-uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    alike; nn.Embedding: N(0, 1). Nothing is drawn after construction (the bit-identity test above relies on it)."""
    model = built(init="torch")
    for name, module in linears(model):
        bound = 1 / math.sqrt(module.in_features)
        for tensor in (module.weight, module.bias):
            if tensor is None:
                continue
            assert tensor.abs().max().item() <= bound, name
            if tensor.numel() >= 1000:  # filled out to the bound, with the uniform's variance bound^2 / 3
                assert tensor.abs().max().item() > 0.98 * bound, name
                assert tensor.var().item() == pytest.approx(bound ** 2 / 3, rel=0.1), name
    assert model.embed.weight.std().item() == pytest.approx(1.0, rel=0.15)
    # the `learned` position table draws its own N(0, 0.02) in its constructor, which `torch` leaves alone
    assert model.position.table.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_xavier_is_glorot_uniform_on_every_matrix_with_zero_biases():
    model = built(init="xavier")
    for name, module in linears(model) + embeddings(model):
        fan_out, fan_in = module.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        weight = module.weight
        assert weight.abs().max().item() <= bound, name
        assert weight.abs().max().item() > 0.98 * bound, name
        assert weight.var().item() == pytest.approx(bound ** 2 / 3, rel=0.1), name
    for name, module in linears(model):
        assert module.bias is None or not module.bias.any(), name


def test_small_draws_n_0_sqrt_2_over_5d_with_zero_biases():
    assert small_std(64) == pytest.approx(math.sqrt(2 / 320))
    for d_model in (32, 64):
        model = built(init="small", d_model=d_model)
        for name, module in linears(model) + embeddings(model):
            assert module.weight.std().item() == pytest.approx(math.sqrt(2 / (5 * d_model)), rel=0.1), name
        for name, module in linears(model):
            assert module.bias is None or not module.bias.any(), name


@pytest.mark.parametrize("scheme", INIT.names())
def test_every_scheme_builds_a_model_with_finite_outputs_and_keeps_zero_init_branches(scheme):
    model = built(init=scheme, zero_init_branches=True)
    logits = model(torch.randint(0, VOCAB, (2, 10)))
    assert logits.shape == (2, 10, VOCAB) and torch.isfinite(logits).all()
    for block in model.blocks:  # zero_init_branches still wins: it is applied after the scheme
        for branch in block.branches():
            assert not branch.out_proj.weight.any()


def test_schemes_differ_from_each_other_at_the_same_seed():
    weights = {s: built(seed=0, init=s).blocks[0].ffn.up.weight for s in INIT.names()}
    for a in weights:
        for b in weights:
            if a < b and {a, b} != {"normal", "gpt2"}:  # gpt2 changes only the out_proj matrices
                assert not torch.equal(weights[a], weights[b]), (a, b)


def test_unknown_scheme_is_one_line_naming_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        ModelConfig(init="gtp2")
    message = str(info.value)
    assert "\n" not in message and "'gtp2'" in message and "did you mean 'gpt2'" in message
    assert message.endswith("valid: " + ", ".join(INIT.names()))
    with pytest.raises(ConfigError, match="init must be a name"):
        ModelConfig(init=0.02)


def test_init_is_recorded_only_when_it_is_not_the_default():
    """Configs (and hashes) recorded before `model.init` existed stay the same; a chosen scheme is recorded."""
    assert "init" not in ModelConfig().to_dict()
    chosen = ModelConfig(init="xavier")
    assert chosen.to_dict()["init"] == "xavier"
    assert ModelConfig.from_dict(chosen.to_dict()) == chosen and hash(chosen) != hash(ModelConfig())
