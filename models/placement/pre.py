"""Pre-norm: normalise only the branch input, leave the residual stream untouched
(Xiong et al., 2020, https://arxiv.org/abs/2002.04745). Pre-norm stacks want a final norm before the head."""
from torch import nn

from models.components import PLACEMENT


@PLACEMENT.register("pre")
class PreNorm(nn.Module):
    wants_final_norm = True

    def __init__(self, make_norm):
        super().__init__()
        self.norm = make_norm()

    def forward(self, x, branch, residual):
        return residual(x, branch(self.norm(x)))
