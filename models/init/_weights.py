"""What every weight-drawing scheme shares: which tensors it draws.

A scheme draws the weight of every `nn.Linear` and `nn.Embedding` of the model (the token embedding or input
projection, a learned position table, every projection of every branch, the head) and zeroes every Linear bias.
Other parameters (norm gains, residual gates, memory slots, short-convolution taps, a class token) keep what their
component chose when it was built, so that a scheme is comparable across components. The walk is `model.apply`
(children before parents, in registration order), the order the suite has always drawn in, which keeps the
random stream, and so `model.init=normal`, bit-identical to the code before schemes existed.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def draw_weights(model: nn.Module, fill: Callable[[torch.Tensor], object]) -> None:
    """`fill(weight)` on every Linear and Embedding weight, zeros on every Linear bias."""

    def visit(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            fill(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    model.apply(visit)
