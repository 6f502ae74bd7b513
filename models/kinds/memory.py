"""The `memory` kind: what a model remembers beyond the tokens in front of it, `forward(h, run_blocks) -> h`.

A memory wraps the whole trunk: it calls `run_blocks(h, prefix_fn)` and may hand every layer extra key/value slots.
The harness gives it stand-in blocks (one softmax attention block, built from its own seed) that read those slots.
"""

from torch import nn

from models.components import ATTENTION, MEMORY, Position
from models.config import ModelConfig
from models.kinds._base import Kind, component_checks, stand_in


class StandInBlocks(nn.Module):
    """A stand-in for `run_blocks`: one softmax attention block that reads the memory's prefix, if any."""

    def __init__(self, cfg):
        super().__init__()
        # A plain config of the same shape: the checked memory's cfg may hold its own options
        plain = ModelConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff)
        self.attn = ATTENTION.get("softmax")(plain, True)
        self.position = Position(cfg, 64)

    def run(self, h, prefix_fn=None):
        prefix = prefix_fn(0, self, h) if prefix_fn is not None else None
        return h + self.attn(h, self.position, prefix)


def build(cls, cfg, causal):
    return cls(cfg)


def run(module, x, cfg):
    blocks = stand_in(StandInBlocks, cfg).to(x.dtype).to(x.device)
    return module(x, blocks.run)


TEMPLATE = '''from dataclasses import dataclass

import torch
from torch import nn

from models.components import MEMORY, check_positive


@MEMORY.register("$name")  # select with model.memory=$name
class $Class(nn.Module):
    """n_slots learned key/value slots in every attention layer (edit `forward` for your idea).

    forward(h, run_blocks) wraps the whole trunk: run_blocks(h, prefix_fn) runs every block, and
    prefix_fn(layer_index, block, h_in) may return extra (keys, values) that every query of that layer reads,
    shaped (batch or 1, heads, slots, head_dim). Return one hidden state per input position.
    """

    needs = frozenset({"prefix"})  # the attention must accept memory slots
    segmented = False  # True if it needs model.segment_len (state carried from one segment to the next)

    @dataclass(frozen=True)
    class Options:  # set with +model.options.$name.n_slots=16; unknown keys are errors
        n_slots: int = 8

        def __post_init__(self):
            check_positive(self, "n_slots")

    def __init__(self, cfg):
        super().__init__()
        n_slots = cfg.component_options(self).n_slots
        shape = (cfg.n_layers, cfg.n_heads, n_slots, cfg.d_model // cfg.n_heads)
        self.keys = nn.Parameter(torch.randn(shape) * 0.02)
        self.values = nn.Parameter(torch.randn(shape) * 0.02)

    def forward(self, h, run_blocks):
        def prefix_fn(i, block, h_in):
            return self.keys[i : i + 1].to(h_in.dtype), self.values[i : i + 1].to(h_in.dtype)

        return run_blocks(h, prefix_fn)
'''


KIND = Kind(
    name="memory",
    load_registry=lambda: MEMORY,
    interface="cls(cfg) ; forward(h (B,T,D), run_blocks) -> (B,T,D) ; run_blocks(h, prefix_fn=None) runs every "
              "block ; declares needs, segmented",
    template=TEMPLATE,
    checks=component_checks("causal"),
    build=build,
    run=run,
    declares=("needs",),
)
