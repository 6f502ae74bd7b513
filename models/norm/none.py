"""No normalisation at all: the ablation of the norm (the placement still decides where it would sit)."""
from torch import nn

from models.components import NORM


@NORM.register("none")
class NoNorm(nn.Identity):
    def __init__(self, d_model: int):
        super().__init__()
