"""Squared ReLU: the `mlp` branch with its activation replaced by relu(x)^2, one of the two changes that make up
Primer (So et al., 2021, https://arxiv.org/abs/2109.08668). Everything but the activation is as in `mlp`, so the
comparison isolates the activation."""
import torch.nn.functional as F
from torch import nn

from models.components import FFN


@FFN.register("relu2")
class ReLU2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        # max(0, x)^2 (So et al., 2021, Primer, https://arxiv.org/abs/2109.08668)
        return self.dropout(self.out_proj(F.relu(self.up(x)).square()))
