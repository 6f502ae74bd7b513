"""Persistent memory: learned key/value slots inside every attention layer.

Why: Sukhbaatar et al. (2019) show that input-independent key/value vectors that every query may attend to can
hold the kind of knowledge a feed-forward layer stores. Here they are added to the attention of each layer
(`n_slots` slots per layer and head) and passed as the attention's always-visible `prefix`, so causality is
untouched: the slots depend on no token.

The slots carry no position: rotation and score biases are applied only to the sequence keys (see
`models/attention/_base.py`). They have `n_heads` heads even under grouped-query attention.

Option: `+model.options.persistent.n_slots=16` (default 8; `model.memory_size` before it was an option).
"""
from dataclasses import dataclass

import torch
from torch import nn

from models.components import MEMORY, check_positive


@MEMORY.register("persistent")
class PersistentMemory(nn.Module):
    needs = frozenset({"prefix"})

    @dataclass(frozen=True)
    class Options:
        n_slots: int = 8  # key/value slots per layer and head

        def __post_init__(self):
            check_positive(self, "n_slots")

    def __init__(self, cfg):
        super().__init__()
        head_dim = cfg.d_model // cfg.n_heads
        n_slots = cfg.component_options(self).n_slots
        shape = (cfg.n_layers, cfg.n_heads, n_slots, head_dim)
        # The paper's initialisation: keys ~ N(0, 1/head_dim), values ~ N(0, 1/n_slots).
        self.keys = nn.Parameter(torch.randn(shape) * head_dim ** -0.5)
        self.values = nn.Parameter(torch.randn(shape) * n_slots ** -0.5)

    def forward(self, h, run_blocks):
        def prefix_fn(i, block, h_in):
            # Sukhbaatar et al., 2019, https://arxiv.org/abs/1907.01470: persistent vectors join the keys/values
            return self.keys[i : i + 1].to(h_in.dtype), self.values[i : i + 1].to(h_in.dtype)

        return run_blocks(h, prefix_fn)
