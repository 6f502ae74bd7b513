"""Recurrent Memory Transformer (RMT): memory tokens carried from one segment to the next.

Why: a fixed-size memory passed between segments lets a model with a bounded attention span read arbitrarily far
back, and, because the memory state is the output of the previous segment's forward pass, gradients flow through
all segments (backpropagation through time), so the model learns what to write.

The input is split into segments of `segment_len` positions, processed in order. Each segment is run as
`[memory (read); segment; memory (write)]` (RMT's decoder layout): the read copy comes first so every segment
position can read it even under causal attention; the write copy comes last so that, under causal attention, it
sees the whole segment. The last layer's hidden states at the write positions become the memory of the next
segment. Under bidirectional attention the read and write copies see the same tokens (they hold the same
values), so the layout is the same. The memory of the first segment is learned. Within a segment attention
follows the model's causality; earlier segments are always in the past, so no output depends on a later segment.

Limitations: the state is reset at every forward call (no memory across batches); memory tokens carry no
position, and a position variant that rotates or biases inside attention restarts at every segment and counts
the read tokens as the first positions; with a windowed attention (`local`) narrower than the segment plus the
memory, late positions cannot reach the read tokens and the write tokens see only the end of the segment.

Option: `+model.options.recurrent.n_tokens=16`, the memory's size in tokens (default 8; `model.memory_size` before
it was an option).
"""
from dataclasses import dataclass

import torch
from torch import nn

from models.components import MEMORY, check_positive


@MEMORY.register("recurrent")
class RecurrentMemory(nn.Module):
    needs = frozenset()
    segmented = True

    @dataclass(frozen=True)
    class Options:
        n_tokens: int = 8  # memory tokens read and written by every segment

        def __post_init__(self):
            check_positive(self, "n_tokens")

    def __init__(self, cfg):
        super().__init__()
        self.segment_len = cfg.segment_len
        self.initial = nn.Parameter(torch.randn(1, cfg.component_options(self).n_tokens, cfg.d_model) * 0.02)

    def forward(self, h, run_blocks):
        m = self.initial.shape[1]
        memory = self.initial.expand(h.shape[0], -1, -1).to(h.dtype)
        outputs = []
        for segment in h.split(self.segment_len, dim=1):
            t = segment.shape[1]
            out = run_blocks(torch.cat([memory, segment, memory], dim=1))
            outputs.append(out[:, m : m + t])
            # Bulatov et al., 2022, https://arxiv.org/abs/2207.06881: write-token outputs are the next memory (BPTT)
            memory = out[:, m + t :]
        return torch.cat(outputs, dim=1)
