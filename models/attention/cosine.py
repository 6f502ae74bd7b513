"""Cosine attention: softmax over cosine similarities of queries and keys, times a learned temperature per head.

Why: normalising q and k bounds every score, which removes the attention-logit growth that destabilises training
at scale; the learned temperature gives back the sharpness that the 1/sqrt(d) scaling of raw dot products had.
Temperature as in Swin Transformer v2 (Liu et al., 2022, https://arxiv.org/abs/2111.09883): a log-scale per head,
initialised to log(10) and capped at log(100). Supports everything softmax does: `causal`, `rotate` (rotations
preserve norms), `score_bias` (added after the temperature) and `prefix` slots (normalised like every key).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from models.attention._base import ScoredAttention
from models.components import ATTENTION


@ATTENTION.register("cosine")
class CosineAttention(ScoredAttention):
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})
    max_log_scale = math.log(100.0)

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        self.log_scale = nn.Parameter(torch.full((self.n_heads, 1, 1), math.log(10.0)))

    def prepare(self, q, k):
        # Henry et al., 2020, https://arxiv.org/abs/2010.04245 (QKNorm): unit-length queries and keys per head
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1)

    def scale(self):
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def weights(self, scores, allowed):
        dtype = scores.dtype
        scores = scores.float()
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(dim=-1).to(dtype)
