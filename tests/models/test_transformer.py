"""models/transformer.py: shapes, causality, residual and norm semantics, every registered component."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import ATTENTION, NORM, REGISTRIES
from models.config import ModelConfig
from models.errors import ConfigError
from models.transformer import build_model

VOCAB = 11
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)

# Parameters that may legitimately receive no gradient, as {(field, variant): {parameter name prefix, ...}}.
# Empty today; a variant that owns, say, a non-trainable buffer-like parameter documents it here.
NO_GRAD_EXPECTED: dict[tuple[str, str], set[str]] = {}


def tiny(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


def configure(**changes) -> ModelConfig:
    """TINY with `changes`, plus whatever else a variant needs to be valid (a segment length for a segmented
    memory, an attention that provides what a position or memory needs); fails if nothing makes it valid."""
    extras = [{}, {"segment_len": 4}]
    if "attention" not in changes:
        extras += [{"attention": a, **e} for a in ATTENTION.names() for e in ({}, {"segment_len": 4})]
    errors = []
    for extra in extras:
        try:
            return dataclasses.replace(TINY, **{**extra, **changes})
        except (ConfigError, TypeError) as error:  # TypeError: a field this version does not have
            errors.append(str(error))
    pytest.fail(f"no valid configuration with {changes}: {errors[0]}")


def mixes_tokens(cfg) -> bool:
    return not getattr(ATTENTION.get(cfg.attention), "skip", False)


def tokens(batch=3, time=8, seed=0):
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def token_model(cfg=TINY, causal=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    return build_model(cfg, vocab_size=VOCAB, causal=causal, max_len=32, **kwargs).eval()


class Recorder:
    """Forward hooks that record a module's inputs and outputs."""

    def __init__(self):
        self.inputs, self.outputs, self.handles = {}, {}, []

    def watch(self, name, module):
        def hook(_module, args, output):
            self.inputs[name] = args[0].detach().clone()
            self.outputs[name] = output.detach().clone()
        self.handles.append(module.register_forward_hook(hook))

    def remove(self):
        for handle in self.handles:
            handle.remove()


# --- shapes and edges ---------------------------------------------------------------------------------------

def test_token_input_with_per_token_head():
    model = token_model()
    out = model(tokens(3, 8))
    assert out.shape == (3, 8, VOCAB)
    assert out.dtype == torch.float32


def test_token_head_with_a_different_number_of_classes():
    torch.manual_seed(0)
    model = build_model(TINY, vocab_size=VOCAB, out_dim=4, max_len=16)
    assert model(tokens(2, 5)).shape == (2, 5, 4)


def test_continuous_input_with_mean_head():
    torch.manual_seed(0)
    model = build_model(TINY, input_dim=4, out_dim=10, causal=False, head="mean", max_len=16).eval()
    x = torch.randn(3, 16, 4)
    assert model(x).shape == (3, 10)


def test_mean_head_is_the_mean_of_per_token_logits():
    # the head is linear without bias, so pooling before it equals averaging the per-token logits
    torch.manual_seed(0)
    pooled = build_model(TINY, input_dim=4, out_dim=10, causal=False, head="mean", max_len=16).eval()
    per_token = build_model(TINY, input_dim=4, out_dim=10, causal=False, head="token", max_len=16).eval()
    per_token.load_state_dict(pooled.state_dict())
    x = torch.randn(3, 16, 4)
    torch.testing.assert_close(pooled(x), per_token(x).mean(dim=1), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(), dict(vocab_size=5, input_dim=4, out_dim=3)])
def test_exactly_one_input_kind(kwargs):
    with pytest.raises(ConfigError, match="exactly one of vocab_size"):
        build_model(TINY, **kwargs)


def test_continuous_input_needs_out_dim():
    with pytest.raises(ConfigError, match="out_dim"):
        build_model(TINY, input_dim=4)


def test_unknown_head():
    with pytest.raises(ConfigError, match="unknown head 'max'"):
        build_model(TINY, vocab_size=VOCAB, head="max")


