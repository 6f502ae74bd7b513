"""models/position/: the sinusoidal table, RoPE's relative property, ALiBi's slopes and bias, and which encodings
make a bidirectional model order-aware."""

import dataclasses
import math

import pytest
import torch

import models  # noqa: F401  (registers every variant)
from models.components import ATTENTION, POSITION, Position
from models.config import ModelConfig
from models.errors import ConfigError
from models.position.alibi import alibi_slopes
from models.position.sinusoidal import SCALE
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)


def tiny(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_variants_are_registered():
    assert {"learned", "none", "sinusoidal", "rope", "alibi"} <= set(POSITION.names())


# --- none ---------------------------------------------------------------------------------------------------

def test_none_is_the_base_class_behaviour():
    pos = POSITION.get("none")(TINY, 32)
    assert isinstance(pos, Position) and pos.needs == frozenset()
    h, q, k = randn(2, 5, 16), randn(2, 2, 5, 8, seed=1), randn(2, 2, 5, 8, seed=2)
    assert pos.embed(h) is h
    assert pos.rotate(q, k) == (q, k)
    assert pos.score_bias(5, 5, "cpu") is None
    assert not list(pos.parameters()) and not list(pos.buffers())


@pytest.mark.parametrize("position", POSITION.names())
def test_only_none_is_permutation_equivariant(position):
    torch.manual_seed(0)
    model = build_model(tiny(position=position), vocab_size=VOCAB, causal=False, max_len=32).eval()
    with torch.no_grad():  # sharper attention than at init, so that rotated scores matter well above rounding
        for block in model.blocks:
            block.attn.qkv.weight.mul_(10)
    x = torch.randint(0, VOCAB, (3, 8), generator=torch.Generator().manual_seed(0))
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    with torch.no_grad():
        diff = (model(x[:, perm]) - model(x)[:, perm]).abs().max()
    if position == "none":
        assert diff < 1e-5
    else:
        assert diff > 1e-3, f"position={position} does not break permutation equivariance"


# --- sinusoidal ---------------------------------------------------------------------------------------------

def test_sinusoidal_table_matches_the_formula():
    d, n = 16, 40
    pos = POSITION.get("sinusoidal")(tiny(d_model=d), n)
    expected = torch.zeros(n, d)
    for p in range(n):
        for i in range(d // 2):
            expected[p, 2 * i] = math.sin(p / 10000 ** (2 * i / d))
            expected[p, 2 * i + 1] = math.cos(p / 10000 ** (2 * i / d))
    torch.testing.assert_close(pos.table, SCALE * expected, atol=1e-6, rtol=1e-5)


def test_sinusoidal_is_a_buffer_added_to_the_input():
    pos = POSITION.get("sinusoidal")(TINY, 32)
    assert not list(pos.parameters())
    assert "table" in dict(pos.named_buffers())
    h = randn(2, 7, 16)
    torch.testing.assert_close(pos.embed(h), h + pos.table[:7])
    assert pos.rotate(h, h) == (h, h) and pos.score_bias(7, 7, "cpu") is None


def test_sinusoidal_extends_past_max_len():
    short, long = POSITION.get("sinusoidal")(TINY, 8), POSITION.get("sinusoidal")(TINY, 20)
    h = randn(1, 20, 16)
    torch.testing.assert_close(short.embed(h), long.embed(h))


# --- rope ---------------------------------------------------------------------------------------------------

def rope(n_heads=2, max_len=32):
    return POSITION.get("rope")(tiny(n_heads=n_heads), max_len)


def test_rope_needs_rotate_and_touches_nothing_else():
    pos = rope()
    assert pos.needs == frozenset({"rotate"})
    h = randn(2, 5, 16)
    assert pos.embed(h) is h and pos.score_bias(5, 5, "cpu") is None
    assert not list(pos.parameters())


@pytest.mark.parametrize("n_heads", [2, 4])
def test_rope_preserves_norms(n_heads):
    pos = rope(n_heads)
    hd = 16 // n_heads
    q, k = randn(2, n_heads, 9, hd, seed=1), randn(2, n_heads, 9, hd, seed=2)
    rq, rk = pos.rotate(q, k)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(rk.norm(dim=-1), k.norm(dim=-1))
    assert not torch.allclose(rq[:, :, 1:], q[:, :, 1:])  # it does rotate
    torch.testing.assert_close(rq[:, :, 0], q[:, :, 0])    # position 0 is the identity


@pytest.mark.parametrize("n_heads", [2, 4])
def test_rope_scores_depend_only_on_the_offset(n_heads):
    pos, t = rope(n_heads), 12
    hd = 16 // n_heads
    # the same query vector and the same key vector at every position
    q = randn(1, n_heads, 1, hd, seed=3).expand(1, n_heads, t, hd)
    k = randn(1, n_heads, 1, hd, seed=4).expand(1, n_heads, t, hd)
    rq, rk = pos.rotate(q, k)
    scores = rq @ rk.transpose(-2, -1)  # (1, heads, t, t)
    for m, n in [(3, 1), (5, 5), (2, 9), (0, 7)]:
        for shift in (1, 2):
            torch.testing.assert_close(scores[..., m + shift, n + shift], scores[..., m, n], atol=1e-5, rtol=1e-5)
    # ...but on the offset itself
    assert (scores[..., 4, 1] - scores[..., 4, 3]).abs().max() > 1e-3


def test_rope_queries_are_the_last_positions():
    pos = rope()
    q, k = randn(1, 2, 6, 8, seed=1), randn(1, 2, 6, 8, seed=2)
    full_q, full_k = pos.rotate(q, k)
    part_q, part_k = pos.rotate(q[:, :, -2:], k)
    torch.testing.assert_close(part_q, full_q[:, :, -2:])
    torch.testing.assert_close(part_k, full_k)


def test_rope_with_grouped_kv_heads():
    pos = rope(n_heads=4)
    q, k = randn(2, 4, 5, 4, seed=1), randn(2, 1, 5, 4, seed=2)
    rq, rk = pos.rotate(q, k)
    assert rq.shape == q.shape and rk.shape == k.shape
    torch.testing.assert_close(rk.expand(2, 4, 5, 4), pos.rotate(q, k.expand(2, 4, 5, 4))[1])


def test_rope_extends_past_the_cache():
    short, long = rope(max_len=4), rope(max_len=16)
    q, k = randn(1, 2, 10, 8, seed=1), randn(1, 2, 10, 8, seed=2)
    for a, b in zip(short.rotate(q, k), long.rotate(q, k)):
        torch.testing.assert_close(a, b)


def test_rope_needs_an_even_head_width():
    with pytest.raises(ConfigError, match="even"):
        POSITION.get("rope")(ModelConfig(d_model=12, n_heads=4), 8)


@pytest.mark.parametrize("position,need", [("rope", "rotate"), ("alibi", "score_bias")])
def test_attention_without_the_capability_is_rejected(position, need):
    lacking = [n for n in ATTENTION.names() if need not in ATTENTION.get(n).provides]
    if not lacking:
        pytest.skip(f"every attention provides {need}")
    with pytest.raises(ConfigError, match=need):
        tiny(position=position, attention=lacking[0])


# --- alibi --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_heads,expected", [
    (4, [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]),
    (8, [2 ** -1, 2 ** -2, 2 ** -3, 2 ** -4, 2 ** -5, 2 ** -6, 2 ** -7, 2 ** -8]),
])
def test_alibi_slopes_are_the_papers_geometric_sequence(n_heads, expected):
    pos = POSITION.get("alibi")(tiny(d_model=32, n_heads=n_heads), 32)
    torch.testing.assert_close(pos.slopes, torch.tensor(expected))


def test_alibi_slopes_for_a_head_count_that_is_not_a_power_of_two():
    # the authors' rule: the 4-head slopes, then every other one of the 8-head slopes
    torch.testing.assert_close(alibi_slopes(6), torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]))


@pytest.mark.parametrize("n_heads", [2, 4])
def test_alibi_bias(n_heads):
    pos = POSITION.get("alibi")(tiny(n_heads=n_heads), 32)
    assert pos.needs == frozenset({"score_bias"})
    bias = pos.score_bias(6, 6, "cpu")
    assert bias.shape == (n_heads, 6, 6)  # broadcasts to (batch, heads, t_q, t_k)
    for h in range(n_heads):
        for i in range(6):
            for j in range(6):
                assert bias[h, i, j].item() == pytest.approx(-pos.slopes[h].item() * abs(i - j))
                if j <= i:  # the paper's causal form on the visible part
                    assert bias[h, i, j].item() == pytest.approx(-pos.slopes[h].item() * (i - j))
    # the queries are the last positions
    torch.testing.assert_close(pos.score_bias(2, 6, "cpu"), bias[:, -2:])
    h = randn(1, 6, 16)
    assert pos.embed(h) is h and not list(pos.parameters())
