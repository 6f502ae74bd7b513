"""models/residual/: how each branch meets the stream; per-branch residual modes; zero-initialised branches."""

import dataclasses

import pytest
import torch
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import NORM, RESIDUAL
from models.config import ModelConfig
from models.residual.gated import layerscale_init
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)
WITH_STREAM = ["standard", "rezero", "scaled", "gated"]  # the residuals that keep the stream


def tiny(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


def token_model(cfg, causal=True, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg, vocab_size=VOCAB, causal=causal, max_len=32).eval()


def stream_and_branch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 5, 16, generator=g), torch.randn(2, 5, 16, generator=g)


def hidden(seed=0):
    return torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(seed))


def test_the_variants_are_registered():
    assert set(WITH_STREAM) | {"none"} <= set(RESIDUAL.names())


@pytest.mark.parametrize("name", RESIDUAL.names())
def test_every_residual_is_constructible_and_keeps_the_shape(name):
    module = RESIDUAL.get(name)(TINY, 0)
    assert isinstance(module, nn.Module)
    stream, branch = stream_and_branch()
    assert module(stream, branch).shape == stream.shape
    model = token_model(tiny(residual=name))
    with torch.no_grad():
        assert torch.isfinite(model.run_blocks(hidden())).all()


# --- rezero -------------------------------------------------------------------------------------------------

def test_rezero_formula():
    module = RESIDUAL.get("rezero")(TINY, 0)
    assert module.alpha.shape == () and module.alpha.item() == 0.0
    stream, branch = stream_and_branch()
    assert torch.equal(module(stream, branch), stream)
    with torch.no_grad():
        module.alpha.fill_(0.3)
    torch.testing.assert_close(module(stream, branch), stream + 0.3 * branch)


@pytest.mark.parametrize("placement", ["pre", "sandwich"])
@pytest.mark.parametrize("norm", NORM.names())
def test_rezero_trunk_is_the_identity_at_init(norm, placement):
    model = token_model(tiny(residual="rezero", norm=norm, norm_placement=placement, n_layers=3))
    h = hidden()
    with torch.no_grad():
        torch.testing.assert_close(model.run_blocks(h), h, atol=0, rtol=0)
        for block in model.blocks:  # ...and not because the branches output zero
            assert block.attn(h, model.position).abs().max() > 1e-3
            block.attn_residual.alpha.fill_(0.5)
        assert (model.run_blocks(h) - h).abs().max() > 1e-3


def test_rezero_alpha_gets_a_gradient():
    model = token_model(tiny(residual="rezero")).train()
    model.run_blocks(hidden()).square().sum().backward()
    for block in model.blocks:
        for residual in (block.attn_residual, block.ffn_residual):
            assert residual.alpha.grad is not None and residual.alpha.grad.abs() > 0


# --- scaled -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_layers", [1, 2, 6, 48])
def test_scaled_default_is_depth_scaled(n_layers):
    module = RESIDUAL.get("scaled")(tiny(n_layers=n_layers), 0)
    beta = (2 * n_layers) ** -0.25
    assert module.beta == pytest.approx(beta)
    stream, branch = stream_and_branch()
    torch.testing.assert_close(module(stream, branch), stream + beta * branch)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_scaled_uses_residual_scale_when_set(scale):
    module = RESIDUAL.get("scaled")(tiny(residual_scale=scale, n_layers=8), 0)
    assert module.beta == scale
    stream, branch = stream_and_branch()
    torch.testing.assert_close(module(stream, branch), stream + scale * branch)
    assert not list(module.parameters())  # a fixed number, not learned


def test_scaled_in_a_block_multiplies_each_branch():
    cfg = tiny(residual="scaled", n_layers=4)
    beta = 8 ** -0.25
    model = token_model(cfg)
    block, seen = model.blocks[1], {}
    handles = [m.register_forward_hook(lambda _m, a, o, n=n: seen.__setitem__(n, (a[0], o)))
               for n, m in (("block", block), ("attn", block.attn), ("ffn", block.ffn), ("ffn_place", block.ffn_place))]
    with torch.no_grad():
        model.run_blocks(hidden())
    for h in handles:
        h.remove()
    torch.testing.assert_close(seen["ffn_place"][0], seen["block"][0] + beta * seen["attn"][1])
    torch.testing.assert_close(seen["block"][1], seen["ffn_place"][0] + beta * seen["ffn"][1])


