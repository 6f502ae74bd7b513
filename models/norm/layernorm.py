"""LayerNorm: re-centre and re-scale each token's features (Ba et al., 2016, https://arxiv.org/abs/1607.06450)."""
from torch import nn

from models.components import NORM


@NORM.register("layernorm")
class LayerNorm(nn.LayerNorm):
    def __init__(self, d_model: int):
        super().__init__(d_model)
