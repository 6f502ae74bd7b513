"""`normal` (the default): every Linear/Embedding weight from N(0, 0.02), zero biases.

Why the default: it is what the suite has always used (GPT-2's std without its depth scaling, see `gpt2`), and
every recorded result was produced with it; `model.init=normal` reproduces them bit for bit.
"""
from torch import nn

from models.components import INIT
from models.init._weights import draw_weights

STD = 0.02


@INIT.register("normal")
def normal_init(model: nn.Module, cfg) -> None:
    draw_weights(model, lambda w: nn.init.normal_(w, std=STD))
