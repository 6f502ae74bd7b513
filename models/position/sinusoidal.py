"""Fixed sinusoidal positions added to the input embedding (Vaswani et al., 2017,
https://arxiv.org/abs/1706.03762, sec. 3.5): PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(same). Nothing is
learned; the table is a buffer, not a parameter (and not saved: it is a function of its shape).

Scale: the table is multiplied by `SCALE` = 0.02, the std of this suite's token embeddings at initialisation
under the default `model.init=normal` (`models/init/normal.py`; other schemes draw the embeddings differently).
Vaswani et al. multiply their embeddings by sqrt(d_model), which brings tokens to about unit scale, the scale of
the sinusoids; here the transformer owns the embedding, so the same token-to-position ratio is kept by scaling the
table down instead. With amplitude 1 against embeddings of std 0.02 the position would drown the tokens at
initialisation (a bidirectional model's outputs then barely move when a token changes), and the embeddings would
have to grow 50x before the tokens count.
"""
import math

import torch

from models.components import POSITION, Position

SCALE = 0.02  # the token embedding's init std; keeps Vaswani et al.'s token-to-position ratio (see above)


def sinusoid_table(length: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(length, d_model), unscaled: sin on even channels, cos on odd ones, frequency base^(-2i/d_model) for pair i."""
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
        self.register_buffer("table", SCALE * sinusoid_table(max_len, cfg.d_model), persistent=False)

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[1]
        if t <= self.table.shape[0]:
            table = self.table[:t]
        else:  # longer than max_len: the formula extends to any position
            table = SCALE * sinusoid_table(t, h.shape[-1]).to(self.table.device)
        return h + table.to(h.dtype)
