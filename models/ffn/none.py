"""No feed-forward branch: attention-only blocks, the ablation of the per-token MLP.

`skip = True` makes the block drop the sublayer entirely (see `models/components.py`): with `model.residual=none`
a branch that returned zeros would erase the stream instead of leaving it alone. The class is still constructible
so that code iterating over the registry can build it, but nothing calls it."""
from torch import nn

from models.components import FFN


@FFN.register("none")
class NoFFN(nn.Module):
    skip = True

    def __init__(self, cfg):
        super().__init__()

    def forward(self, x):
        raise RuntimeError("ffn=none has skip=True: the block removes the feed-forward sublayer and never calls it")
