"""The shared core of kernelised (linear-time) attention: out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j).

Why one helper: `linear` (elu + 1 features) and `performer` (positive random features) differ only in the feature
map phi; the O(T) way to sum over keys is the same (Katharopoulos et al., 2020, https://arxiv.org/abs/2006.16236,
Sec. 3.2). Memory slots (the `prefix` keys) are visible to every query, so they enter as an initial state that is
added to every position's sums, which is exact. Everything is accumulated in float32 whatever the input dtype.
There is no attention matrix, so attention-weight dropout does not apply to these variants (the block's dropout on
the branch output still does).
"""

from __future__ import annotations

import torch


def kernel_mix(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool, n_prefix: int,
               eps: float) -> torch.Tensor:
    """phi_q (b, h, t, f), phi_k (b, h, n_prefix + t, f) non-negative features, v (b, h, n_prefix + t, e)
    -> (b, h, t, e) in v's dtype."""
    dtype = v.dtype
    phi_q, phi_k, v = phi_q.float(), phi_k.float(), v.float()
    if not causal:  # every query reads every key: one (f, e) state and one (f,) normaliser per head
        state = torch.einsum("bhsf,bhse->bhfe", phi_k, v)
        num = torch.einsum("bhtf,bhfe->bhte", phi_q, state)
        den = torch.einsum("bhtf,bhf->bht", phi_q, phi_k.sum(dim=2))
    else:
        seq_k, seq_v = phi_k[:, :, n_prefix:], v[:, :, n_prefix:]
        # running sums over time of phi(k_j) v_j^T and of phi(k_j): position i reads exactly keys j <= i, in O(T)
        state = torch.einsum("bhtf,bhte->bhtfe", seq_k, seq_v).cumsum(dim=2)
        norm = seq_k.cumsum(dim=2)
        if n_prefix:  # the memory slots: the same initial state for every position
            state = state + torch.einsum("bhsf,bhse->bhfe", phi_k[:, :, :n_prefix], v[:, :, :n_prefix])[:, :, None]
            norm = norm + phi_k[:, :, :n_prefix].sum(dim=2, keepdim=True)
        num = torch.einsum("bhtf,bhtfe->bhte", phi_q, state)
        den = (phi_q * norm).sum(dim=-1)
    return (num / (den[..., None] + eps)).to(dtype)


def no_score_bias(name: str, bias) -> None:
    """Kernelised attention never forms scores, so an additive score bias cannot be applied: refuse it loudly."""
    if bias is not None:
        raise ValueError(f"attention={name} does not provide score_bias (it never forms the score matrix); "
                         f"a position that biases scores must declare needs={{'score_bias'}}")
