"""SwiGLU: a gated feed-forward branch, out_proj(Swish(x W) * (x V)) (Shazeer, 2020,
https://arxiv.org/abs/2002.05202). The gate multiplies two projections, so the branch computes products of
features that a single activation cannot.

The hidden width is `model.d_ff`, so at equal d_ff this branch has 1.5x the parameters of `mlp` (three matrices
instead of two); Shazeer shrinks d_ff to 2/3 to compare at equal cost, which a config can do by setting d_ff.
Biases are kept, as in `mlp`, so that the gate is the only difference (the paper omits them)."""
import torch.nn.functional as F
from torch import nn

from models.components import FFN


@FFN.register("swiglu")
class SwiGLU(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff)
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        # (Swish_1(xW) ⊗ xV) W2 (Shazeer, 2020, https://arxiv.org/abs/2002.05202)
        return self.dropout(self.out_proj(F.silu(self.gate(x)) * self.up(x)))
