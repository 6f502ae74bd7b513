"""models/memory/: every memory module trains, keeps causality and one output per input; segmented memories
process segments in order and carry information (and, for `recurrent` only, gradient) from early segments."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import models  # noqa: F401  (registers every variant)
from models.attention._base import MultiHeadAttention
from models.components import ATTENTION, MEMORY
from models.config import ModelConfig
from models.errors import ConfigError
from models.memory.knn import retrieve
from models.transformer import build_model

VOCAB = 11
SEG = 8
TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32)
SIZE = 4  # every memory's size in these tests (tokens, slots, cached positions, top-k and kept segments)
#: Each built-in memory's size options (its own `Options`)
SIZE_OPTIONS = {"tokens": ("n_tokens",), "persistent": ("n_slots",), "recurrent": ("n_tokens",), "xl": ("cache_len",),
                "knn": ("top_k", "kept_segments")}
NAMES = MEMORY.names()
SEGMENTED = [name for name in NAMES if getattr(MEMORY.get(name), "segmented", False)]
CARRIERS = ["knn", "recurrent", "xl"]  # memories that carry information from one segment to the next


def tiny(memory, size=SIZE, **changes) -> ModelConfig:
    """The tiny config with `memory`, each of its size options at `size`."""
    segment_len = SEG if getattr(MEMORY.get(memory), "segmented", False) else 0
    options = {memory: dict.fromkeys(SIZE_OPTIONS[memory], size)} if memory in SIZE_OPTIONS else {}
    return dataclasses.replace(TINY, **{"memory": memory, "segment_len": segment_len, "options": options, **changes})


def tokens(batch=3, time=24, seed=0):
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def model_for(cfg, causal=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    return build_model(cfg, vocab_size=VOCAB, causal=causal, max_len=32, **kwargs).eval()


def change(x, start, stop):
    changed = x.clone()
    changed[:, start:stop] = (changed[:, start:stop] + 1) % VOCAB
    return changed


def max_diff(model, x, y, positions):
    with torch.no_grad():
        return (model(x)[:, positions] - model(y)[:, positions]).abs().max().item()


def test_the_memories_are_registered():
    assert {"none", "tokens", "persistent", "recurrent", "xl", "knn"} <= set(NAMES)
    assert set(CARRIERS) <= set(SEGMENTED)


# --- every memory -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("time", [20, 32], ids=["ragged", "whole-segments"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", NAMES)
def test_every_memory_trains(name, causal, time):
    model = model_for(tiny(name), causal=causal).train()
    x, y = tokens(batch=2, time=time, seed=1), tokens(batch=2, time=time, seed=2)
    logits = model(x)
    assert logits.shape == (2, time, VOCAB)
    assert torch.isfinite(logits).all()
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{pname} has a non-finite gradient"
    for pname, param in model.memory.named_parameters():
        assert param.grad.abs().sum() > 0, f"memory parameter {pname} got a zero gradient"


@pytest.mark.parametrize("changes", [dict(kv_heads=1), dict(norm_placement="post"), dict(n_layers=3)],
                         ids=["grouped-query", "post-norm", "three-layers"])
@pytest.mark.parametrize("name", NAMES)
def test_every_memory_with_other_blocks(name, changes):
    model = model_for(tiny(name, **changes)).train()
    out = model(tokens(batch=2, time=20))
    assert out.shape == (2, 20, VOCAB) and torch.isfinite(out).all()
    out.sum().backward()


@pytest.mark.parametrize("head", ["mean", "cls"])
@pytest.mark.parametrize("name", NAMES)
def test_every_memory_with_continuous_input_and_pooled_heads(name, head):
    torch.manual_seed(0)
    model = build_model(tiny(name), input_dim=4, out_dim=10, causal=False, head=head, max_len=32)
    out = model(torch.randn(2, 19, 4))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_per_sequence_and_reset_every_call(name):
    model = model_for(tiny(name))
    x = tokens(batch=3, time=24)
    with torch.no_grad():
        first, second, alone = model(x), model(x), model(x[1:2])
    torch.testing.assert_close(second, first)  # nothing is carried from one call to the next
    torch.testing.assert_close(alone, first[1:2], atol=1e-6, rtol=1e-5)  # nor between sequences of a batch


@pytest.mark.parametrize("name", NAMES)
def test_memory_leaves_no_hooks_behind(name):
    model = model_for(tiny(name))
    with torch.no_grad():
        model(tokens(batch=1, time=20))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, f"hook left on {module}"


@pytest.mark.parametrize("name", NAMES)
def test_causal_outputs_never_depend_on_later_tokens(name):
    model = model_for(tiny(name), causal=True)
    x = tokens(batch=2, time=20)
    with torch.no_grad():
        base = model(x)
        for t in range(x.shape[1]):
            out = model(change(x, t, t + 1))
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=1e-5,
                                       msg=f"position < {t} changed when token {t} changed")
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4  # position t does see its own token


# --- configuration ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SEGMENTED)
def test_segmented_memory_needs_segment_len(name):
    with pytest.raises(ConfigError) as info:
        ModelConfig(memory=name)
    message = str(info.value)
    assert "\n" not in message
    assert f"model.memory={name}" in message and "model.segment_len" in message
    ModelConfig(memory=name, segment_len=SEG)  # fine once segment_len is set


def test_prefix_memory_needs_an_attention_that_provides_prefix():
    class NoPrefix(MultiHeadAttention):
        provides = frozenset({"causal", "rotate", "score_bias"})

    ATTENTION.register("test_no_prefix")(NoPrefix)
    try:
        needing = [name for name in NAMES if "prefix" in MEMORY.get(name).needs]
        assert {"persistent", "xl"} <= set(needing)
        for name in needing:
            with pytest.raises(ConfigError) as info:
                ModelConfig(attention="test_no_prefix", memory=name, segment_len=SEG)
            message = str(info.value)
            assert "\n" not in message
            assert f"model.memory={name}" in message and "model.attention=test_no_prefix" in message
            assert "prefix" in message
        for name in set(NAMES) - set(needing):
            ModelConfig(attention="test_no_prefix", memory=name, segment_len=SEG)
    finally:
        del ATTENTION._entries["test_no_prefix"]


# --- segments -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", CARRIERS)
def test_early_segment_reaches_a_later_segment(name, causal):
    cfg = tiny(name, size=SEG)  # xl: the cache spans one segment, so segment 0 reaches segment 2 via layer 1
    model = model_for(cfg, causal=causal)
    x = tokens(batch=2, time=24)
    assert max_diff(model, x, change(x, 0, SEG), slice(2 * SEG, 3 * SEG)) > 1e-4


@pytest.mark.parametrize("name", SEGMENTED)
def test_segments_are_processed_in_order(name):
    # bidirectional within a segment, but a segment never reads a later one
    model = model_for(tiny(name), causal=False)
    x = tokens(batch=2, time=24)
    assert max_diff(model, x, change(x, SEG, 3 * SEG), slice(0, SEG)) == 0.0
    assert max_diff(model, x, change(x, SEG - 1, SEG), slice(0, 1)) > 1e-4


def _segment2_input_gradient(name):
    model = model_for(tiny(name, size=SEG))
    x = tokens(batch=2, time=24)
    h = model.position.embed(model.embed(x)).detach().requires_grad_()
    out = model.memory(h, model.run_blocks)
    assert out.shape == h.shape
    out[:, 2 * SEG:].sum().backward()
    return h.grad


def test_recurrent_gradient_flows_back_through_segments():
    grad = _segment2_input_gradient("recurrent")
    assert grad[:, :SEG].abs().max() > 0  # backpropagation through time


@pytest.mark.parametrize("name", ["knn", "xl"])
def test_cached_memories_pass_no_gradient_to_the_past(name):
    grad = _segment2_input_gradient(name)
    assert grad[:, : 2 * SEG].abs().max() == 0  # cached/stored without gradient...
    assert grad[:, 2 * SEG:].abs().max() > 0  # ...while the segment itself has one


def test_xl_reach_is_bounded_by_layers_times_memory():
    # 2 layers, a cache of one segment: segment 0 reaches segment 2 (test above) but never segment 3
    model = model_for(tiny("xl", size=SEG))
    x = tokens(batch=2, time=32)
    assert max_diff(model, x, change(x, 0, SEG), slice(3 * SEG, 4 * SEG)) == 0.0
    assert max_diff(model, x, change(x, 0, SEG), slice(2 * SEG, 3 * SEG)) > 1e-4


@pytest.mark.parametrize("changes", [dict(), dict(norm_placement="post"), dict(kv_heads=1, n_layers=3)],
                         ids=["pre-norm", "post-norm", "grouped-query"])
def test_causal_xl_with_a_full_cache_equals_the_whole_sequence_at_once(changes):
    # the cache holds exactly the states the full causal model attends to, so the outputs must agree
    x = tokens(batch=2, time=28)
    with torch.no_grad():
        xl = model_for(tiny("xl", size=32, **changes))(x)
        whole = model_for(tiny("none", **changes))(x)
    torch.testing.assert_close(xl, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["knn", "xl"])
def test_a_single_segment_equals_no_memory(name):
    # knn and xl have nothing to read in the first segment, and add no randomly initialised parameters
    x = tokens(batch=2, time=8)
    with torch.no_grad():
        torch.testing.assert_close(model_for(tiny(name))(x), model_for(tiny("none"))(x))


# --- knn ----------------------------------------------------------------------------------------------------

def test_knn_retrieve_is_exact_top_k_attention():
    g = torch.Generator().manual_seed(0)
    q, keys, values = (torch.randn(2, 2, 5, 4, generator=g), torch.randn(2, 2, 9, 4, generator=g),
                       torch.randn(2, 2, 9, 4, generator=g))
    out = retrieve(q, keys, values, 3)
    for b in range(2):
        for head in range(2):
            for t in range(5):
                scores = keys[b, head] @ q[b, head, t] / 2.0
                top = scores.topk(3).indices
                expected = scores[top].softmax(0) @ values[b, head, top]
                torch.testing.assert_close(out[b, head, t], expected)
    torch.testing.assert_close(retrieve(q, keys, values, 100), F.scaled_dot_product_attention(q, keys, values))


def test_knn_with_closed_gates_is_plain_segment_attention():
    model = model_for(tiny("knn"))
    with torch.no_grad():
        model.memory.gate.fill_(-1e4)  # sigmoid -> 0: memory ignored
        x = tokens(batch=2, time=24)
        h = model.position.embed(model.embed(x))
        expected = torch.cat([model.run_blocks(s) for s in h.split(SEG, dim=1)], dim=1)
        torch.testing.assert_close(model.memory(h, model.run_blocks), expected)
        model.memory.gate.fill_(0.0)
        assert (model.memory(h, model.run_blocks) - expected)[:, SEG:].abs().max() > 1e-4


def knn(top_k: int, kept_segments: int, **changes) -> ModelConfig:
    return dataclasses.replace(tiny("knn", **changes), options={"knn": {"top_k": top_k, "kept_segments": kept_segments}})


def test_knn_memory_keeps_kept_segments_segments():
    # one layer; kept_segments=1 keeps one segment of keys: segment 2 reads segment 1 but no longer segment 0
    model = model_for(knn(4, 1, n_layers=1))
    x = tokens(batch=2, time=24)
    assert max_diff(model, x, change(x, 0, SEG), slice(2 * SEG, 3 * SEG)) == 0.0
    assert max_diff(model, x, change(x, SEG, 2 * SEG), slice(2 * SEG, 3 * SEG)) > 1e-4
    model = model_for(knn(4, 2, n_layers=1))
    assert max_diff(model, x, change(x, 0, SEG), slice(2 * SEG, 3 * SEG)) > 1e-4
    assert (model.memory.k, model.memory.capacity) == (4, 2 * SEG)


def test_knn_top_k_is_how_many_stored_keys_each_query_reads():
    # the memory's read of a segment: exact top-k over every stored key (retrieve, tested above), so with top_k at
    # least the stored keys (one kept segment of SEG) it reads them all, and with top_k=1 only the best match
    x = tokens(batch=2, time=16)
    with torch.no_grad():
        wide, also_wide, narrow = (model_for(knn(k, 1, n_layers=1))(x) for k in (SEG, 4 * SEG, 1))
    torch.testing.assert_close(wide, also_wide)  # more than SEG stored keys cannot be read
    assert (wide - narrow)[:, SEG:].abs().max() > 1e-4
    torch.testing.assert_close(wide[:, :SEG], narrow[:, :SEG])  # the first segment has no memory to read


# --- tokens and persistent ----------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_memory_tokens_influence_outputs(causal):
    model = model_for(tiny("tokens"), causal=causal)
    assert model.memory.tokens.shape == (1, SIZE, TINY.d_model)
    x = tokens(batch=2, time=12)
    with torch.no_grad():
        base = model(x)
        assert base.shape == (2, 12, VOCAB)
        model.memory.tokens.zero_()
        assert (model(x) - base).abs().max() > 1e-4


def test_persistent_slots_influence_outputs():
    model = model_for(tiny("persistent"))
    head_dim = TINY.d_model // TINY.n_heads
    assert model.memory.keys.shape == (TINY.n_layers, TINY.n_heads, SIZE, head_dim)
    x = tokens(batch=2, time=12)
    with torch.no_grad():
        base = model(x)
        model.memory.values.zero_()
        assert (model(x) - base).abs().max() > 1e-4


def test_recurrent_runs_read_segment_write_per_segment():
    model = model_for(tiny("recurrent"))
    x = tokens(batch=2, time=16)
    h = model.position.embed(model.embed(x))
    m = SIZE
    with torch.no_grad():
        memory = model.memory.initial.expand(2, -1, -1)
        first = model.run_blocks(torch.cat([memory, h[:, :SEG], memory], dim=1))
        memory = first[:, m + SEG:]
        second = model.run_blocks(torch.cat([memory, h[:, SEG:], memory], dim=1))
        expected = torch.cat([first[:, m:m + SEG], second[:, m:m + SEG]], dim=1)
        torch.testing.assert_close(model.memory(h, model.run_blocks), expected)


# --- with every attention and position ----------------------------------------------------------------------

def _valid(**fields):
    try:
        return tiny(**fields)
    except ConfigError:
        return None


COMBOS = [(name, field, variant) for name in NAMES
          for field, registry in (("attention", ATTENTION), ("position", models.REGISTRIES["position"]))
          for variant in registry.names() if _valid(memory=name, **{field: variant}) is not None]


@pytest.mark.parametrize("name,field,variant", COMBOS, ids=[f"{n}-{f}={v}" for n, f, v in COMBOS])
def test_every_memory_with_every_attention_and_position(name, field, variant):
    cfg = tiny(name, **{field: variant})
    model = model_for(cfg, causal=True).train()
    x = tokens(batch=2, time=20)
    out = model(x)
    assert out.shape == (2, 20, VOCAB) and torch.isfinite(out).all()
    out.sum().backward()
    model.eval()
    t = SEG + 3  # a position inside the second segment: nothing before it may change
    with torch.no_grad():
        torch.testing.assert_close(model(change(x, t, 20))[:, :t], model(x)[:, :t], atol=1e-6, rtol=1e-5)


XL_EXACT = [a for a in ATTENTION.names() if _valid(memory="xl", attention=a) is not None and a != "local"]


@pytest.mark.parametrize("attention", XL_EXACT)
def test_causal_xl_with_a_full_cache_equals_the_whole_sequence_for_every_attention(attention):
    x = tokens(batch=2, time=20)
    with torch.no_grad():
        xl = model_for(tiny("xl", size=32, attention=attention))(x)
        whole = model_for(tiny("none", attention=attention))(x)
    torch.testing.assert_close(xl, whole, atol=1e-5, rtol=1e-4)
