"""Post-norm, as in the original Transformer (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762):
normalise the stream after the branch has been added to it."""
from torch import nn

from models.components import PLACEMENT


@PLACEMENT.register("post")
class PostNorm(nn.Module):
    wants_final_norm = False

    def __init__(self, make_norm):
        super().__init__()
        self.norm = make_norm()

    def forward(self, x, branch, residual):
        return self.norm(residual(x, branch(x)))
