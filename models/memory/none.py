"""No memory: the model sees only the tokens of its input."""
from torch import nn

from models.components import MEMORY


@MEMORY.register("none")
class NoMemory(nn.Module):
    needs = frozenset()

    def __init__(self, cfg):
        super().__init__()

    def forward(self, h, run_blocks):
        return run_blocks(h)
