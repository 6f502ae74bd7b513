"""RMSNorm: re-scale each token by its root mean square, with a learned per-channel gain and no re-centring
(Zhang & Sennrich, 2019, https://arxiv.org/abs/1910.07467). Dropping LayerNorm's mean subtraction tests whether
re-centring matters or only the re-scaling does."""
import torch
from torch import nn

from models.components import NORM


@NORM.register("rmsnorm")
class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x / RMS(x) * g (Zhang & Sennrich, 2019, https://arxiv.org/abs/1910.07467)
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
