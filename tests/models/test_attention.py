"""models/attention/: every registered variant's contract, and each variant against a naive re-implementation."""

import dataclasses
import importlib
import math

import pytest
import torch
import torch.nn.functional as F

import models  # noqa: F401  (registers every variant)
from models.attention._base import visible
from models.components import ATTENTION, POSITION, Position
from models.config import ModelConfig
from models.errors import ConfigError
from models.transformer import Block, build_model

VOCAB = 11
CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)
CAPABILITIES = {"causal", "rotate", "score_bias", "prefix"}
MIXERS = [name for name in ATTENTION.names() if not getattr(ATTENTION.get(name), "skip", False)]
SKIPPED = [name for name in ATTENTION.names() if getattr(ATTENTION.get(name), "skip", False)]
MODES = pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])


#: The built-in attentions' own options (each in its `Options`): a test sets them for every variant at once, and
#: each variant takes only its own (as the `model.window` of old did).
OWN = {"local": ("window",), "performer": ("n_features",)}


def config(name="softmax", **changes) -> ModelConfig:
    """CFG with attention `name`; `window` and `n_features` are the variant's options where it has them."""
    own = {key: changes.pop(key) for key in ("window", "n_features") if key in changes}
    options = {key: value for key, value in own.items() if key in OWN.get(name, ())}
    return dataclasses.replace(CFG, attention=name, options={name: options} if options else {}, **changes)


def attention(name, causal=True, seed=0, **changes):
    """The module alone, with PyTorch's default init (larger than GPT-2's, so that outputs are not all ~0)."""
    torch.manual_seed(seed)
    cfg = config(name, **changes)
    return ATTENTION.get(name)(cfg, causal).eval(), cfg


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def memory(cfg, slots=3, seed=7):
    """A prefix (keys, values) of shape (1, heads, slots, head_dim)."""
    hd = cfg.d_model // cfg.n_heads
    return randn(1, cfg.n_heads, slots, hd, seed=seed), randn(1, cfg.n_heads, slots, hd, seed=seed + 1)


def qkv(b=2, h=2, t=12, hd=8, prefix=0, seed=0, scale=1.0):
    return (randn(b, h, t, hd, seed=seed, scale=scale), randn(b, h, prefix + t, hd, seed=seed + 1, scale=scale),
            randn(b, h, prefix + t, hd, seed=seed + 2))


def naive_mask(t, prefix, causal, window=0):
    """(t, prefix + t) boolean, written out element by element."""
    allowed = torch.zeros(t, prefix + t, dtype=torch.bool)
    for i in range(t):
        for j in range(prefix + t):
            s = j - prefix  # the key's sequence position; memory slots (s < 0) are always visible
            ok = s < 0 or ((not causal or s <= i) and (not window or abs(i - s) < window))
            allowed[i, j] = ok
    return allowed


def close(a, b, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


class BiasPosition(Position):
    """A stand-in position that biases scores by a fixed random (heads, t, t) tensor."""

    def __init__(self, cfg, max_len=64):
        super().__init__(cfg, max_len)
        self.bias = randn(cfg.n_heads, max_len, max_len, seed=99)

    def score_bias(self, t_q, t_k, device):
        return self.bias[:, :t_q, :t_k].to(device)


class RotatePosition(Position):
    """A stand-in position that rotates pairs of channels of q and k by a position-dependent angle (as RoPE does)."""

    def rotate(self, q, k):
        def turn(x):
            t, hd = x.shape[-2], x.shape[-1]
            angle = torch.arange(t, dtype=x.dtype)[:, None] * torch.linspace(0.1, 1.0, hd // 2)
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], -1).flatten(-2)

        return turn(q), turn(k)


# --- the registry ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ATTENTION.names())
def test_every_variant_declares_itself(name):
    cls = ATTENTION.get(name)
    assert set(cls.provides) <= CAPABILITIES, f"{name} provides unknown capabilities {set(cls.provides)}"
    module_doc = importlib.import_module(cls.__module__).__doc__
    assert module_doc and module_doc.strip(), f"{cls.__module__} needs a module docstring saying why/what"
    assert isinstance(cls.linear_time, bool)


def test_linear_time_variants():
    for name in ("linear", "performer"):
        assert ATTENTION.get(name).linear_time, name
    for name in ("softmax", "cosine", "sigmoid", "relu", "local"):
        assert not ATTENTION.get(name).linear_time, name


