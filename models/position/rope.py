"""Rotary position embedding, RoPE (Su et al., 2021, RoFormer, https://arxiv.org/abs/2104.09864): rotate each
pair of query/key channels by an angle proportional to the position, p * base^(-2i/head_dim). A rotation keeps
norms, and the dot product of a query rotated by p and a key rotated by p' depends only on p - p', so attention
scores see relative positions although each vector is rotated by its absolute one. Nothing is added to the stream.

Channels are paired as (i, i + head_dim/2) ("rotate half", as in GPT-NeoX) rather than (2i, 2i+1) as in the
paper: the same rotations on a fixed permutation of the channels, which the projections absorb.
cos/sin are cached as buffers up to `max_len` and recomputed for a longer input.
"""
import torch

from models.components import POSITION, Position
from models.errors import ConfigError


def rope_angles(length: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """(length, head_dim / 2): angle p * theta_i with theta_i = base^(-2i/head_dim)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    return torch.arange(length, dtype=torch.float32)[:, None] * inv_freq


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


@POSITION.register("rope")
class RotaryPosition(Position):
    needs = frozenset({"rotate"})

    def __init__(self, cfg, max_len: int):
        super().__init__(cfg, max_len)
        self.head_dim = cfg.d_model // cfg.n_heads
        if self.head_dim % 2:
            raise ConfigError(f"model.position=rope rotates pairs of channels and needs an even head width, got "
                              f"d_model / n_heads = {cfg.d_model} / {cfg.n_heads} = {self.head_dim}")
        angles = torch.cat([rope_angles(max_len, self.head_dim)] * 2, dim=-1)  # (max_len, head_dim)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def _cos_sin(self, length: int):
        if length <= self.cos.shape[0]:
            return self.cos[:length], self.sin[:length]
        angles = torch.cat([rope_angles(length, self.head_dim)] * 2, dim=-1).to(self.cos.device)
        return angles.cos(), angles.sin()

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_q, t_k = q.shape[-2], k.shape[-2]
        cos, sin = self._cos_sin(t_k)
        # queries are the last t_q positions of the keys (equal lengths in this suite's attention)
        cq, sq = cos[t_k - t_q:].to(q.dtype), sin[t_k - t_q:].to(q.dtype)
        ck, sk = cos.to(k.dtype), sin.to(k.dtype)
        # x * cos(p theta) + rot90(x) * sin(p theta) (Su et al., 2021, https://arxiv.org/abs/2104.09864)
        return q * cq + _rotate_half(q) * sq, k * ck + _rotate_half(k) * sk
