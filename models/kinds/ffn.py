"""The `ffn` kind: the per-token feed-forward branch, `forward(x) -> x` on (batch, time, d_model).

Per-token is the contract (the per_position check holds it): mixing across positions is attention's job, and a
feed-forward branch that did it would blur what an ablation of either measures.
"""

from models.components import FFN
from models.kinds._base import Kind, component_checks


def build(cls, cfg, causal):
    return cls(cfg)


def run(module, x, cfg):
    return module(x)


TEMPLATE = '''import torch.nn.functional as F
from torch import nn

from models.components import FFN


@FFN.register("$name")  # select with model.ffn=$name
class $Class(nn.Module):
    """A SiLU MLP (edit `forward` to try your own idea). It must act on each position on its own."""

    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_proj = nn.Linear(cfg.d_ff, cfg.d_model)  # named out_proj: model.zero_init_branches zeroes it

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.dropout(self.out_proj(F.silu(self.up(x))))
'''


KIND = Kind(
    name="ffn",
    load_registry=lambda: FFN,
    interface="cls(cfg) ; forward(x (B,T,D)) -> (B,T,D), each position on its own ; declares skip ; an `out_proj` "
              "Linear (zeroed by model.zero_init_branches)",
    template=TEMPLATE,
    checks=component_checks("per_position"),
    build=build,
    run=run,
)
