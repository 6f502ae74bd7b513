"""The component kinds of the configurable transformer: one registry per kind, and the `Position` base class.

A block is a composition of named components (see `models/transformer.py`), never a forest of flags:
- `attention`: token mixing, `forward(x, position, prefix=None) -> x` with x of shape (batch, time, d_model);
  `prefix` is an optional (keys, values) pair of extra, always-visible key/value slots (memory).
- `ffn`: per-token feed-forward, `forward(x) -> x`;
- `norm`: a normaliser over the channel dimension, built as `cls(d_model)`;
- `norm_placement`: where the norm sits around a branch, `forward(x, branch, residual) -> x`;
- `residual`: how a branch's output meets the stream, `forward(stream, branch_out) -> new stream`;
- `position`: how order information enters; it may add to the embedding (`embed`), rotate queries and keys
  (`rotate`) or bias attention scores (`score_bias`). The defaults do nothing, so a variant overrides only
  what it uses.
- `memory`: what a model remembers beyond the tokens in front of it (see `models/memory/`).

Capabilities: an attention class declares what it `provides` (for example `rotate`, `score_bias`, `prefix`,
`causal`); a position or memory class declares what it `needs` from the attention. `ModelConfig` checks the two
against each other, so an impossible combination fails at validation with one line naming both options.
A branch class with `skip = True` (attention `none`, ffn `none`) removes its sublayer from the block entirely:
with no residual, a branch that returned zeros would erase the stream instead of leaving it alone.

Each kind's exact contract (its interface text, how the conformance suite builds and feeds it, its checks and its
`ablate new` template) is one object in `models/kinds/`, which imports this module (never the other way round:
the variants imported at the bottom of this file must find their registries without it).
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import Registry

ATTENTION: Registry = Registry("attention")
FFN: Registry = Registry("ffn")
NORM: Registry = Registry("norm")
PLACEMENT: Registry = Registry("norm_placement")
RESIDUAL: Registry = Registry("residual")
POSITION: Registry = Registry("position")
MEMORY: Registry = Registry("memory")
#: Initialisation schemes (`model.init`, see `models/init/`): `scheme(model, cfg)` draws the built model's weights.
#: Not in `REGISTRIES`: a scheme is a function over the whole model, not a module of a block, so the per-kind
#: machinery (`models/kinds/`: conformance harness, `ablate new` templates) does not apply to it.
INIT: Registry = Registry("init")

#: Every component registry, keyed by the ModelConfig field that selects from it.
REGISTRIES: dict[str, Registry] = {
    "attention": ATTENTION,
    "ffn": FFN,
    "norm": NORM,
    "norm_placement": PLACEMENT,
    "residual": RESIDUAL,
    "position": POSITION,
    "memory": MEMORY,
}


class Position(nn.Module):
    """Base class of positional encodings; every hook is the identity unless a variant overrides it."""

    needs: frozenset = frozenset()  # attention capabilities this encoding relies on, e.g. {"rotate"}

    def __init__(self, cfg, max_len: int):
        super().__init__()

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        """Called once on the input embedding, shape (batch, time, d_model)."""
        return h

    def rotate(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Called inside attention on queries and keys, shape (batch, heads, time, head_dim)."""
        return q, k

    def score_bias(self, t_q: int, t_k: int, device) -> torch.Tensor | None:
        """An additive bias on attention scores, broadcastable to (batch, heads, t_q, t_k), or None."""
        return None


def check_positive(options, *names: str) -> None:
    """For a component's `Options.__post_init__`: each named option must be a positive integer. A ValueError, which
    `ModelConfig` turns into one line naming the option (`model.options.<name>: ...`)."""
    for name in names:
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# The built-in variants register themselves when their files are imported; importing them here (after every name
# above exists, so their own `from models.components import ...` succeeds) means that whoever reaches a registry,
# by whatever import path, finds every built-in in it (`models/__init__` imports nothing up front).
import models.attention  # noqa: E402,F401
import models.ffn  # noqa: E402,F401
import models.memory  # noqa: E402,F401
import models.norm  # noqa: E402,F401
import models.placement  # noqa: E402,F401
import models.position  # noqa: E402,F401
import models.residual  # noqa: E402,F401
import models.init  # noqa: E402,F401
