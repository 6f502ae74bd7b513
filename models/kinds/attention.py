"""The `attention` kind: token mixing, `forward(x, position, prefix=None) -> x` on (batch, time, d_model).

`position` is the model's positional encoding (it may rotate queries and keys or bias the scores); `prefix` is an
optional (keys, values) pair of extra, always-visible slots that a memory supplies. An attention class declares
what it `provides` of these (and `causal`), so that a position or memory that needs one fails at validation.
"""

from models.components import ATTENTION, Position
from models.kinds._base import Kind, component_checks


def build(cls, cfg, causal):
    return cls(cfg, causal)


def run(module, x, cfg):
    """The identity position adds nothing, so the checks see the attention alone."""
    return module(x, Position(cfg, 64))


def describe(cls) -> list[str]:
    """What positions and memories may rely on, and how the cost grows with the sequence length."""
    return ["provides " + (",".join(sorted(getattr(cls, "provides", ()))) or "nothing"),
            "O(T)" if getattr(cls, "linear_time", False) else "O(T^2)"]


TEMPLATE = '''from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.attention._base import MultiHeadAttention, visible
from models.components import ATTENTION


@ATTENTION.register("$name")  # the name you select with model.attention=$name
class $Class(MultiHeadAttention):
    """Softmax attention with a learned temperature per head (edit `mix` to try your own idea).

    The base class builds the query/key/value projections (with grouped key/value heads), applies positions
    (rotation, score biases) and memory slots, and applies the output projection; a variant only mixes.
    """

    # What this variant supports, checked against what positions and memories need (see `ablate list -v`).
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})
    linear_time = False  # True if the cost grows linearly with the sequence length

    @dataclass(frozen=True)
    class Options:  # set with +model.options.$name.init_temperature=2.0; unknown keys are errors
        init_temperature: float = 1.0

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        options = cfg.component_options(self)
        self.log_temperature = nn.Parameter(torch.full((self.n_heads, 1, 1), options.init_temperature).log())

    def mix(self, q, k, v, *, bias, n_prefix):
        """q (B, H, T, hd); k, v (B, H, n_prefix + T, hd): the first n_prefix keys are memory slots that every
        query may read. bias: None or additive scores broadcastable to (B, H, T, n_prefix + T)."""
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5 / self.log_temperature.exp()
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
        allowed = visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix, device=q.device)
        if allowed is not None:  # causal: query i reads keys j <= i (and every memory slot)
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = F.dropout(scores.softmax(dim=-1), self.dropout if self.training else 0.0)
        return weights @ v
'''


KIND = Kind(
    name="attention",
    load_registry=lambda: ATTENTION,
    interface="cls(cfg, causal) ; forward(x (B,T,D), position, prefix=None) -> (B,T,D) ; declares provides "
              "(causal, rotate, score_bias, prefix), linear_time, skip ; subclass MultiHeadAttention and "
              "implement mix(q, k, v, *, bias, n_prefix) -> (B,H,T,hd)",
    template=TEMPLATE,
    checks=component_checks("causal", "prefix"),
    build=build,
    run=run,
    declares=("provides",),
    describe=describe,
)
