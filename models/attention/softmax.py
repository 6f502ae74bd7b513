"""Multi-head scaled dot-product softmax attention (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762),
computed by `F.scaled_dot_product_attention` so that PyTorch picks its fastest kernel."""
import torch.nn.functional as F

from models.attention._base import MultiHeadAttention, softmax_weights, visible
from models.components import ATTENTION


@ATTENTION.register("softmax")
class SoftmaxAttention(MultiHeadAttention):
    def mix(self, q, k, v, *, bias, n_prefix):
        dropout = self.dropout if self.training else 0.0
        if bias is None and not n_prefix:  # the fast path: the kernel applies the causal mask itself
            return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=dropout)
        allowed = visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix, device=q.device)
        if allowed is not None:
            mask = q.new_zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
            bias = mask if bias is None else bias + mask
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)

    def mixing_weights(self, q, k, *, bias, n_prefix):
        return softmax_weights(q, k, bias, visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix,
                                                   device=q.device))