def test_deepnorm_stream_weight_equals_inverse_branch_weight_under_post_norm():
    # the equivalence the `scaled` docstring relies on: LN(alpha x + G) == LN(x + G / alpha)
    norm = nn.LayerNorm(16, eps=1e-12)
    stream, branch = stream_and_branch()
    alpha = (2 * 6) ** 0.25
    torch.testing.assert_close(norm(alpha * stream + branch), norm(stream + branch / alpha), atol=1e-5, rtol=1e-5)


# --- gated (LayerScale) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_layers,init", [(2, 0.1), (18, 0.1), (24, 1e-5), (36, 1e-6)])
def test_gated_is_a_per_channel_gate_with_cait_init(n_layers, init):
    module = RESIDUAL.get("gated")(tiny(n_layers=n_layers), 0)
    assert module.gate.shape == (16,)
    assert layerscale_init(n_layers) == init
    torch.testing.assert_close(module.gate.detach(), torch.full((16,), init))


def test_gated_formula():
    module = RESIDUAL.get("gated")(TINY, 0)
    with torch.no_grad():
        module.gate.copy_(torch.linspace(-1, 2, 16))
    stream, branch = stream_and_branch()
    torch.testing.assert_close(module(stream, branch), stream + torch.linspace(-1, 2, 16) * branch)


# --- per-branch residual modes ------------------------------------------------------------------------------

@pytest.mark.parametrize("attn_res,ffn_res", [("rezero", "scaled"), ("gated", "none"), ("none", "standard")])
def test_per_branch_residuals_are_used_by_their_branch(attn_res, ffn_res):
    model = token_model(tiny(residual="standard", attn_residual=attn_res, ffn_residual=ffn_res))
    for block in model.blocks:
        assert type(block.attn_residual) is RESIDUAL.get(attn_res)
        assert type(block.ffn_residual) is RESIDUAL.get(ffn_res)


def test_per_branch_residual_defaults_to_residual():
    model = token_model(tiny(residual="gated", ffn_residual="rezero"))
    for block in model.blocks:
        assert type(block.attn_residual) is RESIDUAL.get("gated")
        assert type(block.ffn_residual) is RESIDUAL.get("rezero")


def test_attention_without_residual_and_ffn_with_one():
    model = token_model(tiny(attn_residual="none", ffn_residual="standard"))
    block, seen = model.blocks[0], {}
    handles = [m.register_forward_hook(lambda _m, a, o, n=n: seen.__setitem__(n, (a[0], o)))
               for n, m in (("block", block), ("attn", block.attn), ("ffn", block.ffn), ("ffn_place", block.ffn_place))]
    with torch.no_grad():
        model.run_blocks(hidden())
    for h in handles:
        h.remove()
    torch.testing.assert_close(seen["ffn_place"][0], seen["attn"][1], atol=0, rtol=0)  # the stream is dropped
    torch.testing.assert_close(seen["block"][1], seen["attn"][1] + seen["ffn"][1], atol=1e-6, rtol=1e-5)


# --- zero-initialised branches ------------------------------------------------------------------------------

@pytest.mark.parametrize("placement", ["pre", "sandwich"])  # post normalises the stream, so it is never the identity
@pytest.mark.parametrize("norm", NORM.names())
@pytest.mark.parametrize("residual", WITH_STREAM)
def test_zero_init_branches_make_the_trunk_the_identity(residual, norm, placement):
    cfg = tiny(residual=residual, norm=norm, norm_placement=placement, n_layers=3, zero_init_branches=True)
    model = token_model(cfg)
    h = hidden()
    with torch.no_grad():
        torch.testing.assert_close(model.run_blocks(h), h, atol=0, rtol=0)


@pytest.mark.parametrize("residual", ["standard", "scaled", "gated"])  # rezero is the identity anyway
def test_without_zero_init_the_trunk_is_not_the_identity(residual):
    model = token_model(tiny(residual=residual, zero_init_branches=False))
    h = hidden()
    with torch.no_grad():
        assert (model.run_blocks(h) - h).abs().max() > 1e-4
