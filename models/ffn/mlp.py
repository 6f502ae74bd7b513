"""The position-wise feed-forward network with a GELU (Hendrycks & Gimpel, https://arxiv.org/abs/1606.08415),
as in GPT-2."""
import torch.nn.functional as F
from torch import nn

from models.components import FFN


@FFN.register("mlp")
class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.dropout(self.out_proj(F.gelu(self.up(x))))
