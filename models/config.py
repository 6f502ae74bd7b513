"""`ModelConfig`: the whole architecture as plain strings and numbers.

Why plain values: the same object is composed by Hydra from the command line, stored in every result row and
hashed to identify a run. Component names are resolved through the registries only when the model is built,
but they are validated here, so that a typo fails before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from models.components import REGISTRIES
from models.errors import ConfigError
from models.registry import closest


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 64          # width of the residual stream
    n_layers: int = 2          # number of blocks (attention branch + feed-forward branch each)
    n_heads: int = 4           # attention heads; must divide d_model
    d_ff: int = 256            # hidden width of the feed-forward branch
    dropout: float = 0.0       # on embeddings, attention weights and branch outputs
    norm: str = "layernorm"    # which normaliser (registry `norm`)
    norm_placement: str = "pre"  # where it sits around each branch (registry `norm_placement`)
    final_norm: bool = True    # a norm before the head, for placements that leave the stream unnormalised
    residual: str = "standard"   # how each branch meets the stream (registry `residual`)
    attention: str = "softmax"   # token mixing (registry `attention`)
    ffn: str = "mlp"           # per-token branch (registry `ffn`)
    position: str = "learned"  # positional information (registry `position`)
    tie_head: bool = False     # share the token embedding with a per-token output head

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("final_norm", "tie_head"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        for field, registry in REGISTRIES.items():
            registry.get(getattr(self, field))  # raises with the list of valid names
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}: "
                              f"each head needs an equal share of the width")

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Strict construction: an unknown key is an error naming the closest valid one."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown model key 'model.{key}'{closest(key, known)}; "
                                  f"valid: {', '.join('model.' + k for k in known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
