"""Memory tokens: `n_tokens` learned vectors prepended to the sequence in every forward pass.

Why: a few extra positions give the model a place to store and exchange global information without touching
the attention itself, so it works with every attention variant (it needs no capability). Every position can
read the memory tokens, and the layers update them like any other token ("write"). They are dropped from the
output, which keeps exactly one hidden state per input position.

With causal attention the memory tokens come first: every sequence position can read them, but they read only
each other, so in a causal model they are a learned, input-independent prefix. With bidirectional attention they
also read the whole sequence.

Limitations: the memory tokens carry no position of their own (the input positions are added before the memory
runs); a position variant that rotates queries/keys or biases scores inside attention sees a sequence that is
`n_tokens` longer, with the memory tokens at its first positions; and a windowed attention (`local`) lets
only the first positions of a long sequence reach them.

Option: `+model.options.tokens.n_tokens=16` (default 8; `model.memory_size` before it was an option).
"""
from dataclasses import dataclass

import torch
from torch import nn

from models.components import MEMORY, check_positive


@MEMORY.register("tokens")
class MemoryTokens(nn.Module):
    needs = frozenset()

    @dataclass(frozen=True)
    class Options:
        n_tokens: int = 8  # learned memory tokens

        def __post_init__(self):
            check_positive(self, "n_tokens")

    def __init__(self, cfg):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(1, cfg.component_options(self).n_tokens, cfg.d_model) * 0.02)

    def forward(self, h, run_blocks):
        m = self.tokens.shape[1]
        # Burtsev et al., 2020, Memory Transformer, https://arxiv.org/abs/2006.11527: [mem; seq] -> layers
        out = run_blocks(torch.cat([self.tokens.expand(h.shape[0], -1, -1).to(h.dtype), h], dim=1))
        return out[:, m:]
