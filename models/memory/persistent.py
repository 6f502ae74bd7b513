"""Persistent memory: learned key/value slots inside every attention layer.

Why: Sukhbaatar et al. (2019) show that input-independent key/value vectors that every query may attend to can
hold the kind of knowledge a feed-forward layer stores. Here they are added to the attention of each layer
(`memory_size` slots per layer and head) and passed as the attention's always-visible `prefix`, so causality is
untouched: the slots depend on no token.

The slots carry no position: rotation and score biases are applied only to the sequence keys (see
`models/attention/_base.py`). They have `n_heads` heads even under grouped-query attention.
"""
import torch
from torch import nn

from models.components import MEMORY


@MEMORY.register("persistent")
class PersistentMemory(nn.Module):
    needs = frozenset({"prefix"})

    def __init__(self, cfg):
        super().__init__()
        head_dim = cfg.d_model // cfg.n_heads
        shape = (cfg.n_layers, cfg.n_heads, cfg.memory_size, head_dim)
        # The paper's initialisation: keys ~ N(0, 1/head_dim), values ~ N(0, 1/memory_size).
        self.keys = nn.Parameter(torch.randn(shape) * head_dim ** -0.5)
        self.values = nn.Parameter(torch.randn(shape) * cfg.memory_size ** -0.5)

    def forward(self, h, run_blocks):
        def prefix_fn(i, block, h_in):
            # Sukhbaatar et al., 2019, https://arxiv.org/abs/1907.01470: persistent vectors join the keys/values
            return self.keys[i : i + 1].to(h_in.dtype), self.values[i : i + 1].to(h_in.dtype)

        return run_blocks(h, prefix_fn)
