"""`torch`: PyTorch's own module defaults; nothing is re-initialised.

Why: it is what a plain PyTorch reference gets, and the depth results differ under it (the 32-layer stack without
norms that trains under `normal` diverges here). What that means per module: `nn.Linear` weights and biases from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with a = sqrt(5)), `nn.Embedding` from N(0, 1), norms at
gain 1 and bias 0; components that draw their own parameters (the `learned` position table's N(0, 0.02), memory
slots) keep them. (The file is not called torch.py so that it cannot shadow the torch package.)
"""
from torch import nn

from models.components import INIT


@INIT.register("torch")
def torch_init(model: nn.Module, cfg) -> None:
    return None  # every module already holds PyTorch's default initialisation from its constructor
