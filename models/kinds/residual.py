"""The `residual` kind: how a branch's output meets the stream, `forward(stream, branch_out) -> new stream`.

Built with its layer index, so that a mode may scale with depth; the harness feeds it a branch output derived
from the stream (tanh of the channel-flipped input) so that the two differ.
"""

import torch

from models.components import RESIDUAL
from models.kinds._base import Kind, component_checks


def build(cls, cfg, causal):
    return cls(cfg, 0)


def run(module, x, cfg):
    return module(x, torch.tanh(x.flip(-1)))


TEMPLATE = '''import torch
from torch import nn

from models.components import RESIDUAL


@RESIDUAL.register("$name")  # select with model.residual=$name
class $Class(nn.Module):
    """stream + tanh(a) * branch, with a learned scalar a starting at 0 (edit `forward` for your idea)."""

    def __init__(self, cfg, layer_index: int):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(()))

    def forward(self, stream, branch_out):  # both (B, T, d_model)
        return stream + torch.tanh(self.a) * branch_out
'''


KIND = Kind(
    name="residual",
    load_registry=lambda: RESIDUAL,
    interface="cls(cfg, layer_index) ; forward(stream (B,T,D), branch_out (B,T,D)) -> (B,T,D)",
    template=TEMPLATE,
    checks=component_checks("per_position"),
    build=build,
    run=run,
)