def test_kernelised_variants_do_not_claim_score_bias():
    for name in ("linear", "performer"):
        assert "score_bias" not in ATTENTION.get(name).provides
        assert {"causal", "rotate", "prefix"} <= ATTENTION.get(name).provides


# --- the contract of every variant that mixes tokens ------------------------------------------------------------

@MODES
@pytest.mark.parametrize("name", MIXERS)
def test_output_shape_and_dtype(name, causal):
    module, cfg = attention(name, causal)
    x = randn(3, 9, cfg.d_model)
    out = module(x, Position(cfg, 64))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MIXERS)
def test_causal_module_never_reads_later_positions(name):
    module, cfg = attention(name, causal=True, window=3)
    position = Position(cfg, 64)
    x = randn(2, 10, cfg.d_model)
    with torch.no_grad():
        base = module(x, position)
        for t in range(x.shape[1]):
            changed = x.clone()
            changed[:, t] += randn(2, cfg.d_model, seed=t + 1)
            out = module(changed, position)
            close(out[:, :t], base[:, :t], atol=1e-6, rtol=1e-6)
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4, "position t must read itself"


@pytest.mark.parametrize("name", MIXERS)
def test_causal_model_never_reads_later_tokens(name):
    torch.manual_seed(0)
    model = build_model(config(name, window=3), vocab_size=VOCAB, causal=True, max_len=32).eval()
    x = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(x)
        for t in range(x.shape[1]):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            out = model(changed)
            close(out[:, :t], base[:, :t], atol=1e-6, rtol=1e-5)
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4


@pytest.mark.parametrize("name", MIXERS)
def test_bidirectional_module_reads_later_positions(name):
    module, cfg = attention(name, causal=False)
    x = randn(2, 8, cfg.d_model)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        diff = (module(changed, Position(cfg, 64))[:, 0] - module(x, Position(cfg, 64))[:, 0]).abs().max()
    assert diff > 1e-4


@MODES
@pytest.mark.parametrize("name", MIXERS)
def test_gradients_reach_every_parameter(name, causal):
    module, cfg = attention(name, causal)
    module.train()
    prefix = memory(cfg)
    prefix = tuple(p.requires_grad_() for p in prefix)
    x = randn(2, 8, cfg.d_model).requires_grad_()
    module(x, Position(cfg, 64), prefix).square().sum().backward()
    for pname, param in module.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, pname
    for tensor in (x, *prefix):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0
    assert module.qkv.weight.grad.abs().sum() > 0 and module.out_proj.weight.grad.abs().sum() > 0


def _expand_grouped_state(state, cfg, kv_heads):
    """The state of an n_heads-kv-heads module equal to a grouped one: each kv head's rows repeated per group."""
    d, hd, group = cfg.d_model, cfg.d_model // cfg.n_heads, cfg.n_heads // kv_heads
    width = kv_heads * hd

    def rep(x):
        return x.reshape(kv_heads, hd, *x.shape[1:]).repeat_interleave(group, 0).reshape(d, *x.shape[1:])

    def expand(t):
        q, k, v = t.split((d, width, width), dim=0)
        return torch.cat([q, rep(k), rep(v)])

    out = dict(state)
    out["qkv.weight"], out["qkv.bias"] = expand(state["qkv.weight"]), expand(state["qkv.bias"])
    return out


