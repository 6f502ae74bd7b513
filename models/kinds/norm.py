"""The `norm` kind: a normaliser over the channel dimension, built as `cls(d_model)`.

Built from the width alone (not the config) because a placement builds as many as it needs through
`make_norm()`; per-token, so that normalising never leaks information across positions.
"""

from models.components import NORM
from models.kinds._base import Kind, component_checks


def build(cls, cfg, causal):
    return cls(cfg.d_model)


def run(module, x, cfg):
    return module(x)


TEMPLATE = '''import torch
from torch import nn

from models.components import NORM


@NORM.register("$name")  # select with model.norm=$name
class $Class(nn.Module):
    """Divide each token by its mean absolute value, times a learned gain (edit `forward` for your idea)."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model), each position on its own
        return x / (x.abs().mean(dim=-1, keepdim=True) + self.eps) * self.weight
'''


KIND = Kind(
    name="norm",
    load_registry=lambda: NORM,
    interface="cls(d_model) ; forward(x (B,T,D)) -> (B,T,D), each position on its own",
    template=TEMPLATE,
    checks=component_checks("per_position"),
    build=build,
    run=run,
)
