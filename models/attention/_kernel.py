"""The shared core of kernelised (linear-time) attention: out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j).

Why one helper: `linear` (elu + 1 features) and `performer` (positive random features) differ only in the feature
map phi; the O(T) way to sum over keys is the same (Katharopoulos et al., 2020, https://arxiv.org/abs/2006.16236,
Sec. 3.2). Memory slots (the `prefix` keys) are visible to every query, so they enter as an initial state that is
added to every position's sums, which is exact. Everything is accumulated in float32 whatever the input dtype.
There is no attention matrix, so attention-weight dropout does not apply to these variants (the block's dropout on
the branch output still does).

Causal form, chunked: a running (feature x value) state per time step, materialised for every position at once,
costs O(T.f.e) memory, which at head width 64 is 64x the activations and dominates a long sequence. Instead the
sequence is cut into chunks of `CHUNK` positions: within a chunk the kernel scores are formed as a small masked
(CHUNK x CHUNK) matrix (quadratic, but only in the chunk length), and across chunks each chunk reads the state
summed over all earlier chunks (an exclusive cumulative sum of one (f, e) state per chunk). Memory is
O(T.(CHUNK + f.e/CHUNK)) and time O(T.CHUNK.(f + e) + T.f.e): both linear in T. This is the block-parallel form of
Katharopoulos et al. (2020) used by later linear-attention kernels (e.g. Yang et al., 2024, "Gated Linear Attention",
https://arxiv.org/abs/2312.06635, Sec. 2.2). It computes the same sums as the per-step form, in another order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64  # positions per chunk of the causal form; a multiple of 8 keeps the small matmuls aligned


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
        num, den = _causal_chunked(phi_q, phi_k[:, :, n_prefix:], v[:, :, n_prefix:], CHUNK)
        if n_prefix:  # the memory slots: the same initial state for every position (exact)
            state = torch.einsum("bhsf,bhse->bhfe", phi_k[:, :, :n_prefix], v[:, :, :n_prefix])
            num = num + torch.einsum("bhtf,bhfe->bhte", phi_q, state)
            den = den + torch.einsum("bhtf,bhf->bht", phi_q, phi_k[:, :, :n_prefix].sum(dim=2))
    return (num / (den[..., None] + eps)).to(dtype)


def _causal_chunked(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, chunk: int):
    """Numerator (b, h, t, e) and denominator (b, h, t) of causal kernel attention: position i reads keys j <= i.

    The sequence is zero-padded to a multiple of `chunk` (a zero key feature adds nothing to any sum; the padded
    queries are dropped)."""
    b, h, t, f = phi_q.shape
    e = v.shape[-1]
    chunk = max(1, min(chunk, t))  # a sequence shorter than a chunk is one chunk, unpadded
    pad = -t % chunk
    if pad:
        phi_q, phi_k, v = (F.pad(x, (0, 0, 0, pad)) for x in (phi_q, phi_k, v))
    n = (t + pad) // chunk
    q, k, v = (x.reshape(b, h, n, chunk, x.shape[-1]) for x in (phi_q, phi_k, v))
    # within each chunk: the (chunk x chunk) kernel scores, lower triangle including the diagonal
    mask = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    scores = (q @ k.transpose(-2, -1)).masked_fill(~mask, 0.0)
    num = scores @ v
    den = scores.sum(dim=-1)
    if n > 1:  # across chunks: chunk c reads the state summed over chunks < c (an exclusive cumulative sum)
        state = (k.transpose(-2, -1) @ v).cumsum(dim=2)          # (b, h, n, f, e): state after each chunk
        state = F.pad(state[:, :, :-1], (0, 0, 0, 0, 1, 0))       # shifted by one chunk: the state before it
        norm = F.pad(k.sum(dim=3).cumsum(dim=2)[:, :, :-1], (0, 0, 1, 0))  # (b, h, n, f), likewise
        num = num + q @ state
        den = den + (q @ norm[..., None]).squeeze(-1)
    return num.reshape(b, h, n * chunk, e)[:, :, :t], den.reshape(b, h, n * chunk)[:, :, :t]


def no_score_bias(name: str, bias) -> None:
    """Kernelised attention never forms scores, so an additive score bias cannot be applied: refuse it loudly."""
    if bias is not None:
        raise ValueError(f"attention={name} does not provide score_bias (it never forms the score matrix); "
                         f"a position that biases scores must declare needs={{'score_bias'}}")
