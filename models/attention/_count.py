"""How many keys each query may read: the length normaliser of the elementwise (non-softmax) variants."""

from __future__ import annotations

import torch


def visible_keys(scores: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """(t_q, 1) counts, or a scalar tensor when everything is visible. Counted per query rather than as the
    sequence length so that a causal output at position i does not depend on how long the input is."""
    if allowed is None:
        return scores.new_tensor(float(scores.shape[-1]))
    return allowed.sum(dim=-1, keepdim=True).to(scores.dtype)
