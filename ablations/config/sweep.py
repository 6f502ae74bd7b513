"""The sweep profile (conf/sweep/*.yaml): the tuning budget, the search space, the pruner, the storage, workers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from models.errors import ConfigError
from models.registry import closest

#: A live worker refreshes its running trials' heartbeat every `heartbeat_seconds(grace)`; a trial on another
#: host whose heartbeat is older than the grace is presumed dead and redone. A grace shorter than a few
#: heartbeats would mark live trials stale (a beat is late whenever the storage or the machine is busy), so it
#: is refused: at least MIN_HEARTBEATS beats fit in every accepted grace.
MIN_HEARTBEATS = 4
MIN_HEARTBEAT_SECONDS, MAX_HEARTBEAT_SECONDS = 1.0, 20.0


def heartbeat_seconds(grace_seconds: float) -> float:
    """The heartbeat interval of a running trial: a quarter of the grace, within 1..20 seconds."""
    return max(MIN_HEARTBEAT_SECONDS, min(MAX_HEARTBEAT_SECONDS, grace_seconds / MIN_HEARTBEATS))


#: The smallest accepted grace: MIN_HEARTBEATS beats of the shortest interval.
MIN_GRACE_SECONDS = MIN_HEARTBEATS * MIN_HEARTBEAT_SECONDS

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
        grace = self.grace_seconds
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or math.isnan(grace):
            raise ConfigError(f"sweep.grace_seconds must be a number of seconds, got {grace!r}")
        if grace < MIN_GRACE_SECONDS or grace < MIN_HEARTBEATS * heartbeat_seconds(grace):
            raise ConfigError(f"sweep.grace_seconds must be at least {MIN_GRACE_SECONDS:g}, got {grace!r}: a running "
                              f"trial's heartbeat comes every max({MIN_HEARTBEAT_SECONDS:g}, min("
                              f"{MAX_HEARTBEAT_SECONDS:g}, grace/{MIN_HEARTBEATS})) s, and a grace shorter than "
                              f"{MIN_HEARTBEATS} beats would mark live trials stale")
        if self.storage is not None and not isinstance(self.storage, str):
            raise ConfigError("sweep.storage must be a URL (postgresql://user@host/db or journal:PATH) or null, "
                              f"got a {type(self.storage).__name__}")
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
    def heartbeat_seconds(self) -> float:
        """How often a running trial's heartbeat is refreshed (see `heartbeat_seconds`)."""
        return heartbeat_seconds(self.grace_seconds)

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
        space = data.get("space") or {}
        if not isinstance(space, dict) or not all(isinstance(b, dict) for b in space.values()):
            raise ConfigError(f"sweep.space must map each of {', '.join(SPACE_KEYS)} to {{low, high, log}}, e.g. "
                              f"sweep.space.lr.high=3e-2")
        return cls(**{**data, "space": dict(space)})
