"""models/short_conv.py and `model.short_conv`: a causal depthwise convolution before attention (Canon-A)."""

import dataclasses

import pytest
import torch

import models  # noqa: F401  (registers every variant)
from models.config import ModelConfig
from models.errors import ConfigError
from models.flops import matmul_params
from models.short_conv import ShortConv
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=3, n_heads=2, d_ff=32)


def tiny(**changes):
    return dataclasses.replace(TINY, **changes)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def reference(conv: ShortConv, h: torch.Tensor) -> torch.Tensor:
    """Slow loop: out[b, t, c] = h[b, t, c] + sum_i w[c, K-1-i] h[b, t-i, c], terms before the start dropped."""
    w = conv.conv.weight[:, 0, :]  # (channels, K); tap K-1 multiplies the current position
    out = h.clone()
    for t in range(h.shape[1]):
        for i in range(conv.width):
            if t - i >= 0:
                out[:, t] += w[:, conv.width - 1 - i] * h[:, t - i]
    return out


@pytest.mark.parametrize("width", [1, 2, 4, 7])
def test_short_conv_matches_a_loop_reference(width):
    torch.manual_seed(0)
    conv = ShortConv(5, width)
    h = torch.randn(2, 9, 5)
    assert torch.allclose(conv(h), reference(conv, h), atol=1e-6)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_each_output_reads_exactly_itself_and_its_width_minus_one_predecessors(width):
    """Gradient of output t with respect to every input: nonzero for t-K+1..t, exactly zero elsewhere (causal)."""
    torch.manual_seed(0)
    conv = ShortConv(4, width)
    time = 10
    for t in range(time):
        h = torch.randn(1, time, 4, requires_grad=True)
        conv(h)[0, t].sum().backward()
        reads = {s for s in range(time) if h.grad[0, s].abs().sum() > 0}
        assert reads == set(range(max(0, t - width + 1), t + 1)), t


@pytest.mark.parametrize("placement", ["pre", "post", "sandwich"])
def test_a_causal_model_with_short_conv_stays_causal(placement):
    """Perturbing tokens after position t leaves every output up to t unchanged."""
    torch.manual_seed(0)
    model = build_model(tiny(short_conv=4, norm_placement=placement), vocab_size=VOCAB).eval()
    tokens = torch.randint(0, VOCAB, (3, 12))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_zero_adds_no_parameters_and_no_module():
    torch.manual_seed(0)
    off = build_model(tiny(), vocab_size=VOCAB)
    assert all(block.short_conv is None for block in off.blocks)
    assert not any("short_conv" in name for name, _ in off.named_parameters())
    torch.manual_seed(0)
    explicit = build_model(tiny(short_conv=0), vocab_size=VOCAB)
    for name, tensor in off.state_dict().items():  # the same draws: the default is today's model
        assert torch.equal(tensor, explicit.state_dict()[name])


@pytest.mark.parametrize("width", [1, 3, 4])
@pytest.mark.parametrize("changes", [{}, {"ffn": "none"}, {"d_model": 32}])
def test_parameter_count_grows_by_d_model_times_width_per_layer(width, changes):
    base = n_params(build_model(tiny(**changes), vocab_size=VOCAB))
    with_conv = build_model(tiny(short_conv=width, **changes), vocab_size=VOCAB)
    cfg = tiny(**changes)
    assert n_params(with_conv) - base == cfg.n_layers * cfg.d_model * width
    for block in with_conv.blocks:
        assert block.short_conv.conv.weight.shape == (cfg.d_model, 1, width) and block.short_conv.conv.bias is None


def test_short_conv_changes_what_attention_reads():
    """The convolution sits on the attention input: with it, the attention branch output differs, and hooking
    the attention shows it receives conv(norm(x)) rather than norm(x)."""
    torch.manual_seed(0)
    model = build_model(tiny(short_conv=3), vocab_size=VOCAB)
    block = model.blocks[0]
    seen = {}
    block.attn.register_forward_pre_hook(lambda module, args: seen.update(input=args[0]))  # returns None
    h = torch.randn(2, 7, 16)
    block(h, model.position)
    expected = block.short_conv(block.attn_place.norm(h))
    assert torch.allclose(seen["input"], expected)


def test_gradients_reach_the_taps_and_training_moves_them():
    torch.manual_seed(0)
    model = build_model(tiny(short_conv=4), vocab_size=VOCAB)
    logits = model(torch.randint(0, VOCAB, (2, 8)))
    logits.square().mean().backward()
    for block in model.blocks:
        assert block.short_conv.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("changes", [{"memory": "tokens"}, {"memory": "recurrent", "segment_len": 4},
                                     {"attention": "linear"}, {"position": "rope"}])
def test_short_conv_composes_with_memories_and_attentions(changes):
    torch.manual_seed(0)
    model = build_model(tiny(short_conv=2, **changes), vocab_size=VOCAB)
    out = model(torch.randint(0, VOCAB, (2, 8)))
    assert out.shape == (2, 8, VOCAB) and torch.isfinite(out).all()


@pytest.mark.parametrize("value", [-1, 1.5, True, "4"])
def test_invalid_widths_are_refused(value):
    with pytest.raises(ConfigError, match="model.short_conv must be an integer >= 0"):
        tiny(short_conv=value)


def test_short_conv_without_attention_is_refused_naming_both_options():
    with pytest.raises(ConfigError, match="model.short_conv=4 .* model.attention=none"):
        tiny(short_conv=4, attention="none")


def test_flops_count_the_taps_and_the_default_is_unchanged():
    cfg = tiny()
    assert matmul_params(tiny(short_conv=0)) == matmul_params(cfg)
    assert matmul_params(tiny(short_conv=4)) - matmul_params(cfg) == cfg.n_layers * cfg.d_model * 4


def test_short_conv_is_recorded_only_when_on():
    assert "short_conv" not in ModelConfig().to_dict()
    on = ModelConfig(short_conv=4)
    assert on.to_dict()["short_conv"] == 4 and ModelConfig.from_dict(on.to_dict()) == on
