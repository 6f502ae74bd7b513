"""`xavier`: every Linear/Embedding weight from Glorot's uniform distribution, zero biases.

Why: the classic fan-in/fan-out rule keeps forward and backward variances equal through a layer; it is the
original Transformer's choice in common implementations (and PyTorch's `nn.MultiheadAttention`). A weight of
shape (fan_out, fan_in) is drawn from U(-a, a) with a = sqrt(6 / (fan_in + fan_out)). The fused query/key/value
projection is one (d + 2 kv_width, d) matrix and is drawn as one, as `nn.MultiheadAttention` draws its fused
in_proj_weight.
"""
from torch import nn

from models.components import INIT
from models.init._weights import draw_weights


@INIT.register("xavier")
def xavier_init(model: nn.Module, cfg) -> None:
    # Glorot & Bengio, 2010, eq. 16, https://proceedings.mlr.press/v9/glorot10a.html
    draw_weights(model, nn.init.xavier_uniform_)
