"""models/ffn/: the feed-forward branches match their formulas, all end in `out_proj`, and `none` removes the
sublayer."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import FFN
from models.config import ModelConfig
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)
BRANCHES = [n for n in FFN.names() if not getattr(FFN.get(n), "skip", False)]


def tiny(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


def token_model(cfg, causal=True, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg, vocab_size=VOCAB, causal=causal, max_len=32).eval()


def x_in(seed=0):
    return torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(seed))


def built(name):
    torch.manual_seed(0)
    ffn = FFN.get(name)(TINY).eval()
    with torch.no_grad():  # non-zero biases, so that the formulas must place them right
        for m in ffn.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
    return ffn


def linear(m, x):
    return x @ m.weight.T + m.bias


def test_variants_are_registered():
    assert {"mlp", "swiglu", "relu2", "none"} <= set(FFN.names())


def test_swiglu_matches_the_formula():
    ffn = built("swiglu")
    x = x_in()
    a = linear(ffn.gate, x)
    hidden = a * torch.sigmoid(a) * linear(ffn.up, x)  # Swish_1(xW) * xV
    torch.testing.assert_close(ffn(x), linear(ffn.out_proj, hidden), atol=1e-5, rtol=1e-5)
    assert ffn.gate.out_features == ffn.up.out_features == ffn.out_proj.in_features == TINY.d_ff


def test_relu2_matches_the_formula():
    ffn = built("relu2")
    x = x_in()
    hidden = torch.clamp(linear(ffn.up, x), min=0) ** 2
    torch.testing.assert_close(ffn(x), linear(ffn.out_proj, hidden), atol=1e-5, rtol=1e-5)
    assert ffn.up.out_features == TINY.d_ff
    # squared, not plain ReLU
    assert not torch.allclose(ffn(x), linear(ffn.out_proj, F.relu(linear(ffn.up, x))))


@pytest.mark.parametrize("name", BRANCHES)
def test_every_branch_ends_in_out_proj(name):
    ffn = built(name)
    assert isinstance(ffn.out_proj, nn.Linear) and ffn.out_proj.out_features == TINY.d_model
    x = x_in()
    assert ffn(x).shape == x.shape
    with torch.no_grad():  # out_proj is the last projection: zeroing it zeroes the branch
        nn.init.zeros_(ffn.out_proj.weight)
        nn.init.zeros_(ffn.out_proj.bias)
    assert torch.count_nonzero(ffn(x)) == 0


@pytest.mark.parametrize("name", BRANCHES)
def test_zero_init_branches_zero_every_ffn(name):
    model = token_model(tiny(ffn=name, zero_init_branches=True))
    for block in model.blocks:
        assert torch.count_nonzero(block.ffn(x_in())) == 0


def test_none_is_constructible_and_skipped():
    cls = FFN.get("none")
    assert cls.skip is True
    assert isinstance(cls(TINY), nn.Module)
    model = token_model(tiny(ffn="none"))
    for block in model.blocks:
        assert block.ffn is None and block.ffn_place is None and block.ffn_residual is None
        assert block.branches() == [block.attn]


@pytest.mark.parametrize("layer", [0, 1])
def test_ffn_none_without_residual_outputs_the_attention_sublayer(layer):
    model = token_model(tiny(ffn="none", residual="none"))
    block, seen = model.blocks[layer], {}
    handles = [m.register_forward_hook(lambda _m, a, o, n=n: seen.__setitem__(n, (a[0], o)))
               for n, m in (("block", block), ("attn", block.attn))]
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (3, 8), generator=torch.Generator().manual_seed(0)))
    for h in handles:
        h.remove()
    torch.testing.assert_close(seen["block"][1], seen["attn"][1], atol=0, rtol=0)


def test_ffn_none_with_residual_adds_only_attention():
    model = token_model(tiny(ffn="none"))
    h = x_in()
    with torch.no_grad():
        block = model.blocks[0]
        expected = h + block.attn(block.attn_place.norm(h), model.position)
        torch.testing.assert_close(block(h, model.position), expected, atol=1e-6, rtol=1e-5)
