"""The component kinds of the configurable transformer: one registry and one small interface per kind.

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
"""

from __future__ import annotations

import dataclasses

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
#: machinery (conformance harness, `ablate new` templates) does not apply to it.
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


#: The declared interface of each kind: what a component is built with, what it receives and returns, and the class
#: attributes it may declare. `ablate new <kind>` writes a file that follows it, and `ablate check <kind>` (see
#: `models/conformance.py`) tests it. Components built from `cfg` may read their own `Options` with
#: `cfg.component_options(self)` (a dataclass whose every field has a default; see `ModelConfig.options`).
INTERFACES: dict[str, str] = {
    "attention": "cls(cfg, causal) ; forward(x (B,T,D), position, prefix=None) -> (B,T,D) ; declares provides "
                 "(causal, rotate, score_bias, prefix), linear_time, skip ; subclass MultiHeadAttention and "
                 "implement mix(q, k, v, *, bias, n_prefix) -> (B,H,T,hd)",
    "ffn": "cls(cfg) ; forward(x (B,T,D)) -> (B,T,D), each position on its own ; declares skip ; an `out_proj` "
           "Linear (zeroed by model.zero_init_branches)",
    "norm": "cls(d_model) ; forward(x (B,T,D)) -> (B,T,D), each position on its own",
    "norm_placement": "cls(make_norm) ; forward(x, branch, residual) -> x ; declares wants_final_norm",
    "residual": "cls(cfg, layer_index) ; forward(stream (B,T,D), branch_out (B,T,D)) -> (B,T,D)",
    "position": "subclass Position: cls(cfg, max_len) ; embed(h) -> h, rotate(q, k) -> (q, k), "
                "score_bias(t_q, t_k, device) -> (.., H, t_q, t_k) or None ; declares needs",
    "memory": "cls(cfg) ; forward(h (B,T,D), run_blocks) -> (B,T,D) ; run_blocks(h, prefix_fn=None) runs every "
              "block ; declares needs, segmented",
}


def capabilities(kind: str, cls) -> str:
    """What a component class declares, in a few words (for `ablate list`)."""
    words = []
    if getattr(cls, "skip", False):
        words.append("removes the sublayer")
    if kind == "attention" and not getattr(cls, "skip", False):
        words.append("provides " + (",".join(sorted(getattr(cls, "provides", ()))) or "nothing"))
        words.append("O(T)" if getattr(cls, "linear_time", False) else "O(T^2)")
    if getattr(cls, "needs", None):
        words.append("needs " + ",".join(sorted(cls.needs)))
    if getattr(cls, "segmented", False):
        words.append("needs segment_len")
    if getattr(cls, "Options", None) is not None:
        words.append("options " + ",".join(f.name for f in dataclasses.fields(cls.Options)))
    return "; ".join(words)


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
