"""A learned absolute position embedding added to the input (as in GPT-2 and BERT)."""
import torch
from torch import nn

from models.components import POSITION, Position


@POSITION.register("learned")
class LearnedPosition(Position):
    def __init__(self, cfg, max_len: int):
        super().__init__(cfg, max_len)
        self.table = nn.Embedding(max_len, cfg.d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.table.weight[: h.shape[1]]
