"""models/norm/: every normaliser keeps the shape and, where it should, ignores the scale of its input;
rmsnorm and scalenorm match their papers' formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

import models  # noqa: F401  (registers every variant)
from models.components import NORM

D = 16
SCALE_INVARIANT = {"layernorm", "rmsnorm", "scalenorm"}  # f(c x) == f(x) for c > 0


def _x(*shape, seed=0):
    return 3 * torch.randn(*shape, D, generator=torch.Generator().manual_seed(seed)) + 0.5


def _randomise(module, seed=1):
    """Give every parameter a random value, so a formula check does not pass merely because gains are 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return module


def test_scale_invariant_norms_are_registered():
    assert SCALE_INVARIANT <= set(NORM.names())


def test_rmsnorm_matches_the_formula():
    norm = _randomise(NORM.get("rmsnorm")(D))
    x = _x(3, 5)
    expected = x / torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + norm.eps) * norm.weight
    torch.testing.assert_close(norm(x), expected, atol=1e-6, rtol=1e-5)
    assert norm.weight.shape == (D,)


def test_rmsnorm_rescales_without_recentring():
    norm = NORM.get("rmsnorm")(D)
    x = _x(4, 6)
    y = norm(x)
    rms = y.pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)
    assert y.mean(dim=-1).abs().max() > 0.05  # unlike LayerNorm, the mean is kept
    ln = NORM.get("layernorm")(D)
    assert ln(x).mean(dim=-1).abs().max() < 1e-5


def test_scalenorm_matches_the_formula_and_starts_at_sqrt_d():
    norm = NORM.get("scalenorm")(D)
    assert norm.g.shape == ()  # a single scalar, not a per-channel gain
    assert sum(p.numel() for p in norm.parameters()) == 1
    torch.testing.assert_close(norm.g.detach(), torch.tensor(math.sqrt(D)))
    x = _x(3, 5)
    y = norm(x)
    torch.testing.assert_close(y, math.sqrt(D) * x / x.norm(dim=-1, keepdim=True), atol=1e-5, rtol=1e-5)
    rms = y.pow(2).mean(dim=-1).sqrt()  # g = sqrt(d) gives unit RMS at initialisation
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-5, rtol=0)
    with torch.no_grad():
        norm.g.fill_(2.5)
    torch.testing.assert_close(norm(x), 2.5 * F.normalize(x, dim=-1), atol=1e-6, rtol=1e-5)


def test_scalenorm_of_zero_is_finite():
    y = NORM.get("scalenorm")(D)(torch.zeros(2, D))
    assert torch.isfinite(y).all() and torch.count_nonzero(y) == 0


@pytest.mark.parametrize("name", NORM.names())
def test_every_norm_keeps_the_shape_and_trains(name):
    norm = NORM.get(name)(D)
    x = _x(2, 7, 3).requires_grad_()
    y = norm(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", NORM.names())
@pytest.mark.parametrize("c", [0.5, 2.0, 7.0])  # not tiny: eps breaks invariance near 0
def test_scale_invariance(name, c):
    norm = _randomise(NORM.get(name)(D))
    x = _x(4, 5)
    if name in SCALE_INVARIANT:
        torch.testing.assert_close(norm(c * x), norm(x), atol=1e-4, rtol=1e-4)
    elif name == "none":
        torch.testing.assert_close(norm(c * x), c * x, atol=0, rtol=0)
    else:
        pytest.skip(f"no scale property declared for norm {name}")


def test_none_is_the_identity():
    x = _x(2, 3)
    assert torch.equal(NORM.get("none")(D)(x), x)
    assert not list(NORM.get("none")(D).parameters())
