"""ReLU attention: each weight is relu(score) / n for n visible keys, with no softmax.

Why: the softmax's exponential and its normaliser are the costly, sequential parts of attention; Wortsman et al.
find that relu divided by the sequence length matches softmax in vision transformers. n counts the keys a query
may read (memory slots included) rather than the sequence length, so a causal output does not depend on how long
the input is. Masked keys get weight 0. Supports `causal`, `rotate`, `score_bias` (added before the relu) and
`prefix`.
"""
import torch

from models.attention._base import ScoredAttention
from models.attention._count import visible_keys
from models.components import ATTENTION


@ATTENTION.register("relu")
class ReluAttention(ScoredAttention):
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})

    def weights(self, scores, allowed):
        dtype = scores.dtype
        scores = scores.float()
        # Wortsman et al., 2023, https://arxiv.org/abs/2309.08586: relu(scores) / sequence length
        attn = torch.relu(scores) / visible_keys(scores, allowed)
        if allowed is not None:
            attn = attn.masked_fill(~allowed, 0.0)
        return attn.to(dtype)
