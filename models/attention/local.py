"""Local (sliding-window) attention: softmax attention in which each query reads only nearby positions.

Why: it asks how much of attention's benefit needs long range at all. A causal query reads the `window` most
recent positions, itself included; a bidirectional query reads positions j with |i - j| < window. Memory slots
(`prefix`) are always visible. The band is a mask on the full score matrix, computed by
`F.scaled_dot_product_attention`: the arithmetic is still quadratic in length (`linear_time = False`), the
ablation is about what the model can see, not about speed. Supports `causal`, `rotate`, `score_bias`, `prefix`.
Option: `+model.options.local.window=4` (default 16; `model.window` before it was an option).
"""
from dataclasses import dataclass

import torch.nn.functional as F

from models.attention._base import MultiHeadAttention, softmax_weights, visible
from models.components import ATTENTION, check_positive


@ATTENTION.register("local")
class LocalAttention(MultiHeadAttention):
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})

    @dataclass(frozen=True)
    class Options:
        window: int = 16  # how many recent positions a causal query reads, itself included

        def __post_init__(self):
            check_positive(self, "window")

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        self.window = cfg.component_options(self).window

    def mix(self, q, k, v, *, bias, n_prefix):
        # Beltagy et al., 2020, https://arxiv.org/abs/2004.05150 (Longformer): a sliding window of width `window`
        allowed = visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix, window=self.window,
                          device=q.device)
        mask = q.new_zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
        bias = mask if bias is None else bias + mask
        dropout = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)

    def mixing_weights(self, q, k, *, bias, n_prefix):
        return softmax_weights(q, k, bias, visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix,
                                                   window=self.window, device=q.device))
