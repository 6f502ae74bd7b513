"""Multi-head scaled dot-product softmax attention (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762),
computed by `F.scaled_dot_product_attention` so that PyTorch picks its fastest kernel."""
import torch
import torch.nn.functional as F
from torch import nn

from models.components import ATTENTION


@ATTENTION.register("softmax")
class SoftmaxAttention(nn.Module):
    def __init__(self, cfg, causal: bool):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.causal = causal
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, position) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = position.rotate(q, k)
        bias = position.score_bias(t, t, x.device)
        if bias is not None and self.causal:
            # SDPA refuses is_causal together with a mask: fold the causal mask into the bias instead.
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            bias = bias.masked_fill(future, float("-inf"))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, is_causal=self.causal and bias is None,
            dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))
