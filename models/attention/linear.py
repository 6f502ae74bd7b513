"""Linear attention: softmax(q.k) replaced by the kernel phi(q).phi(k) with phi(x) = elu(x) + 1.

Why: with a kernel that factorises, the sum over keys can be reordered so that each query reads a running
(feature x value) state instead of every key, so time and memory grow linearly with sequence length and a causal
model becomes an RNN (computed chunk-wise, in O(T) time and memory: see _kernel.py). The ablation asks what the
exponential (and its sharpness) of softmax is worth.
Supports `causal`, `prefix` memory slots (an initial state, exact) and `rotate` (positions rotate q and k before
the feature map). It does not support `score_bias`: no score matrix is formed.
"""
import torch.nn.functional as F

from models.attention._base import MultiHeadAttention
from models.attention._kernel import kernel_mix, no_score_bias
from models.components import ATTENTION


@ATTENTION.register("linear")
class LinearAttention(MultiHeadAttention):
    provides = frozenset({"causal", "rotate", "prefix"})
    linear_time = True
    eps = 1e-6

    @staticmethod
    def feature_map(x):
        return F.elu(x.float()) + 1  # Katharopoulos et al., 2020, https://arxiv.org/abs/2006.16236, Eq. 7

    def mix(self, q, k, v, *, bias, n_prefix):
        no_score_bias("linear", bias)
        return kernel_mix(self.feature_map(q), self.feature_map(k), v, causal=self.causal, n_prefix=n_prefix,
                          eps=self.eps)
