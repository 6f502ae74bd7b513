"""A short causal depthwise convolution on the attention branch's input (`model.short_conv=K`).

Why: attention finds a token's neighbours only by position arithmetic; a width-K convolution hands each position
a learned, per-channel mix of itself and its K-1 predecessors for free, which local patterns (n-grams, induction's
previous-token step) need. These are Canon layers at position A (Allen-Zhu, 2025, Physics of Language Models
part 4.1: after the block's input norm, before attention, with a residual and without bias or activation, as its
recommended setting), and the short convolution Zoology gives every architecture "for fair comparison" (Arora et
al., 2023, https://arxiv.org/abs/2312.04927).

Causal always, also in a bidirectional model: the output at t reads inputs t-K+1..t (zero padding before the
start). The taps keep PyTorch's Conv1d initialisation (U(-1/sqrt(K), 1/sqrt(K)), a depthwise filter's fan-in
being K); the init schemes draw only Linear and Embedding weights. It sees what the attention sees: with memory
tokens prepended, the first positions also mix with the last memory tokens; with `segment_len` it does not reach
across a segment boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortConv(nn.Module):
    """h + causal_depthwise_conv_K(h) over the time axis of h (batch, time, d_model); d_model * K weights."""

    def __init__(self, d_model: int, width: int):
        super().__init__()
        self.width = width
        self.conv = nn.Conv1d(d_model, d_model, width, groups=d_model, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # left padding by K-1 makes output t read inputs t-K+1..t only: causal
        y = self.conv(F.pad(h.transpose(1, 2), (self.width - 1, 0)))
        # h'_t = h_t + sum_i w_i h_{t-i}: Canon-A with its residual (Allen-Zhu, 2025, https://arxiv.org/abs/2512.17351)
        return h + y.transpose(1, 2)
