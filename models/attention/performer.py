"""Performer (FAVOR+): softmax attention approximated by positive orthogonal random features, in linear time.

Why: unlike `linear`, which swaps softmax for a different kernel, FAVOR+ estimates the softmax kernel itself,
exp(q.k / sqrt(d)) = E_w[phi(q) phi(k)] with phi(x) = exp(w.x - |x|^2 / 2), w ~ N(0, I), and the estimate
becomes exact as the number of features grows; it then reuses the O(T) sums of linear attention. The ablation
asks how much of softmax attention a cheap unbiased estimate keeps, at `n_features` random features per head
(`+model.options.performer.n_features=128`; default 64, `model.n_features` before it was an option).

The projection is drawn once, at construction, from a private generator seeded by one draw from torch's global
generator (so a run's seed fixes it, like the weights) and kept as a buffer (saved with the model); it is never
redrawn and is shared by the heads of a layer, as in the paper. Numerics: each query's features are divided by
their largest value, a per-query constant that cancels between numerator and denominator. Key features are not
stabilised by the maximum over keys (the paper's choice), because in a causal model that maximum would depend on
future tokens; exp(w.k - |k|^2/2) is 1 at k = 0 and overflows only for |k| near |w| ~ sqrt(head_dim), i.e. score
magnitudes where the random-feature estimate is useless anyway. Supports `causal`, `rotate`, `prefix` (an
initial state, exact); not `score_bias`.
"""
import math
from dataclasses import dataclass

import torch

from models.attention._base import MultiHeadAttention
from models.attention._kernel import kernel_mix, no_score_bias
from models.components import ATTENTION, check_positive


def orthogonal_gaussian(n_features: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(n_features, dim) rows, orthogonal within each block of `dim`, each marginally N(0, I)."""
    blocks = []
    for _ in range(math.ceil(n_features / dim)):
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # sign fix: Haar-distributed directions
    directions = torch.cat(blocks)[:n_features]
    # lengths of independent Gaussian vectors, so that every row is distributed as N(0, I)
    lengths = torch.randn(n_features, dim, generator=generator).norm(dim=1, keepdim=True)
    return directions * lengths


@ATTENTION.register("performer")
class PerformerAttention(MultiHeadAttention):
    provides = frozenset({"causal", "rotate", "prefix"})
    linear_time = True
    eps = 1e-6

    @dataclass(frozen=True)
    class Options:
        n_features: int = 64  # random features per head: the estimate's variance falls as 1 / n_features

        def __post_init__(self):
            check_positive(self, "n_features")

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        seed = int(torch.randint(0, 2**62, ()).item())
        generator = torch.Generator().manual_seed(seed)
        n_features = cfg.component_options(self).n_features
        self.register_buffer("projection", orthogonal_gaussian(n_features, self.head_dim, generator))

    def features(self, x: torch.Tensor, query: bool) -> torch.Tensor:
        x = x.float() * self.head_dim ** -0.25  # so that phi(q).phi(k) estimates exp(q.k / sqrt(head_dim))
        # Choromanski et al., 2021, https://arxiv.org/abs/2009.14794, Lemma 1: positive random features
        logits = x @ self.projection.float().T - (x * x).sum(dim=-1, keepdim=True) / 2
        if query:
            logits = logits - logits.amax(dim=-1, keepdim=True).detach()
        return logits.exp()

    def mix(self, q, k, v, *, bias, n_prefix):
        no_score_bias("performer", bias)
        return kernel_mix(self.features(q, True), self.features(k, False), v, causal=self.causal,
                          n_prefix=n_prefix, eps=self.eps)
