"""models/placement/: where the norm sits around each branch, observed with forward hooks on a tiny model."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import NORM, PLACEMENT
from models.config import ModelConfig
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)


def tiny(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


def tokens(batch=3, time=8, seed=0):
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def token_model(cfg, causal=True, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg, vocab_size=VOCAB, causal=causal, max_len=32).eval()


def record(block, extra=()):
    """Inputs and outputs of a block's modules, by name, after one forward pass."""
    names = ["attn", "ffn", "attn_place", "ffn_place", *extra]
    modules = {"block": block}
    for name in names:
        obj = block
        for part in name.split("."):
            obj = getattr(obj, part)
        modules[name] = obj
    seen, handles = {}, []
    for name, module in modules.items():
        def hook(_m, args, out, name=name):
            seen[name] = (args[0].detach().clone(), out.detach().clone())
        handles.append(module.register_forward_hook(hook))
    return seen, handles


def run(model, handles):
    with torch.no_grad():
        model(tokens())
    for h in handles:
        h.remove()


@pytest.mark.parametrize("name", PLACEMENT.names())
def test_every_placement_has_the_interface(name):
    cls = PLACEMENT.get(name)
    assert isinstance(cls.wants_final_norm, bool)
    place = cls(lambda: nn.LayerNorm(16))
    assert isinstance(place.norm, nn.LayerNorm)
    x = torch.randn(2, 3, 16)
    out = place(x, lambda h: 2 * h, lambda s, b: s + b)
    assert out.shape == x.shape


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm", "scalenorm"])
def test_post_normalises_the_stream_after_the_addition(norm):
    model = token_model(tiny(norm_placement="post", norm=norm))
    recs = [record(b, extra=("attn_place.norm", "ffn_place.norm")) for b in model.blocks]
    run(model, [h for _, handles in recs for h in handles])
    for seen, _ in recs:
        out = seen["block"][1]
        rms = out.pow(2).mean(-1).sqrt()
        torch.testing.assert_close(rms, torch.ones_like(rms), atol=2e-3, rtol=0)
        if norm == "layernorm":
            assert out.mean(-1).abs().max() < 1e-5
        # the norm reads stream + branch, and the branch reads the raw stream
        block_in, attn_out = seen["block"][0], seen["attn"][1]
        torch.testing.assert_close(seen["attn"][0], block_in, atol=0, rtol=0)
        torch.testing.assert_close(seen["attn_place.norm"][0], block_in + attn_out, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(seen["ffn_place.norm"][0], seen["ffn_place"][0] + seen["ffn"][1],
                                   atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layer", [0, 1])
def test_pre_normalises_only_the_branch_input(layer):
    model = token_model(tiny(norm_placement="pre"))
    seen, handles = record(model.blocks[layer], extra=("attn_place.norm", "ffn_place.norm"))
    run(model, handles)
    block_in = seen["block"][0]
    torch.testing.assert_close(seen["attn_place.norm"][0], block_in, atol=0, rtol=0)
    torch.testing.assert_close(seen["attn"][0], seen["attn_place.norm"][1], atol=0, rtol=0)
    torch.testing.assert_close(seen["ffn_place.norm"][0], seen["ffn_place"][0], atol=0, rtol=0)
    torch.testing.assert_close(seen["ffn"][0], seen["ffn_place.norm"][1], atol=0, rtol=0)
    # the stream passes un-normalised: input + both branch outputs
    torch.testing.assert_close(seen["block"][1], block_in + seen["attn"][1] + seen["ffn"][1], atol=1e-6, rtol=1e-5)
    assert (seen["block"][1].var(-1, unbiased=False) - 1).abs().max() > 0.5


def _norms(module):
    return [m for m in module.modules() if isinstance(m, NORM.get("layernorm"))]


def test_sandwich_has_two_norms_per_branch():
    model = token_model(tiny(norm_placement="sandwich"))
    for block in model.blocks:
        assert len(_norms(block.attn_place)) == 2 and len(_norms(block.ffn_place)) == 2
        assert block.attn_place.norm is not block.attn_place.norm_out


@pytest.mark.parametrize("layer", [0, 1])
def test_sandwich_normalises_the_branch_input_and_output(layer):
    model = token_model(tiny(norm_placement="sandwich"))
    block = model.blocks[layer]
    with torch.no_grad():  # non-trivial gains and biases, so that the two norms are told apart
        for norm in _norms(block):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    extra = ("attn_place.norm", "attn_place.norm_out", "ffn_place.norm", "ffn_place.norm_out")
    seen, handles = record(block, extra=extra)
    run(model, handles)
    stream = seen["block"][0]
    for branch in ("attn", "ffn"):
        place, norm_in, norm_out = f"{branch}_place", f"{branch}_place.norm", f"{branch}_place.norm_out"
        assert torch.equal(seen[place][0], stream)
        torch.testing.assert_close(seen[norm_in][0], stream, atol=0, rtol=0)          # first norm: the stream
        torch.testing.assert_close(seen[branch][0], seen[norm_in][1], atol=0, rtol=0)  # branch reads it
        torch.testing.assert_close(seen[norm_out][0], seen[branch][1], atol=0, rtol=0)  # second: branch output
        ln = getattr(block, place).norm_out
        torch.testing.assert_close(seen[norm_out][1], F.layer_norm(seen[branch][1], (16,), ln.weight, ln.bias,
                                                                   ln.eps), atol=1e-6, rtol=1e-5)
        stream = stream + seen[norm_out][1]  # the stream itself is not normalised
        torch.testing.assert_close(seen[place][1], stream, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(seen["block"][1], stream, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("final_norm", [True, False])
def test_sandwich_wants_a_final_norm(final_norm):
    assert PLACEMENT.get("sandwich").wants_final_norm is True
    model = token_model(tiny(norm_placement="sandwich", norm="rmsnorm", final_norm=final_norm))
    assert isinstance(model.final_norm, NORM.get("rmsnorm") if final_norm else nn.Identity)
