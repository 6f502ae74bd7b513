"""Memorizing Transformer: an external memory of past keys and values, read by exact k-nearest-neighbour lookup.

Why: attention over a long past is quadratic; storing the past keys/values and letting each query read only its
top-k matches gives a large, non-differentiable memory at the cost of a lookup, and a learned per-head gate lets
each head decide how much to trust it (Wu et al., 2022).

The input is split into segments of `segment_len` positions, processed in order. In every layer with attention:
- the local attention runs unchanged on the segment (following the model's causality);
- each query also retrieves its exact top-k (k = `top_k`) keys among the stored keys of earlier segments by
  dot product and attends over those k alone (softmax with the attention's 1/sqrt(head_dim) scale);
- per head, the two results are mixed as `g * memory + (1 - g) * local` with `g = sigmoid(gate)` a learned scalar
  (initially 0.5), before the attention's output projection;
- afterwards the segment's keys and values are appended to the layer's memory, detached (no gradient flows into
  the past), keeping the most recent `kept_segments * segment_len` positions.
This is implemented per query, as in the paper, not through the shared `prefix` (which would give every query the
same slots): a forward hook on `block.attn.qkv` records the queries/keys/values, and a forward pre-hook on
`block.attn.out_proj` replaces the per-head local output by the gated mix. It therefore needs no attention
capability, only the projections every `MultiHeadAttention` has.

Differences from the paper: every attention layer gets a memory (the paper uses one layer near the top); lookup
is brute force over the stored keys (the paper uses approximate search at scale); keys and queries are
not normalised; stored and retrieved keys carry no position (queries/keys are taken before any rotation, and no
score bias applies to them). The memory is reset at every forward call (no memory across batches). In the first
segment the memory is empty and the layer is plain local attention, so the gates get gradient only from inputs
longer than one segment.

Options: `+model.options.knn.top_k=4` and `+model.options.knn.kept_segments=16` (default 8 each; both were
`model.memory_size` before they were options).
"""
from dataclasses import dataclass

import torch
from torch import nn

from models.components import MEMORY, check_positive


def retrieve(q, keys, values, k: int):
    """q (b, h, t, hd), keys and values (b, h, n, hd) -> (b, h, t, hd): each query attends over its exact top-k keys."""
    scores = (q @ keys.transpose(-2, -1)) * q.shape[-1] ** -0.5
    top, index = scores.topk(min(k, keys.shape[2]), dim=-1)
    weights = torch.full_like(scores, float("-inf")).scatter(-1, index, top).softmax(dim=-1)
    return weights @ values


@MEMORY.register("knn")
class KNNMemory(nn.Module):
    needs = frozenset()
    segmented = True

    @dataclass(frozen=True)
    class Options:
        top_k: int = 8  # stored keys each query retrieves
        kept_segments: int = 8  # how many past segments the memory keeps

        def __post_init__(self):
            check_positive(self, "top_k", "kept_segments")

    def __init__(self, cfg):
        super().__init__()
        options = cfg.component_options(self)
        self.segment_len, self.k = cfg.segment_len, options.top_k
        self.capacity = options.kept_segments * cfg.segment_len
        self.gate = nn.Parameter(torch.zeros(cfg.n_layers, cfg.n_heads))  # sigmoid(0) = 0.5: equal mix at start

    def forward(self, h, run_blocks):
        memory: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> keys, values (b, kv_heads, n, hd)
        projected: dict[int, torch.Tensor] = {}  # layer -> this segment's fused q/k/v projection
        handles, hooked = [], set()

        def record(i):
            def hook(_module, _args, output):
                projected[i] = output
            return hook

        def mix(i, attn):
            def hook(_module, args):
                y = args[0]
                b, t, _ = y.shape
                q, k, v = projected.pop(i).split(attn.split, dim=-1)
                q = q.view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
                k = k.view(b, t, attn.kv_heads, attn.head_dim).transpose(1, 2).detach()
                v = v.view(b, t, attn.kv_heads, attn.head_dim).transpose(1, 2).detach()
                result = None
                if i in memory:
                    keys, values = memory[i]
                    group = attn.n_heads // attn.kv_heads  # stored with kv_heads heads; each serves a group
                    local = y.view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
                    g = torch.sigmoid(self.gate[i]).to(y.dtype)[:, None, None]
                    # Wu et al., 2022, https://arxiv.org/abs/2203.08913: exact top-k retrieval, gated with local
                    read = retrieve(q, keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1),
                                    self.k)
                    result = ((g * read + (1 - g) * local).transpose(1, 2).reshape(b, t, -1),)
                    k, v = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
                memory[i] = k[:, :, -self.capacity :], v[:, :, -self.capacity :]
                return result
            return hook

        def prefix_fn(i, block, h_in):  # used only to reach each block once, before it runs
            if block.attn is not None and i not in hooked:
                hooked.add(i)
                handles.append(block.attn.qkv.register_forward_hook(record(i)))
                handles.append(block.attn.out_proj.register_forward_pre_hook(mix(i, block.attn)))
            return None

        try:
            return torch.cat([run_blocks(segment, prefix_fn) for segment in h.split(self.segment_len, dim=1)], dim=1)
        finally:
            for handle in handles:
                handle.remove()
