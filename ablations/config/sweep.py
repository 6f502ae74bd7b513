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

#: The short names of the optimiser settings a space searches, and the config key each sets (`warmup_frac` is a
#: fraction of `trainer.max_steps`, so that one range fits every task's budget).
SPACE_KEYS = ("lr", "warmup_frac", "weight_decay")
SHORT_KEYS = {"lr": "optim.lr", "weight_decay": "optim.weight_decay", "warmup_frac": "optim.warmup_steps"}
#: The sections any other searched key may come from (a dotted config key: `model.d_ff`, `task.n_pairs`,
#: `optim.batch_size`). Trainer settings are the budget and the harness, the seed is the repetition: searching
#: them would compare variants on different terms.
SPACE_SECTIONS = ("model", "task", "optim")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
#: The optimiser settings a stack's members may differ in (ablations/execute/stack.py PER_MEMBER): a space over
#: anything else gives each trial its own architecture or data, so its trials train one by one.
STACKABLE_SPACE = {"lr", "warmup_frac", "weight_decay", "optim.lr", "optim.weight_decay", "optim.warmup_steps",
                   "optim.schedule"}  # each member follows its own lr_factor (test_optim: stacked == alone)


def _is_leaf(value) -> bool:
    return isinstance(value, dict) and bool({"low", "high", "choices"} & set(value))


def flatten_space(space: dict, prefix: str = "") -> dict:
    """`{model: {d_ff: {low, high}}}` (the nesting that a command-line override `sweep.space.model.d_ff.low=64`
    makes) and `{"model.d_ff": {low, high}}` (a YAML key with dots) both become `{"model.d_ff": {low, high}}`."""
    flat = {}
    for key, value in space.items():
        name = f"{prefix}{key}"
        if _is_leaf(value) or not isinstance(value, dict):
            flat[name] = value
        else:
            flat.update(flatten_space(value, f"{name}."))
    return flat


def _check_dimension(key: str, bounds) -> None:
    """One searched dimension: `{choices: [...]}`, or `{low, high, log, type}` with type float (default) or int."""
    example = (f"sweep.space.{key} must be {{low, high, log, type: float|int}} with low <= high (low > 0 on a log "
               f"scale) or {{choices: [a, b, ...]}}, got ")
    if not isinstance(bounds, dict):
        raise ConfigError(example + repr(bounds))
    if "choices" in bounds:
        choices = bounds["choices"]
        if set(bounds) != {"choices"} or not isinstance(choices, list) or not choices \
                or not all(isinstance(c, (str, int, float, bool)) for c in choices) or len(set(map(str, choices))) \
                < len(choices):
            raise ConfigError(example + f"{dict(bounds)} (choices: a list of distinct plain values)")
        return
    extra = set(bounds) - {"low", "high", "log", "type"}
    low, high, kind = bounds.get("low"), bounds.get("high"), bounds.get("type", "float")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if extra or kind not in ("float", "int") or not numbers or low > high or (bounds.get("log") and low <= 0) \
            or (kind == "int" and not all(float(v).is_integer() for v in (low, high))):
        raise ConfigError(example + str(dict(bounds)))
    if key in SHORT_KEYS and kind == "int":
        raise ConfigError(f"sweep.space.{key} is a float setting; type: int is for integer keys such as model.d_ff")


def check_space_key(key: str) -> None:
    """A searched key is one of SPACE_KEYS or a dotted key of SPACE_SECTIONS (whether it exists is checked by
    composing the cells with it: `ablations.execute.plan`)."""
    if key in SPACE_KEYS:
        return
    section, _, rest = key.partition(".")
    if section in SPACE_SECTIONS and rest:
        if key in ("task.name",):
            raise ConfigError("sweep.space.task.name: the task is what a cell is, not a hyper-parameter; list tasks "
                              "in ablation.tasks")
        return
    raise ConfigError(f"unknown search-space key 'sweep.space.{key}'{closest(key, SPACE_KEYS)}; valid: "
                      f"{', '.join(SPACE_KEYS)}, or a key of {', '.join(s + '.*' for s in SPACE_SECTIONS)} (e.g. "
                      f"sweep.space.model.d_ff.low=64)")


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
            raise ConfigError("sweep.storage must be a URL (postgresql://user@host/db, sqlite:///FILE or journal:PATH) or null, "
                              f"got a {type(self.storage).__name__}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown sweep.pruner '{self.pruner}'{closest(self.pruner, PRUNERS)}; valid: "
                              f"{', '.join(PRUNERS)}")
        for key, bounds in self.space.items():
            check_space_key(key)
            _check_dimension(key, bounds)
        for short, full in SHORT_KEYS.items():
            if short in self.space and full in self.space:
                raise ConfigError(f"sweep.space.{short} and sweep.space.{full} both set {full}; keep one")
        if self.storage and self.storage.startswith("sqlite:") and self.workers > 1:
            raise ConfigError(f"sweep.storage sqlite is for one process (it locks the whole database on every write, "
                              f"and concurrent workers time out); with sweep.workers={self.workers} use the default "
                              f"journal file (null) or postgresql://")
        if self.trials and not self.space:
            raise ConfigError("sweep.trials > 0 needs a search space (sweep.space)")

    @property
    def heartbeat_seconds(self) -> float:
        """How often a running trial's heartbeat is refreshed (see `heartbeat_seconds`)."""
        return heartbeat_seconds(self.grace_seconds)

    @property
    def tunes(self) -> bool:
        return self.trials > 0

    @property
    def stackable(self) -> bool:
        """Whether this space's trials of one cell share an architecture (they differ only in optimiser settings
        a stack's members may differ in), so that several may train as one stack."""
        return set(self.space) <= STACKABLE_SPACE

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                raise ConfigError(f"unknown key 'sweep.{key}'{closest(key, known)}; "
                                  f"valid: {', '.join('sweep.' + k for k in known)}")
        space = data.get("space") or {}
        if not isinstance(space, dict):
            raise ConfigError(f"sweep.space must map searched keys ({', '.join(SPACE_KEYS)}, or model.*, task.*, "
                              f"optim.* keys) to {{low, high, log}} or {{choices: [...]}}, e.g. sweep.space.lr.high=3e-2")
        return cls(**{**data, "space": flatten_space(dict(space))})
