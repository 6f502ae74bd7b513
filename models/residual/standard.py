"""The identity shortcut of ResNets (He et al., 2016, https://arxiv.org/abs/1512.03385): stream + branch."""
from torch import nn

from models.components import RESIDUAL


@RESIDUAL.register("standard")
class StandardResidual(nn.Module):
    def __init__(self, cfg, layer_index: int):
        super().__init__()

    def forward(self, stream, branch_out):
        return stream + branch_out