def test_init_is_gpt2_style():
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(TINY, d_model=64, n_heads=4, d_ff=256), vocab_size=VOCAB)
    checked = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, (nn.Linear, nn.Embedding)) and module.weight.numel() >= 500:
            assert abs(module.weight.std().item() - 0.02) < 0.003
            checked += 1
    assert checked >= 3


def test_dropout_is_active_in_training_only():
    model = token_model(tiny(dropout=0.5))
    x = tokens()
    torch.testing.assert_close(model(x), model(x), atol=0, rtol=0)
    model.train()
    assert not torch.allclose(model(x), model(x))


# --- causality ----------------------------------------------------------------------------------------------

# Every variant of the components that touch token mixing, each varied on its own from the baseline.
MIXING = [(field, name) for field in ("attention", "position", "memory") if field in REGISTRIES
          for name in REGISTRIES[field].names()]
MIXING_IDS = [f"{field}={name}" for field, name in MIXING]


@pytest.mark.parametrize("field,name", MIXING, ids=MIXING_IDS)
def test_causal_outputs_never_depend_on_later_tokens(field, name):
    model = token_model(configure(**{field: name}), causal=True)
    x = tokens(batch=2, time=8)
    with torch.no_grad():
        base = model(x)
        for t in range(x.shape[1]):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            out = model(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-7, rtol=1e-6,
                                       msg=f"positions < {t} changed when token {t} changed")
            # ...while position t itself does see its own token (so the comparison above is not vacuous)
            assert (out[:, t] - base[:, t]).abs().max() > 1e-3


