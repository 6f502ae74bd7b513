"""ScaleNorm: project each token onto the sphere and scale by one learned scalar g, initialised to sqrt(d_model)
so that the output has unit RMS like LayerNorm's (Nguyen & Salazar, 2019, https://arxiv.org/abs/1910.05895).
The ablation of per-channel gains: a single number per norm instead of d_model of them."""
import math

import torch
from torch import nn

from models.components import NORM


@NORM.register("scalenorm")
class ScaleNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.tensor(math.sqrt(d_model)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # g * x / ||x|| (Nguyen & Salazar, 2019, https://arxiv.org/abs/1910.05895)
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps)
