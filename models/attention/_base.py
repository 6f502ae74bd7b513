"""What every attention variant shares: the projections, grouped key/value heads, positions and memory slots.

A variant subclasses `MultiHeadAttention` and implements `mix(q, k, v, ...)`, the part that differs between
papers. Queries have `n_heads` heads; keys and values have `kv_heads` heads, each shared by
`n_heads // kv_heads` query heads: multi-query attention when `kv_heads=1` (Shazeer, 2019,
https://arxiv.org/abs/1911.02150), grouped-query attention in between (Ainslie et al., 2023,
https://arxiv.org/abs/2305.13245).
"""

from __future__ import annotations

import torch
from torch import nn


def visible(t_q: int, t_k: int, *, causal: bool, prefix: int = 0, window: int = 0, device=None):
    """Boolean (t_q, t_k) mask, True where query i may read key j, or None when everything is visible.

    The last `t_k - prefix` keys belong to the same positions as the queries; the first `prefix` keys are memory
    slots that every query may read. `causal`: query i reads sequence key j only if j <= i. `window`: only the
    `window` most recent sequence positions (itself included).
    """
    if not causal and not window:
        return None
    i = torch.arange(t_q, device=device)[:, None]
    j = torch.arange(t_k, device=device)[None, :] - prefix  # sequence position of each key; < 0 for memory
    allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=device)
    if causal:
        allowed &= j <= i
    if window:
        allowed &= (i - j < window) & (j - i < window)
    return allowed | (j < 0)


class MultiHeadAttention(nn.Module):
    """Projections and bookkeeping; `mix` is the variant."""

    #: capabilities this variant offers to positions and memories (see models/components.py)
    provides: frozenset = frozenset({"causal", "rotate", "score_bias", "prefix"})
    #: whether the cost grows linearly with sequence length (`ablate list` shows O(T) or O(T^2))
    linear_time: bool = False

    def __init__(self, cfg, causal: bool):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.kv_heads = cfg.kv_heads or cfg.n_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.causal = causal
        self.dropout = cfg.dropout
        kv_width = self.kv_heads * self.head_dim
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * kv_width)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.split = (cfg.d_model, kv_width, kv_width)

    def forward(self, x: torch.Tensor, position, prefix=None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v, bias, n_prefix = self.heads(x, position, prefix)
        y = self.head_outputs(self.mix(q, k, v, bias=bias, n_prefix=n_prefix), x)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))

    def head_outputs(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Each head's output y (b, h, t, hd) just before the output projection, given the block input x (b, t, d).
        The identity here; a variant that acts on head outputs (a gate, a per-head norm) overrides it."""
        return y

    def heads(self, x: torch.Tensor, position, prefix=None):
        """Queries (b, h, t, hd), keys and values (b, h, n_prefix + t, hd) with positions applied and key/value
        heads repeated for their query groups, the additive score bias (or None) and the number of memory slots."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(self.split, dim=-1)
        q = q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = position.rotate(q, k)
        if self.kv_heads != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.kv_heads, dim=1)
        n_prefix = 0
        if prefix is not None:  # memory slots: (batch or 1, heads, slots, head_dim) keys and values
            pk, pv = prefix
            n_prefix = pk.shape[2]
            k = torch.cat([pk.expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(b, -1, -1, -1), v], dim=2)
        bias = position.score_bias(t, t, x.device)
        if bias is not None and n_prefix:  # memory slots carry no position: no bias towards them
            bias = torch.cat([bias.new_zeros(*bias.shape[:-1], n_prefix), bias], dim=-1)
        return q, k, v, bias, n_prefix

    def mix(self, q, k, v, *, bias, n_prefix: int) -> torch.Tensor:
        """q (b, h, t, hd), k and v (b, h, n_prefix + t, hd) -> (b, h, t, hd)."""
        raise NotImplementedError  # each registered variant implements its own mixing rule

    def mixing_weights(self, q, k, *, bias, n_prefix: int) -> torch.Tensor | None:
        """The (b, h, t, n_prefix + t) attention weights `mix` applies to the values, for diagnostics (attention
        entropy); None for variants that never form them (kernelised linear attention)."""
        return None

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, position, prefix=None) -> torch.Tensor | None:
        """The attention weights of input x (b, t, d), recomputed outside the fused kernel (slow; diagnostics)."""
        q, k, _, bias, n_prefix = self.heads(x, position, prefix)
        return self.mixing_weights(q, k, bias=bias, n_prefix=n_prefix)


def softmax_weights(q, k, bias, allowed) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) over the allowed keys: what the SDPA kernel computes without showing."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1)


class ScoredAttention(MultiHeadAttention):
    """Attention that forms the full score matrix and normalises it with `weights(scores, allowed)`.

    For variants whose normaliser is not softmax (sigmoid, ReLU, cosine with temperature): they cannot use the
    fused SDPA kernel, so the quadratic form is written out once here.
    """

    def scale(self) -> torch.Tensor | float:
        return self.head_dim ** -0.5

    def prepare(self, q, k):
        return q, k

    def weights(self, scores: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError  # each registered variant implements its own normaliser

    def mixing_weights(self, q, k, *, bias, n_prefix):
        q, k = self.prepare(q, k)
        scores = (q @ k.transpose(-2, -1)) * self.scale()
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
        allowed = visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix,
                          window=getattr(self, "window", 0), device=q.device)
        return self.weights(scores, allowed)

    def mix(self, q, k, v, *, bias, n_prefix):
        attn = self.mixing_weights(q, k, bias=bias, n_prefix=n_prefix)
        if self.training and self.dropout:
            attn = nn.functional.dropout(attn, self.dropout)
        return attn @ v
