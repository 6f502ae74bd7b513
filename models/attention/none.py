"""No attention: blocks without token mixing, the ablation of attention itself (each position is processed alone).

`skip = True` makes the block drop the attention sublayer entirely (see `models/components.py`): with
`model.residual=none` a branch that returned zeros would erase the stream instead of leaving it alone. It provides
nothing, so a position or memory that needs rotate/score_bias/prefix is rejected by `ModelConfig`. The class is
still constructible, so that code iterating over the registry can build it, but nothing calls it.
"""
from torch import nn

from models.attention._base import MultiHeadAttention
from models.components import ATTENTION


@ATTENTION.register("none")
class NoAttention(MultiHeadAttention):
    skip = True
    provides = frozenset()
    linear_time = True

    def __init__(self, cfg, causal: bool):
        nn.Module.__init__(self)  # deliberately no projections: the sublayer does not exist
        self.causal = causal

    def forward(self, x, position, prefix=None):
        raise RuntimeError("attention=none has skip=True: the block removes the attention sublayer and never "
                           "calls it")
