"""The damages of ablations/analyse/damage.py act as they claim, on small models (fast: no Lightning)."""

import copy

import pytest
import torch

from ablations.analyse import damage as dmg
from models.components import ATTENTION
from models.config import ModelConfig
from models.errors import ConfigError
from models.transformer import build_model
from tasks import TASKS
from tasks.base import IGNORE


def _model(**fields):
    torch.manual_seed(0)
    cfg = ModelConfig(**{"d_model": 16, "n_layers": 3, "n_heads": 4, "d_ff": 32, **fields})
    return build_model(cfg, vocab_size=11, causal=True).eval()


def _tokens():
    return torch.randint(0, 11, (8, 10), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_removing_a_layer_of_a_zero_initialised_model_changes_nothing(layer):
    model, x = _model(zero_init_branches=True), _tokens()
    assert torch.equal(dmg.remove_layer(model, layer)(x), model(x))


def test_removing_a_layer_of_an_ordinary_model_changes_the_output():
    model, x = _model(), _tokens()
    assert not torch.allclose(dmg.remove_layer(model, 1)(x), model(x))
    assert model.blocks[1].attn is not None  # the original is untouched


def test_noise_at_scale_zero_changes_nothing_and_noise_is_relative_and_seeded():
    model, x = _model(), _tokens()
    assert torch.equal(dmg.add_noise(model, 0.0, seed=3)(x), model(x))
    noisy = dict(dmg.add_noise(model, 0.1, seed=3).named_parameters())
    again = dict(dmg.add_noise(model, 0.1, seed=3).named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(noisy[name], again[name])
        if p.numel() > 1 and p.std() > 0:
            ratio = (noisy[name] - p).std() / p.std()
            assert 0.05 < ratio < 0.2, (name, ratio)  # std 0.1 x the tensor's own, up to sampling error


def _trained(steps=30):
    """A tiny model briefly trained on copy, and its test batches."""
    task = TASKS.get("copy")(length=6, vocab=6, n_train=512, n_eval=128)
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32), vocab_size=task.vocab_size,
                        out_dim=task.n_classes, causal=task.causal, max_len=task.max_len())
    train = task.make_split("train", 512, 0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(steps):
        index = torch.arange(step * 64, step * 64 + 64) % 512
        logits = model(train.inputs[index])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), train.targets[index].reshape(-1),
                                                 ignore_index=IGNORE)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return task, model.eval(), dmg.split_batches(task, 0, 64)


def test_int8_rounding_is_within_rounding_error_of_float_on_a_trained_model():
    task, model, batches = _trained()
    rounded = dmg.round_int8(model)
    for (name, p), q in zip(model.named_parameters(), rounded.parameters()):
        bound = p.abs().max() / 127 / 2 if p.dim() >= 2 else 0.0
        assert (q - p).abs().max() <= bound + 1e-7, name  # each weight moves at most half a step
        if p.dim() >= 2:  # ... onto the int8 grid of its tensor
            steps = q / (p.abs().max() / 127)
            assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3, name
            assert not torch.equal(q, p), name
        else:
            assert torch.equal(q, p), name  # vectors (biases, norm gains) are left in float
    x, y = next(iter(batches))
    scored = y != IGNORE  # the source half of a copy example is not scored: its logits are free
    exact, approx = model(x)[scored], rounded(x)[scored]
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max()
    assert (approx.softmax(-1) - exact.softmax(-1)).abs().max() < 0.03  # 8 bits: about 1% here
    intact, after = dmg.score(model, batches, task.metric), dmg.score(rounded, batches, task.metric)
    assert intact > task.chance + 0.1  # it did learn something, so the comparison means something
    assert abs(after - intact) < 0.02


def test_removing_a_head_changes_the_output_only_through_that_head():
    model, x = _model(), _tokens()
    layer, head = 1, 2
    seen = {}
    attn = model.blocks[layer].attn
    width = attn.head_dim

    def keep(name):
        def hook(module, args):
            seen[name] = args[0].detach().clone()
        return hook

    handle = attn.out_proj.register_forward_pre_hook(keep("intact"))
    expected = model(x)
    handle.remove()
    damaged = dmg.remove_head(model, layer, head)
    handle = damaged.blocks[layer].attn.out_proj.register_forward_pre_hook(keep("damaged"))
    out = damaged(x)
    handle.remove()
    # the heads' outputs reaching the projection are the same (damage sits in the projection's columns) ...
    assert torch.equal(seen["intact"], seen["damaged"])
    # ... and the projection's output loses exactly that head's term
    w = attn.out_proj.weight
    head_term = seen["intact"][..., head * width:(head + 1) * width] @ w[:, head * width:(head + 1) * width].T
    assert torch.allclose(damaged.blocks[layer].attn.out_proj(seen["intact"]),
                          attn.out_proj(seen["intact"]) - head_term, atol=1e-6)
    assert not torch.allclose(out, expected)
    # earlier layers are untouched: their parameters are the same
    for p, q in zip(model.blocks[0].parameters(), damaged.blocks[0].parameters()):
        assert torch.equal(p, q)


def test_every_damage_is_listed_once():
    model = _model()
    fields = [f for f, _ in dmg.damages(model, scales=(0.1,), draws=(0, 1))]
    kinds = [f["damage"] for f in fields]
    assert kinds.count("layer") == 3 and kinds.count("head") == 12
    assert kinds.count("noise") == 2 and kinds.count("int8") == 1


@pytest.mark.parametrize("name", [n for n in ATTENTION.names() if not getattr(ATTENTION.get(n), "skip", False)])
def test_head_removal_is_zeroing_that_heads_output_for_every_attention_variant(name):
    """Generic over the registry: removing a head equals zeroing its slice of the heads' outputs (the input of the
    output projection) in a forward pre-hook, whatever the variant computes before it."""
    try:
        model = _model(attention=name, n_layers=2, n_heads=2)
    except ConfigError as error:
        pytest.skip(f"{name} does not build with the defaults: {error}")
    x, layer, head = _tokens(), 1, 1
    assert dmg.n_heads(model.blocks[layer]) == 2
    width = model.blocks[layer].attn.head_dim

    def zero(module, args):
        y = args[0].clone()
        y[..., head * width:(head + 1) * width] = 0
        return (y,)

    reference = copy.deepcopy(model)
    reference.blocks[layer].attn.out_proj.register_forward_pre_hook(zero)
    assert torch.allclose(dmg.remove_head(model, layer, head)(x), reference(x), atol=1e-5)
