"""ALiBi: no position in the stream; instead each head adds -slope * distance to its attention scores
(Press et al., 2022, https://arxiv.org/abs/2108.12409). Slopes form a geometric sequence per head, 2^(-8/n),
2^(-16/n), ..., 2^(-8) for n heads, so some heads look far and others near; the bias needs no table and
extrapolates to sequences longer than those trained on.

The paper's bias is causal, -slope * (i - j) for keys j <= i. A Position does not know whether the model is
causal, so this uses -slope * |i - j|: equal to the causal form wherever the causal mask lets a query look, and
the usual symmetric extension for bidirectional models.
"""
import math

import torch

from models.components import POSITION, Position


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The paper's head slopes: 2^(-8i/n) for i = 1..n when n is a power of two; otherwise those of the closest
    smaller power of two followed by every other slope of the next one (as in the authors' code)."""
    def power_of_two(n):
        # 2^(-8/n), 2^(-16/n), ..., 2^(-8) (Press et al., 2022, sec. 3, https://arxiv.org/abs/2108.12409)
        return [2 ** (-8 * i / n) for i in range(1, n + 1)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    return torch.tensor(power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest])


@POSITION.register("alibi")
class ALiBiPosition(Position):
    needs = frozenset({"score_bias"})

    def __init__(self, cfg, max_len: int):
        super().__init__(cfg, max_len)
        self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)

    def score_bias(self, t_q: int, t_k: int, device) -> torch.Tensor:
        """(heads, t_q, t_k): -slope * |i - j|, with the queries at the last t_q key positions."""
        i = torch.arange(t_k - t_q, t_k, device=device)[:, None]
        j = torch.arange(t_k, device=device)[None, :]
        distance = (i - j).abs().to(self.slopes.dtype)
        return -self.slopes.to(device)[:, None, None] * distance
