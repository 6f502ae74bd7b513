"""Fixed sinusoidal positions added to the input embedding (Vaswani et al., 2017,
https://arxiv.org/abs/1706.03762, sec. 3.5): PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(same). Nothing is
learned, and the table is a buffer, not a parameter (and not saved: it is a function of its shape).

Note on scale: each entry of the table has amplitude 1 while this suite's token embeddings start at std 0.02
(GPT-2 init; Vaswani et al. instead multiply the embeddings by sqrt(d_model)), so at initialisation the position
dominates the sum."""
import math

import torch

from models.components import POSITION, Position


def sinusoid_table(length: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(length, d_model): sin on even channels, cos on odd ones, frequency 1 / base^(2i/d_model) for pair i."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(base) / d_model))
    angle = position * inv_freq  # (length, ceil(d/2))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(angle)  # (Vaswani et al., 2017, sec. 3.5, https://arxiv.org/abs/1706.03762)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


@POSITION.register("sinusoidal")
class SinusoidalPosition(Position):
    def __init__(self, cfg, max_len: int):
        super().__init__(cfg, max_len)
        self.register_buffer("table", sinusoid_table(max_len, cfg.d_model), persistent=False)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[1]
        table = self.table if t <= self.table.shape[0] else sinusoid_table(t, h.shape[-1]).to(self.table.device)
        return h + table[:t].to(h.dtype)
