"""No positional information: every hook of `Position` is the identity. Without a causal mask the model is then
equivariant to permutations of its input, a bag of tokens; with one, order still leaks through the mask
(Haviv et al., 2022, https://arxiv.org/abs/2203.16634). The ablation of the position component."""
from models.components import POSITION, Position


@POSITION.register("none")
class NoPosition(Position):
    pass
