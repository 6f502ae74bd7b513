"""Sigmoid attention: each weight is sigmoid(score + b) on its own, with b = -log(n) for n visible keys.

Why: softmax couples all keys of a query through its normaliser; an elementwise sigmoid does not, so weights no
longer need to sum to one. The bias -log(n) keeps the total weight near one at initialisation, which Ramapuram et
al. show is what makes it train as well as softmax. n counts the keys a query may read (memory slots included), so
a causal output does not depend on the input's length. Masked keys get weight 0. Supports `causal`, `rotate`,
`score_bias` (added before the sigmoid) and `prefix`.
"""
import torch

from models.attention._base import ScoredAttention
from models.attention._count import visible_keys
from models.components import ATTENTION


@ATTENTION.register("sigmoid")
class SigmoidAttention(ScoredAttention):
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})

    def weights(self, scores, allowed):
        dtype = scores.dtype
        scores = scores.float()
        # Ramapuram et al., 2024, https://arxiv.org/abs/2409.04431: sigmoid(scores + b), b = -log(n)
        attn = torch.sigmoid(scores - visible_keys(scores, allowed).log())
        if allowed is not None:
            attn = attn.masked_fill(~allowed, 0.0)
        return attn.to(dtype)