@MODES
@pytest.mark.parametrize("kv_heads", [1, 2])
@pytest.mark.parametrize("name", MIXERS)
def test_grouped_kv_heads(name, kv_heads, causal):
    grouped, cfg = attention(name, causal, n_heads=4, kv_heads=kv_heads)
    assert grouped.qkv.out_features == cfg.d_model + 2 * kv_heads * (cfg.d_model // 4)
    full, _ = attention(name, causal, seed=1, n_heads=4, kv_heads=0)
    full.load_state_dict(_expand_grouped_state(grouped.state_dict(), cfg, kv_heads))
    x = randn(2, 8, cfg.d_model)
    position = Position(cfg, 64)
    with torch.no_grad():
        out = grouped(x, position)
        assert out.shape == x.shape and torch.isfinite(out).all()
        close(out, full(x, position))  # grouped heads == full heads whose key/value heads are copies


@MODES
@pytest.mark.parametrize("name", MIXERS)
def test_prefix_slots(name, causal):
    module, cfg = attention(name, causal, window=3)
    position = Position(cfg, 64)
    prefix = memory(cfg, slots=3)
    x = randn(2, 8, cfg.d_model)
    with torch.no_grad():
        plain = module(x, position)
        out = module(x, position, prefix)
        assert out.shape == x.shape and torch.isfinite(out).all()
        # the slots reach every position, the first one included, in both modes
        assert ((out - plain).abs().amax(dim=(0, 2)) > 1e-4).all()
        # a prefix of batch size 1 is shared: each row equals running that row alone
        close(out[1:], module(x[1:], position, prefix))
        other = (prefix[0], prefix[1] + 1.0)
        assert (module(x, position, other) - out).abs().max() > 1e-4, "slot values must matter"
        if causal:  # slots keep causality intact
            changed = x.clone()
            changed[:, 5:] += 1.0
            close(module(changed, position, prefix)[:, :5], out[:, :5], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", MIXERS)
def test_rotate_reaches_variants_that_provide_it(name):
    module, cfg = attention(name)
    x = randn(2, 8, cfg.d_model)
    with torch.no_grad():
        diff = (module(x, RotatePosition(cfg, 64)) - module(x, Position(cfg, 64))).abs().max()
    assert ("rotate" in module.provides) == (diff > 1e-4)


@MODES
@pytest.mark.parametrize("name", MIXERS)
def test_score_bias_is_used_or_refused(name, causal):
    module, cfg = attention(name, causal)
    x = randn(2, 8, cfg.d_model)
    with torch.no_grad():
        if "score_bias" in module.provides:
            diff = (module(x, BiasPosition(cfg), memory(cfg)) - module(x, Position(cfg, 64), memory(cfg))).abs()
            assert diff.max() > 1e-4
        else:
            with pytest.raises(ValueError, match="score_bias"):
                module(x, BiasPosition(cfg))


@pytest.mark.parametrize("name", MIXERS)
def test_every_variant_in_a_model_with_continuous_input(name):
    torch.manual_seed(0)
    model = build_model(config(name), input_dim=4, out_dim=3, causal=False, head="mean", max_len=16)
    out = model(torch.randn(2, 16, 4))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["autocast", "bfloat16"])
@pytest.mark.parametrize("name", MIXERS)
def test_low_precision(name, mode):
    module, cfg = attention(name, causal=True)
    x, prefix = randn(2, 8, cfg.d_model), memory(cfg)
    with torch.no_grad():
        reference = module(x, Position(cfg, 64), prefix)
        if mode == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = module(x, Position(cfg, 64), prefix)
        else:
            out = module.bfloat16()(x.bfloat16(), Position(cfg, 64), tuple(p.bfloat16() for p in prefix))
    assert out.dtype == torch.bfloat16
    close(out.float(), reference, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("name", MIXERS)
def test_training_mode_with_dropout(name):
    module, cfg = attention(name, causal=True, dropout=0.3)
    out = module.train()(randn(2, 8, cfg.d_model), Position(cfg, 64), memory(cfg))
    assert out.shape == (2, 8, cfg.d_model) and torch.isfinite(out).all()


# --- linear: equals the quadratic form of the same kernel ----------------------------------------------------

def naive_kernel(phi_q, phi_k, v, allowed, eps):
    scores = phi_q @ phi_k.transpose(-2, -1)
    if allowed is not None:
        scores = scores * allowed
    return (scores @ v) / (scores.sum(-1, keepdim=True) + eps)


@MODES
@pytest.mark.parametrize("prefix", [0, 4])
def test_linear_equals_naive_quadratic_kernel(causal, prefix):
    module, _ = attention("linear", causal)
    q, k, v = qkv(t=16, prefix=prefix)
    phi = lambda x: F.elu(x) + 1  # noqa: E731
    expected = naive_kernel(phi(q), phi(k), v, naive_mask(16, prefix, causal) if causal else None, module.eps)
    close(module.mix(q, k, v, bias=None, n_prefix=prefix), expected)


def test_linear_full_forward_equals_naive():
    module, cfg = attention("linear", causal=True)
    x = randn(2, 10, cfg.d_model)
    pk, pv = memory(cfg, slots=2)
    q, k, v = module.qkv(x).split(module.split, dim=-1)
    heads = lambda y: y.view(2, 10, cfg.n_heads, -1).transpose(1, 2)  # noqa: E731
    k = torch.cat([pk.expand(2, -1, -1, -1), heads(k)], 2)
    q, v = heads(q), torch.cat([pv.expand(2, -1, -1, -1), heads(v)], 2)
    phi = lambda y: F.elu(y) + 1  # noqa: E731
    y = naive_kernel(phi(q), phi(k), v, naive_mask(10, 2, True), module.eps)
    expected = module.out_proj(y.transpose(1, 2).reshape(2, 10, cfg.d_model))
    close(module(x, Position(cfg, 64), (pk, pv)), expected)


def test_linear_accumulates_in_float32():
    module, _ = attention("linear", causal=True)
    q, k, v = qkv(t=16, prefix=2)
    out = module.mix(q.bfloat16(), k.bfloat16(), v.bfloat16(), bias=None, n_prefix=2)
    assert out.dtype == torch.bfloat16
    close(out.float(), module.mix(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(), bias=None,
                                  n_prefix=2), atol=2e-2, rtol=2e-2)


# --- local: softmax with an explicit band -----------------------------------------------------------------------

def naive_softmax(q, k, v, allowed, bias=None, scale=None):
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


@MODES
@pytest.mark.parametrize("window", [1, 3, 5])
@pytest.mark.parametrize("prefix", [0, 3])
def test_local_equals_softmax_with_a_naive_band(causal, window, prefix):
    module, _ = attention("local", causal, window=window)
    q, k, v = qkv(t=12, prefix=prefix)
    expected = naive_softmax(q, k, v, naive_mask(12, prefix, causal, window))
    close(module.mix(q, k, v, bias=None, n_prefix=prefix), expected)
    bias = randn(2, 12, prefix + 12, seed=5)
    close(module.mix(q, k, v, bias=bias, n_prefix=prefix), naive_softmax(q, k, v, naive_mask(12, prefix, causal,
                                                                                             window), bias))


def test_local_causal_window_reads_exactly_the_last_window_positions():
    allowed = visible(6, 6, causal=True, window=2)
    assert allowed.sum(-1).tolist() == [1, 2, 2, 2, 2, 2]
    assert torch.equal(allowed, naive_mask(6, 0, True, 2))


@MODES
def test_local_with_a_wide_window_is_softmax(causal):
    x = randn(2, 10, 16)
    local, cfg = attention("local", causal, window=10)
    softmax, _ = attention("softmax", causal)
    narrow, _ = attention("local", causal, window=3)
    prefix = memory(cfg)
    with torch.no_grad():
        for p in (None, prefix):
            close(local(x, Position(cfg, 64), p), softmax(x, Position(cfg, 64), p))
        assert (narrow(x, Position(cfg, 64)) - softmax(x, Position(cfg, 64))).abs().max() > 1e-4


# --- performer: approaches exact softmax as the number of features grows -----------------------------------------

@MODES
def test_performer_approaches_softmax(causal):
    # moderate scores (|q.k| / sqrt(d) ~ 0.25): the estimator's variance grows like exp(|q|^2 + |k|^2)
    q, k, v = qkv(b=2, h=2, t=16, hd=8, prefix=2, scale=0.5)
    exact = naive_softmax(q, k, v, naive_mask(16, 2, causal) if causal else None)
    errors = []
    for m in (16, 256, 2048):
        err = 0.0
        for seed in range(3):
            module, _ = attention("performer", causal, seed=seed, n_features=m)
            assert module.projection.shape == (m, 8)
            err += (module.mix(q, k, v, bias=None, n_prefix=2) - exact).abs().mean().item() / 3
        errors.append(err)
    assert errors[0] > errors[1] > errors[2] and errors[0] > 3 * errors[2], errors
    assert errors[2] < 0.08 * exact.abs().mean().item(), errors


def test_performer_features_are_fixed_and_seeded():
    a, _ = attention("performer", seed=3)
    b, _ = attention("performer", seed=3)
    c, _ = attention("performer", seed=4)
    assert torch.equal(a.projection, b.projection)
    assert not torch.equal(a.projection, c.projection)
    assert "projection" in a.state_dict()
    x = randn(1, 6, 16)
    with torch.no_grad():
        close(a(x, Position(a_cfg := config("performer"), 64)), a(x, Position(a_cfg, 64)), atol=0, rtol=0)
    # layers of one model get different projections
    torch.manual_seed(0)
    model = build_model(config("performer"), vocab_size=VOCAB)
    assert not torch.equal(model.blocks[0].attn.projection, model.blocks[1].attn.projection)


def test_performer_projection_rows_are_orthogonal_within_blocks():
    module, _ = attention("performer", n_features=20)
    w = module.projection[:8]
    gram = w @ w.T
    close(gram - torch.diag(torch.diagonal(gram)), torch.zeros(8, 8), atol=1e-4, rtol=0)


# --- sigmoid, relu, cosine: equal naive re-implementations ---------------------------------------------------------

def naive_scored(name, module, q, k, v, allowed, bias=None):
    t_q, t_k = q.shape[-2], k.shape[-2]
    count = allowed.sum(-1, keepdim=True).float() if allowed is not None else torch.full((t_q, 1), float(t_k))
    mask = allowed if allowed is not None else torch.ones(t_q, t_k, dtype=torch.bool)
    if name == "cosine":
        qn, kn = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
        temperature = torch.exp(module.log_scale.detach().clamp(max=math.log(100)))
        return naive_softmax(qn, kn, v, allowed, bias, scale=temperature)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    if name == "sigmoid":
        weights = torch.sigmoid(scores - torch.log(count))
    else:
        weights = torch.relu(scores) / count
    return (weights * mask) @ v


@MODES
@pytest.mark.parametrize("prefix", [0, 3])
@pytest.mark.parametrize("name", ["sigmoid", "relu", "cosine"])
def test_scored_variants_equal_naive(name, causal, prefix):
    module, _ = attention(name, causal)
    if name == "cosine":
        with torch.no_grad():
            module.log_scale.copy_(torch.tensor([[[1.0]], [[2.0]]]))
    q, k, v = qkv(t=12, prefix=prefix)
    allowed = naive_mask(12, prefix, causal) if causal else None
    with torch.no_grad():
        close(module.mix(q, k, v, bias=None, n_prefix=prefix), naive_scored(name, module, q, k, v, allowed))
        bias = randn(2, 12, prefix + 12, seed=5)
        close(module.mix(q, k, v, bias=bias, n_prefix=prefix), naive_scored(name, module, q, k, v, allowed, bias))


def test_sigmoid_bias_is_minus_log_n():
    module, _ = attention("sigmoid", causal=False)
    q, k, v = qkv(t=8)
    zero = torch.zeros_like(q)  # all scores 0: every weight is sigmoid(-log 8) = 1 / 9
    weights = (module.mix(zero, k, torch.eye(8).expand(2, 2, 8, 8), bias=None, n_prefix=0))
    close(weights, torch.full_like(weights, 1 / 9))


def test_cosine_temperature_is_per_head_and_capped():
    module, _ = attention("cosine")
    assert module.log_scale.shape == (2, 1, 1)
    close(module.scale(), torch.full((2, 1, 1), 10.0))
    with torch.no_grad():
        module.log_scale.fill_(10.0)
    close(module.scale(), torch.full((2, 1, 1), 100.0))


# --- none: no attention sublayer at all ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SKIPPED)
def test_skip_variants_remove_the_sublayer(name):
    cls = ATTENTION.get(name)
    assert cls.provides == frozenset()
    cfg = config(name)
    cls(cfg, True)  # constructible
    block = Block(cfg, 0, causal=True)
    assert block.attn is None and block.attn_place is None and block.attn_residual is None
    assert block.branches() == [block.ffn]


def test_none_model_runs_without_mixing_tokens():
    torch.manual_seed(0)
    model = build_model(config("none"), vocab_size=VOCAB, causal=False).eval()
    assert all(block.attn is None for block in model.blocks)
    x = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    with torch.no_grad():
        out, other = model(x), model(changed)
    assert out.shape == (2, 8, VOCAB) and torch.isfinite(out).all()
    close(other[:, :-1], out[:, :-1], atol=0, rtol=0)  # no position reads another
    assert (other[:, -1] - out[:, -1]).abs().max() > 1e-4


def test_none_is_never_called():
    with pytest.raises(RuntimeError, match="skip"):
        ATTENTION.get("none")(CFG, True)(randn(1, 4, 16), Position(CFG, 64))


def test_none_rejects_positions_that_need_attention():
    if "rope" not in POSITION:
        pytest.skip("no `rope` position registered")
    with pytest.raises(ConfigError, match="rope.*none|none.*rope"):
        ModelConfig(attention="none", position="rope")


def test_none_rejects_every_position_and_memory_with_needs():
    from models.components import MEMORY
    for field, registry in (("position", POSITION), ("memory", MEMORY)):
        for name in registry.names():
            if getattr(registry.get(name), "needs", frozenset()):
                with pytest.raises(ConfigError):
                    ModelConfig(attention="none", **{field: name})


# --- kernelised attention: the chunked causal form equals the quadratic form -----------------------------------

@MODES
@pytest.mark.parametrize("t", [1, 5, 63, 64, 65, 130, 200])
@pytest.mark.parametrize("prefix", [0, 3])
def test_kernel_mix_equals_naive_at_lengths_around_the_chunk(causal, t, prefix):
    """Lengths below, at and around multiples of the chunk (64), with and without memory slots."""
    from models.attention._kernel import CHUNK, kernel_mix

    assert CHUNK == 64  # the lengths above straddle it
    q, k, v = qkv(b=1, h=2, t=t, hd=8, prefix=prefix, seed=t)
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    allowed = naive_mask(t, prefix, causal) if causal else None
    expected = naive_kernel(phi_q.double(), phi_k.double(), v.double(), allowed, 1e-6).float()
    close(kernel_mix(phi_q, phi_k, v, causal=causal, n_prefix=prefix, eps=1e-6), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("chunk", [1, 7, 16, 64, 1000])
def test_kernel_chunk_size_does_not_change_the_result(chunk):
    from models.attention import _kernel

    q, k, v = qkv(b=2, h=2, t=50, hd=8, seed=3)
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    num, den = _kernel._causal_chunked(phi_q, phi_k, v, chunk)
    allowed = naive_mask(50, 0, True).double()
    scores = (phi_q.double() @ phi_k.double().transpose(-2, -1)) * allowed
    close(num.double(), scores @ v.double(), atol=1e-4, rtol=1e-5)
    close(den.double(), scores.sum(-1), atol=1e-4, rtol=1e-5)


@MODES
@pytest.mark.parametrize("t", [10, 64, 100])
def test_performer_equals_naive_quadratic_kernel(causal, t):
    """Performer's O(T) sums equal the quadratic form of its own random-feature kernel."""
    module, _ = attention("performer", causal)
    q, k, v = qkv(t=t, hd=8, prefix=2, seed=t, scale=0.5)
    phi_q, phi_k = module.features(q, True), module.features(k, False)
    allowed = naive_mask(t, 2, True) if causal else None
    expected = naive_kernel(phi_q.double(), phi_k.double(), v.double(), allowed, module.eps).float()
    close(module.mix(q, k, v, bias=None, n_prefix=2), expected, atol=1e-5, rtol=1e-4)


def test_causal_kernel_memory_grows_linearly_not_with_the_state_per_step():
    """The chunked form never holds a (feature x value) state per time step: the largest tensor saved for
    backward at T=1024 is far below T * f * e elements (what the per-step cumulative state would need)."""
    from models.attention._kernel import kernel_mix

    t, f, e = 1024, 32, 32
    q, k, v = (randn(1, 1, t, n, seed=i).requires_grad_() for i, n in enumerate((f, f, e)))
    largest = 0

    def pack(x):
        nonlocal largest
        largest = max(largest, x.numel())
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        kernel_mix(F.elu(q) + 1, F.elu(k) + 1, v, causal=True, n_prefix=0, eps=1e-6).sum()
    assert largest < t * f * e / 8


@pytest.mark.parametrize("name", MIXERS)
@MODES
def test_attention_weights_are_the_weights_mix_applies(name, causal):
    """`attention_weights` (for the entropy diagnostic) must be exactly what the variant mixes values with."""
    module, cfg = attention(name, causal)
    position, x = BiasPosition(cfg, 64), randn(2, 12, cfg.d_model)
    weights = module.attention_weights(x, position, memory(cfg))
    if module.linear_time:
        assert weights is None  # kernelised attention never forms the matrix
        return
    assert weights.shape == (2, cfg.n_heads, 12, 3 + 12)
    _, _, v, _, _ = module.heads(x, position, memory(cfg))
    # head_outputs: what a variant does to each head's output after mixing (identity but for e.g. a gate)
    expected = module.out_proj(module.head_outputs(weights @ v, x).transpose(1, 2).reshape(2, 12, cfg.d_model))
    close(module(x, position, memory(cfg)), expected, atol=1e-5)