@pytest.mark.parametrize("field,name", MIXING, ids=MIXING_IDS)
def test_causal_prefix_gives_the_same_outputs(field, name):
    model = token_model(configure(**{field: name}), causal=True)
    x = tokens(batch=2, time=8)
    with torch.no_grad():
        full = model(x)
        for t in (1, 4, 7):
            torch.testing.assert_close(model(x[:, :t]), full[:, :t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("field,name", MIXING, ids=MIXING_IDS)
def test_bidirectional_outputs_depend_on_later_tokens(field, name):
    cfg = configure(**{field: name})
    if not mixes_tokens(cfg):
        pytest.skip(f"attention {cfg.attention} mixes no tokens")
    model = token_model(cfg, causal=False)
    x = tokens(batch=2, time=8)
    # a later token in the same segment as position 0 (segmented memories never look ahead across segments)
    later = (cfg.segment_len or x.shape[1]) - 1
    changed = x.clone()
    changed[:, later] = (changed[:, later] + 1) % VOCAB
    with torch.no_grad():
        diff = (model(changed)[:, 0] - model(x)[:, 0]).abs().max()
    # at initialisation some mixers are nearly uniform averages, so the effect can be small (~5e-5 for relu
    # attention), but a model that does not read position `later` gives exactly 0
    assert diff > 1e-6


def test_no_token_mixing_without_attention():
    if "none" not in ATTENTION or not getattr(ATTENTION.get("none"), "skip", False):
        pytest.skip("no attention=none variant")
    model = token_model(tiny(attention="none"), causal=False)
    assert all(block.attn is None for block in model.blocks)
    x = tokens(batch=2, time=8)
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(model(changed)[:, :-1], model(x)[:, :-1], atol=0, rtol=0)


# --- residual modes -----------------------------------------------------------------------------------------

def _record_block(block):
    recorder = Recorder()
    recorder.watch("block", block)
    recorder.watch("attn", block.attn)
    recorder.watch("ffn", block.ffn)
    recorder.watch("attn_place", block.attn_place)
    recorder.watch("ffn_place", block.ffn_place)
    recorder.watch("attn_norm", block.attn_place.norm)
    recorder.watch("ffn_norm", block.ffn_place.norm)
    return recorder


def _layer_norm(module, x):
    return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)


@pytest.mark.parametrize("layer", [0, 1])
def test_pre_norm_without_residual_outputs_the_branch(layer):
    model = token_model(tiny(residual="none", norm_placement="pre"))
    rec = _record_block(model.blocks[layer])
    with torch.no_grad():
        model(tokens())
    rec.remove()
    # the stream after the attention branch is the attention output itself...
    torch.testing.assert_close(rec.inputs["ffn_place"], rec.outputs["attn"], atol=0, rtol=0)
    # ...and the block's output is exactly the feed-forward branch's output
    torch.testing.assert_close(rec.outputs["block"], rec.outputs["ffn"], atol=0, rtol=0)
    # and it is not the same as what a residual would give
    assert not torch.allclose(rec.outputs["block"], rec.inputs["ffn_place"] + rec.outputs["ffn"])


def test_post_norm_without_residual_outputs_the_normalised_branch():
    model = token_model(tiny(residual="none", norm_placement="post"))
    block = model.blocks[1]
    rec = _record_block(block)
    with torch.no_grad():
        model(tokens())
    rec.remove()
    torch.testing.assert_close(rec.inputs["ffn_norm"], rec.outputs["ffn"], atol=0, rtol=0)
    torch.testing.assert_close(rec.outputs["block"], _layer_norm(block.ffn_place.norm, rec.outputs["ffn"]),
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layer", [0, 1])
def test_pre_norm_standard_residual_adds_each_branch_to_the_stream(layer):
    model = token_model(tiny(residual="standard", norm_placement="pre"))
    rec = _record_block(model.blocks[layer])
    with torch.no_grad():
        model(tokens())
    rec.remove()
    stream_after_attn = rec.inputs["ffn_place"]
    torch.testing.assert_close(stream_after_attn, rec.inputs["block"] + rec.outputs["attn"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rec.outputs["block"], stream_after_attn + rec.outputs["ffn"], atol=1e-6, rtol=1e-5)


def test_post_norm_standard_residual_normalises_the_sum():
    model = token_model(tiny(residual="standard", norm_placement="post"))
    block = model.blocks[0]
    rec = _record_block(block)
    with torch.no_grad():
        model(tokens())
    rec.remove()
    # the attention branch reads the raw stream, and its norm reads stream + branch
    torch.testing.assert_close(rec.inputs["attn"], rec.inputs["block"], atol=0, rtol=0)
    torch.testing.assert_close(rec.inputs["attn_norm"], rec.inputs["block"] + rec.outputs["attn"],
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rec.inputs["ffn"], rec.outputs["attn_norm"], atol=0, rtol=0)
    torch.testing.assert_close(rec.outputs["block"], rec.outputs["ffn_norm"], atol=0, rtol=0)
    torch.testing.assert_close(rec.inputs["ffn_norm"], rec.outputs["attn_norm"] + rec.outputs["ffn"],
                               atol=1e-6, rtol=1e-5)


# --- norm placement -----------------------------------------------------------------------------------------

def _token_stats(h):
    return h.mean(dim=-1), h.var(dim=-1, unbiased=False)


def test_post_norm_block_outputs_are_normalised_per_token():
    model = token_model(tiny(norm_placement="post"))
    recorders = [_record_block(block) for block in model.blocks]
    with torch.no_grad():
        model(tokens())
    for rec in recorders:
        rec.remove()
        mean, var = _token_stats(rec.outputs["block"])
        assert mean.abs().max() < 1e-5
        assert (var - 1).abs().max() < 1e-3


def test_pre_norm_block_outputs_are_not_normalised():
    model = token_model(tiny(norm_placement="pre"))
    recorders = [_record_block(block) for block in model.blocks]
    with torch.no_grad():
        model(tokens())
    for rec in recorders:
        rec.remove()
        _, var = _token_stats(rec.outputs["block"])
        assert (var - 1).abs().max() > 0.5  # the stream keeps its (small, at init) scale


@pytest.mark.parametrize("layer", [0, 1])
def test_pre_norm_normalises_only_the_branch_input(layer):
    model = token_model(tiny(norm_placement="pre"))
    block = model.blocks[layer]
    rec = _record_block(block)
    with torch.no_grad():
        model(tokens())
    rec.remove()
    # each norm receives the stream as it is...
    torch.testing.assert_close(rec.inputs["attn_norm"], rec.inputs["block"], atol=0, rtol=0)
    torch.testing.assert_close(rec.inputs["ffn_norm"], rec.inputs["ffn_place"], atol=0, rtol=0)
    # ...each branch reads its normalised version...
    torch.testing.assert_close(rec.inputs["attn"], _layer_norm(block.attn_place.norm, rec.inputs["block"]),
                               atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(rec.inputs["ffn"], rec.outputs["ffn_norm"], atol=0, rtol=0)
    mean, var = _token_stats(rec.inputs["attn"])
    assert mean.abs().max() < 1e-5 and (var - 1).abs().max() < 0.05
    # ...and the stream itself passes un-normalised
    torch.testing.assert_close(rec.outputs["block"],
                               rec.inputs["block"] + rec.outputs["attn"] + rec.outputs["ffn"], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm", NORM.names())
@pytest.mark.parametrize("placement,final_norm,present", [
    ("pre", True, True), ("pre", False, False), ("post", True, False), ("post", False, False)])
def test_final_norm(norm, placement, final_norm, present):
    model = token_model(tiny(norm=norm, norm_placement=placement, final_norm=final_norm))
    if present:
        assert type(model.final_norm) is NORM.get(norm)
    else:
        assert type(model.final_norm) is nn.Identity


@pytest.mark.parametrize("placement", REGISTRIES["norm_placement"].names())
def test_no_final_norm_when_switched_off(placement):
    model = token_model(tiny(norm_placement=placement, final_norm=False))
    assert type(model.final_norm) is nn.Identity


def test_final_norm_is_applied_before_the_head():
    model = token_model(tiny(norm_placement="pre", final_norm=True))
    assert isinstance(model.final_norm, nn.LayerNorm)
    rec = Recorder()
    rec.watch("last", model.blocks[-1])
    rec.watch("head", model.head)
    with torch.no_grad():
        model(tokens())
    rec.remove()
    torch.testing.assert_close(rec.inputs["head"], _layer_norm(model.final_norm, rec.outputs["last"]),
                               atol=1e-6, rtol=1e-5)


# --- every registered component -----------------------------------------------------------------------------

ALL_VARIANTS = [(field, name) for field, registry in sorted(REGISTRIES.items()) for name in registry.names()]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("field,name", ALL_VARIANTS, ids=[f"{f}={n}" for f, n in ALL_VARIANTS])
def test_every_component_trains(field, name, causal):
    model = token_model(configure(**{field: name}), causal=causal).train()
    x, y = tokens(batch=4, time=8, seed=1), tokens(batch=4, time=8, seed=2)
    logits = model(x)
    assert logits.shape == (4, 8, VOCAB)
    assert torch.isfinite(logits).all()
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    loss.backward()
    assert torch.isfinite(loss)
    exempt = NO_GRAD_EXPECTED.get((field, name), set())
    total = 0.0
    for pname, param in model.named_parameters():
        if any(pname.startswith(prefix) for prefix in exempt):
            continue
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{pname} has a non-finite gradient"
        total += param.grad.abs().sum().item()
    assert total > 0


@pytest.mark.parametrize("field,name", ALL_VARIANTS, ids=[f"{f}={n}" for f, n in ALL_VARIANTS])
def test_every_component_with_continuous_input(field, name):
    torch.manual_seed(0)
    model = build_model(configure(**{field: name}), input_dim=4, out_dim=10, causal=False, head="mean", max_len=16)
    out = model(torch.randn(2, 16, 4))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


# --- tied head ----------------------------------------------------------------------------------------------

def test_tie_head_shares_the_embedding():
    tied = token_model(tiny(tie_head=True))
    assert tied.head.weight is tied.embed.weight
    untied = token_model(tiny(tie_head=False))
    assert untied.head.weight is not untied.embed.weight
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == VOCAB * TINY.d_model
    with torch.no_grad():
        tied.embed.weight[3].fill_(0.5)
    assert torch.equal(tied.head.weight[3], torch.full((TINY.d_model,), 0.5))


def test_tie_head_with_explicit_matching_out_dim():
    model = token_model(tiny(tie_head=True), out_dim=VOCAB)
    assert model.head.weight is model.embed.weight


@pytest.mark.parametrize("kwargs", [
    dict(input_dim=4, out_dim=10),                      # continuous input has no embedding to share
    dict(vocab_size=VOCAB, head="mean"),                # pooled head
    dict(vocab_size=VOCAB, out_dim=VOCAB - 1),          # different vocabulary
], ids=["continuous", "mean-head", "other-out-dim"])
def test_invalid_tie_head_raises(kwargs):
    with pytest.raises(ConfigError, match="tie_head"):
        build_model(tiny(tie_head=True), **kwargs)


# --- per-branch residuals, zero-initialised branches, grouped key/value heads, class token ------------------

FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}


@pytest.mark.skipif(not {"attn_residual", "ffn_residual"} <= FIELDS, reason="no per-branch residuals")
def test_per_branch_residual_modes():
    model = token_model(tiny(residual="standard", attn_residual="none", ffn_residual=None, norm_placement="pre"))
    block = model.blocks[1]
    rec = _record_block(block)
    with torch.no_grad():
        model(tokens())
    rec.remove()
    # the attention branch replaces the stream, the feed-forward branch is added to it
    torch.testing.assert_close(rec.inputs["ffn_place"], rec.outputs["attn"], atol=0, rtol=0)
    torch.testing.assert_close(rec.outputs["block"], rec.outputs["attn"] + rec.outputs["ffn"], atol=1e-6, rtol=1e-5)


@pytest.mark.skipif("zero_init_branches" not in FIELDS, reason="no zero-initialised branches")
def test_zero_initialised_branches_make_every_block_the_identity():
    model = token_model(tiny(zero_init_branches=True, residual="standard"))
    recorders = [_record_block(block) for block in model.blocks]
    with torch.no_grad():
        model(tokens())
    for rec in recorders:
        rec.remove()
        assert torch.count_nonzero(rec.outputs["attn"]) == 0 and torch.count_nonzero(rec.outputs["ffn"]) == 0
        torch.testing.assert_close(rec.outputs["block"], rec.inputs["block"], atol=0, rtol=0)
    # and the zeroed branches still learn: their output projections get a gradient
    model.train()
    F.cross_entropy(model(tokens()).reshape(-1, VOCAB), tokens(seed=1).reshape(-1)).backward()
    for block in model.blocks:
        for branch in (block.attn, block.ffn):
            assert branch.out_proj.weight.grad.abs().sum() > 0


@pytest.mark.skipif("kv_heads" not in FIELDS, reason="no grouped key/value heads")
@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_key_value_heads_use_fewer_parameters_and_stay_causal(kv_heads):
    cfg = tiny(d_model=16, n_heads=4, kv_heads=kv_heads)
    full = token_model(tiny(d_model=16, n_heads=4))
    grouped = token_model(cfg)
    head_dim = 16 // 4
    saved = 2 * (4 - kv_heads) * head_dim * (16 + 1) * TINY.n_layers  # k and v weights and biases
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in grouped.parameters()) == saved
    x = tokens(batch=2, time=8)
    changed = x.clone()
    changed[:, 5] = (changed[:, 5] + 1) % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(grouped(changed)[:, :5], grouped(x)[:, :5], atol=1e-6, rtol=1e-5)


def test_grouped_heads_with_kv_heads_equal_to_n_heads_is_standard_attention():
    if "kv_heads" not in FIELDS:
        pytest.skip("no grouped key/value heads")
    standard = token_model(tiny(kv_heads=0))
    same = token_model(tiny(kv_heads=TINY.n_heads))
    same.load_state_dict(standard.state_dict())
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(same(x), standard(x), atol=0, rtol=0)


def test_class_token_head():
    torch.manual_seed(0)
    try:
        model = build_model(TINY, vocab_size=VOCAB, out_dim=10, causal=True, head="cls", max_len=8).eval()
    except ConfigError:
        pytest.skip("no class-token head")
    x = tokens(batch=3, time=8)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 10)
        # the class token sits after the sequence, so even a causal model reads the first token from it
        changed = x.clone()
        changed[:, 0] = (changed[:, 0] + 1) % VOCAB
        assert (model(changed) - out).abs().max() > 1e-4
    assert model.cls_token.requires_grad
