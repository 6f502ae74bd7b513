"""The sweep profile (conf/sweep/*.yaml): the tuning budget, the search space, the pruner, the storage, workers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from models.errors import ConfigError
from models.registry import closest

#: The searchable hyper-parameters and what they set.
SPACE_KEYS = ("lr", "warmup_frac", "weight_decay")


@dataclass(frozen=True)
class SweepConfig:
    name: str
    trials: int
    seeds: int
    space: dict
    pruner: str
    pruner_startup_trials: int
    sampler_seed: int
    storage: str | None
    workers: int
    grace_seconds: float

    def __post_init__(self):
        for key in ("trials", "seeds", "pruner_startup_trials", "sampler_seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"sweep.{key} must be a non-negative integer, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"sweep.workers must be a positive integer, got {self.workers!r}")
        if not isinstance(self.grace_seconds, (int, float)) or not self.grace_seconds > 0:
            raise ConfigError(f"sweep.grace_seconds must be positive, got {self.grace_seconds!r}")
        if self.pruner not in ("none", "median"):
            raise ConfigError(f"unknown sweep.pruner '{self.pruner}'; valid: median, none")
        for key, bounds in self.space.items():
            if key not in SPACE_KEYS:
                raise ConfigError(f"unknown search-space key 'sweep.space.{key}'{closest(key, SPACE_KEYS)}; "
                                  f"valid: {', '.join(SPACE_KEYS)}")
            extra = set(bounds) - {"low", "high", "log"}
            low, high = bounds.get("low"), bounds.get("high")
            if extra or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)) \
                    or low > high or (bounds.get("log") and low <= 0):
                raise ConfigError(f"sweep.space.{key} must be {{low, high, log}} with low <= high (and low > 0 "
                                  f"on a log scale), got {dict(bounds)}")
        if self.trials and not self.space:
            raise ConfigError("sweep.trials > 0 needs a search space (sweep.space)")

    @property
    def tunes(self) -> bool:
        return self.trials > 0

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                raise ConfigError(f"unknown key 'sweep.{key}'{closest(key, known)}; "
                                  f"valid: {', '.join('sweep.' + k for k in known)}")
        return cls(**{**data, "space": dict(data.get("space") or {})})
