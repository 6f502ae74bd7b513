"""Transformer-XL segment recurrence: each layer also attends to the cached states of earlier segments.

Why: caching the previous segments' hidden states (without gradient) extends the context of every layer beyond
the segment at the cost of a cache, and the reach grows with depth: layer l's cache was itself computed with a
cache, so information travels up to about `n_layers * cache_len` positions back.

The input is split into segments of `segment_len` positions, processed in order. For each layer the cache holds
the last `cache_len` positions of the *attention input* of earlier segments (the stream after the norm for a
pre-norm block, captured with a forward pre-hook on `block.attn`), detached. The layer turns it into keys and
values with its own current key/value projection, and they are given to the attention as always-visible
`prefix` slots. Within a segment attention follows the model's causality; earlier segments are always in the past.
With causal attention and `cache_len` >= the sequence length the result equals running the whole sequence
at once (tested).

Limitations:
- Transformer-XL's relative position scheme is not reproduced. Absolute (added) positions are added to the
  whole input before segmentation, so cached states keep their true positions; but queries and keys rotated
  inside attention (rope-like variants) restart at position 0 in every segment, and cached keys are not
  rotated at all, nor do they receive a score bias: the cache is position-free for such variants.
- The cached positions are always visible: a windowed attention (`local`) limits only the segment's own keys.
- The cache is reset at every forward call (no memory across batches), and cached keys/values get no gradient
  with respect to the states that produced them (the projection weights still get one).

Option: `+model.options.xl.cache_len=16` (default 8; `model.memory_size` before it was an option).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.components import MEMORY, check_positive


@MEMORY.register("xl")
class TransformerXLMemory(nn.Module):
    needs = frozenset({"prefix"})
    segmented = True

    @dataclass(frozen=True)
    class Options:
        cache_len: int = 8  # cached positions per layer

        def __post_init__(self):
            check_positive(self, "cache_len")

    def __init__(self, cfg):
        super().__init__()
        self.segment_len, self.size = cfg.segment_len, cfg.component_options(self).cache_len

    @staticmethod
    def keys_values(attn, x):
        """The attention's own key/value projection of x (batch, n, d_model) -> two (batch, n_heads, n, head_dim)."""
        d, kv = attn.split[0], attn.split[1]
        kv_out = F.linear(x, attn.qkv.weight[d:], None if attn.qkv.bias is None else attn.qkv.bias[d:])
        k, v = kv_out.split(kv, dim=-1)
        b, n = x.shape[:2]
        k = k.view(b, n, attn.kv_heads, attn.head_dim).transpose(1, 2)
        v = v.view(b, n, attn.kv_heads, attn.head_dim).transpose(1, 2)
        if attn.kv_heads != attn.n_heads:  # the prefix must have n_heads heads
            k = k.repeat_interleave(attn.n_heads // attn.kv_heads, dim=1)
            v = v.repeat_interleave(attn.n_heads // attn.kv_heads, dim=1)
        return k, v

    def forward(self, h, run_blocks):
        cache: dict[int, torch.Tensor] = {}  # layer -> (batch, <= cache_len, d_model), detached
        handles = {}

        def capture(i):
            def hook(_module, args):
                x = args[0].detach()
                cache[i] = torch.cat([cache[i], x], dim=1)[:, -self.size :] if i in cache else x[:, -self.size :]
            return hook

        def prefix_fn(i, block, h_in):
            if block.attn is None:
                return None
            prefix = self.keys_values(block.attn, cache[i]) if i in cache else None
            if i not in handles:  # records this segment's attention input after the prefix above was taken
                handles[i] = block.attn.register_forward_pre_hook(capture(i))
            # Dai et al., 2019, https://arxiv.org/abs/1901.02860: keys/values over [SG(cached states); segment]
            return prefix

        try:
            return torch.cat([run_blocks(segment, prefix_fn) for segment in h.split(self.segment_len, dim=1)], dim=1)
        finally:
            for handle in handles.values():
                handle.remove()
