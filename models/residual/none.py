"""No shortcut: the block's output is exactly its branch's output (the ablation of residual pathways)."""
from torch import nn

from models.components import RESIDUAL


@RESIDUAL.register("none")
class NoResidual(nn.Module):
    def __init__(self, cfg, layer_index: int):
        super().__init__()

    def forward(self, stream, branch_out):
        return branch_out
