"""ReZero: stream + alpha * branch with one learned scalar alpha per residual, initialised at 0
(Bachlechner et al., 2020, https://arxiv.org/abs/2003.04887). At initialisation every block is the identity map,
whatever the branches compute, so signals and gradients pass through any depth unchanged; the paper pairs it with
no norm at all (`model.norm=none`)."""
import torch
from torch import nn

from models.components import RESIDUAL


@RESIDUAL.register("rezero")
class ReZeroResidual(nn.Module):
    def __init__(self, cfg, layer_index: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, stream, branch_out):
        return stream + self.alpha * branch_out  # x + alpha F(x), alpha = 0 at init (https://arxiv.org/abs/2003.04887)
