"""LayerScale: stream + g * branch with a learned per-channel gate g, i.e. a diagonal matrix on each branch's
output (Touvron et al., 2021, CaiT, https://arxiv.org/abs/2103.17239).

Design (registered as `gated`): the gate is a plain per-channel scale, not a sigmoid and not input-dependent (it
is not a highway gate); it is initialised small, with CaiT's depth rule eps = 0.1 for up to 18 layers, 1e-5 up
to 24 and 1e-6 beyond, so that each block starts close to the identity map while every channel can grow its own
branch weight. Against `rezero` (one scalar at 0) it ablates per-channel freedom; against `scaled` (a fixed
number) it ablates learning the multiplier.
"""
import torch
from torch import nn

from models.components import RESIDUAL


def layerscale_init(n_layers: int) -> float:
    """CaiT's initial gate value by depth (Touvron et al., 2021, https://arxiv.org/abs/2103.17239)."""
    if n_layers <= 18:
        return 0.1
    if n_layers <= 24:
        return 1e-5
    return 1e-6


@RESIDUAL.register("gated")
class GatedResidual(nn.Module):
    def __init__(self, cfg, layer_index: int):
        super().__init__()
        self.gate = nn.Parameter(torch.full((cfg.d_model,), layerscale_init(cfg.n_layers)))

    def forward(self, stream, branch_out):
        # x + diag(g) F(x) (LayerScale, https://arxiv.org/abs/2103.17239)
        return stream + self.gate * branch_out
