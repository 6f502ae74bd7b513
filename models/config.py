"""`ModelConfig`: the whole architecture as plain strings and numbers.

Why plain values: the same object is composed by Hydra from the command line, stored in every result row and
hashed to identify a run. Component names are resolved through the registries only when the model is built,
but they are validated here, together with every combination that cannot work, so that a mistake fails in one
line before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from models.components import ATTENTION, INIT, MEMORY, POSITION, REGISTRIES, RESIDUAL
from models.errors import ConfigError
from models.registry import closest

POOLS = ("mean", "cls")
#: Fields added after results were first recorded, with their defaults: `to_dict` leaves each out while it holds
#: its default, so the configs and hashes (study names, run hashes) of everything recorded before it are unchanged.
LATER_FIELDS = {"init": "normal", "short_conv": 0}
#: Fields that moved out of ModelConfig into the `Options` of the components that use them (issue #19): each
#: former field, the default it had, and the option(s) of each component it became. `memory_size` meant three
#: things (tokens or slots, a cache length, a top-k that was also a number of kept segments); each memory now
#: names its own. A config written with a former field is read with it moved (`current_form`), and hashes are
#: taken over the shape configs had before the move (`ModelConfig.hash_form`), so the study names and run hashes
#: of results directories written before it are unchanged and they resume.
MOVED_FIELDS: dict[str, tuple[int, dict[str, tuple[str, ...]]]] = {
    "window": (16, {"local": ("window",)}),
    "n_features": (64, {"performer": ("n_features",)}),
    "memory_size": (8, {"tokens": ("n_tokens",), "persistent": ("n_slots",), "recurrent": ("n_tokens",),
                        "xl": ("cache_len",), "knn": ("top_k", "kept_segments")}),
}


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 64          # width of the residual stream
    n_layers: int = 2          # number of blocks (attention branch + feed-forward branch each)
    n_heads: int = 4           # query heads; must divide d_model
    kv_heads: int = 0          # key/value heads (0: as many as n_heads; 1: multi-query; else grouped-query)
    d_ff: int = 256            # hidden width of the feed-forward branch
    dropout: float = 0.0       # on embeddings, attention weights and branch outputs
    norm: str = "layernorm"    # which normaliser (registry `norm`)
    norm_placement: str = "pre"  # where it sits around each branch (registry `norm_placement`)
    final_norm: bool = True    # a norm before the head, for placements that leave the stream unnormalised
    residual: str = "standard"   # how each branch meets the stream (registry `residual`)
    attn_residual: str | None = None  # the attention branch's residual mode (None: `residual`)
    ffn_residual: str | None = None   # the feed-forward branch's residual mode (None: `residual`)
    residual_scale: float = 0.0  # `scaled` residual: the branch multiplier (0: depth-scaled, see residual/scaled.py)
    zero_init_branches: bool = False  # every branch's output projection starts at zero
    init: str = "normal"       # how weights are drawn (registry `init`: normal, gpt2, torch, xavier, small)
    short_conv: int = 0        # width K of a causal depthwise convolution on each attention input (0: none)
    attention: str = "softmax"   # token mixing (registry `attention`)
    ffn: str = "mlp"           # per-token branch (registry `ffn`)
    position: str = "learned"  # positional information (registry `position`)
    memory: str = "none"       # memory module (registry `memory`)
    segment_len: int = 0       # segment-wise processing for recurrent/xl/knn memory (0: whole sequence)
    pool: str = "mean"         # how a per-sequence head reads the sequence: mean over positions or a class token
    tie_head: bool = False     # share the token embedding with a per-token output head
    # Per-component options: component name -> values for its `Options` dataclass, e.g.
    # `+model.options.local.window=4`. Filled with the defaults of every selected component that declares
    # `Options`, so result.json and the config hash record the values a run actually used.
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "d_ff"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("kv_heads", "segment_len", "short_conv"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("dropout", "residual_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"model.{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.residual_scale < 0:
            raise ConfigError(f"model.residual_scale must be >= 0 (0: depth-scaled), got {self.residual_scale!r}")
        for name in ("final_norm", "tie_head", "zero_init_branches"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        for field, registry in REGISTRIES.items():
            registry.get(getattr(self, field))  # raises with the list of valid names
        INIT.get(self.init)  # raises with the list of valid schemes
        for name in ("attn_residual", "ffn_residual"):
            if getattr(self, name) is not None:
                RESIDUAL.get(getattr(self, name))
        if self.pool not in POOLS:
            raise ConfigError(f"unknown model.pool '{self.pool}'{closest(self.pool, POOLS)}; valid: {', '.join(POOLS)}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}: "
                              f"each head needs an equal share of the width")
        if self.kv_heads and self.n_heads % self.kv_heads:
            raise ConfigError(f"model.n_heads={self.n_heads} is not divisible by model.kv_heads={self.kv_heads}: "
                              f"each key/value head serves an equal group of query heads")
        provides = ATTENTION.get(self.attention).provides
        for field, registry in (("position", POSITION), ("memory", MEMORY)):
            missing = sorted(set(getattr(registry.get(getattr(self, field)), "needs", ())) - set(provides))
            if missing:
                raise ConfigError(f"model.{field}={getattr(self, field)} needs {', '.join(missing)} from the "
                                  f"attention, which model.attention={self.attention} does not provide")
        if self.memory != "none" and getattr(ATTENTION.get(self.attention), "skip", False):
            raise ConfigError(f"model.memory={self.memory} is read through attention, and "
                              f"model.attention={self.attention} mixes no tokens")
        if self.short_conv and getattr(ATTENTION.get(self.attention), "skip", False):
            raise ConfigError(f"model.short_conv={self.short_conv} convolves the attention branch's input, and "
                              f"model.attention={self.attention} removes that branch")
        if getattr(MEMORY.get(self.memory), "segmented", False) and not self.segment_len:
            raise ConfigError(f"model.memory={self.memory} carries state from one segment to the next and needs "
                              f"model.segment_len > 0")
        object.__setattr__(self, "options", resolve_options(self))

    def __hash__(self) -> int:  # `options` is a dict, so the generated hash would fail
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def component_options(self, component):
        """The `Options` instance of a component class (or instance) under this config: its dataclass defaults
        overridden by `model.options.<name>`. Components call it in `__init__` (see the README: Writing a plugin)."""
        cls = component if isinstance(component, type) else type(component)
        return cls.Options(**self.options.get(cls.registered_name, {}))

    @property
    def residuals(self) -> tuple[str, str]:
        """The residual modes of the attention and the feed-forward branch."""
        return self.attn_residual or self.residual, self.ffn_residual or self.residual

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Strict construction: an unknown key is an error naming the closest valid one. A former field
        (`MOVED_FIELDS`, as configs recorded before the move hold it) is read as the option it became."""
        values = current_form(values)
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                hint = closest(key, known).replace("'", "'model.", 1)
                raise ConfigError(f"unknown model key 'model.{key}'{hint}; "
                                  f"valid: {', '.join('model.' + k for k in known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain values; `options` only when some component has any, and each of `LATER_FIELDS` only when it
        differs from its default, so configs (and hashes) written before those fields existed are unchanged."""
        values = dataclasses.asdict(self)
        if not values["options"]:
            del values["options"]
        for name, default in LATER_FIELDS.items():
            if values[name] == default and type(values[name]) is type(default):
                del values[name]
        return values

    def hash_form(self) -> dict:
        """`to_dict` in the shape configs had before `MOVED_FIELDS` moved into options: what run and study hashes
        are taken over, so that those of directories written before the move are unchanged. Each former field
        holds the value of the selected component's option, or its old default where no selected component has
        it. An option that shape cannot express (kNN's `top_k` and `kept_segments` set apart) stays in
        `options`, which gives that config a hash of its own."""
        values = self.to_dict()
        options = {name: dict(held) for name, held in values.pop("options", {}).items()}
        for field, (default, owners) in MOVED_FIELDS.items():
            values[field] = default
            for component, names in owners.items():
                held = options.get(component, {})
                if names[0] in held and all(held.get(name) == held[names[0]] for name in names):
                    values[field] = held[names[0]]
                    for name in names:
                        del held[name]
        options = {name: held for name, held in options.items() if held}
        if options:
            values["options"] = options
        return values

    def selected(self) -> dict[str, type]:
        """Every component class this config selects, by name."""
        chosen = {getattr(self, f): registry.get(getattr(self, f)) for f, registry in REGISTRIES.items()}
        chosen.update({name: RESIDUAL.get(name) for name in self.residuals})
        return chosen


def current_form(values: dict) -> dict:
    """A model config's values with each former field (`MOVED_FIELDS`) moved to the options it became, for the
    components it selects; a former field that no selected component uses is dropped, as it changed nothing.

    Why: result.json files, manifests and ablation files written before the move hold `window`, `n_features` and
    `memory_size`; they must still be read, and mean what they meant. A former field must still be a positive
    integer, as it had to be; set to a different value than its option, it is an error, as one would be ignored."""
    if not any(field in values for field in MOVED_FIELDS):
        return values
    values = dict(values)
    former = {field: values.pop(field) for field in MOVED_FIELDS if field in values}
    for field, value in former.items():
        _check_int(field, value, minimum=1)  # as the field was checked, whether or not a component uses it
    given = values.get("options") or {}
    if not isinstance(given, dict):
        return values  # options that are not a mapping: `resolve_options` names the problem
    options = {name: dict(held) if isinstance(held, dict) else held for name, held in given.items()}
    chosen = {values.get(field) for field in REGISTRIES}
    for field, value in former.items():
        for component, names in MOVED_FIELDS[field][1].items():
            held = options.setdefault(component, {}) if component in chosen else None
            if not isinstance(held, dict):
                continue  # not selected; or its options are not a mapping, which `resolve_options` names
            for name in names:
                if name in held and held[name] != value:
                    raise ConfigError(f"model.{field}={value!r} (its former name) and "
                                      f"model.options.{component}.{name}={held[name]!r} set one option twice; "
                                      f"keep model.options.{component}.{name}")
                held[name] = value
    if options:
        values["options"] = options
    return values


def resolve_options(cfg: ModelConfig) -> dict:
    """Validate `cfg.options` strictly and fill in defaults (see `ModelConfig.options`).

    Options for a component that the config does not select are an error rather than silently unused, and so are
    unknown keys and values of the wrong type; each names the valid choices."""
    if not isinstance(cfg.options, dict):
        raise ConfigError(f"model.options must be a mapping of component name to options, got {cfg.options!r}")
    selected = cfg.selected()
    with_options = sorted(n for n, c in selected.items() if dataclasses.is_dataclass(getattr(c, "Options", None)))
    resolved = {}
    for name, values in cfg.options.items():
        if name not in selected:
            raise ConfigError(f"model.options.{name} is set but no model.<kind>={name} is selected; components "
                              f"of this config with options: {', '.join(with_options) or '(none)'}")
        if name not in with_options:
            raise ConfigError(f"model.options.{name}: component '{name}' declares no Options; components of this "
                              f"config with options: {', '.join(with_options) or '(none)'}")
        if not isinstance(values, dict):
            raise ConfigError(f"model.options.{name} must be a mapping of option to value, got {values!r}")
    for name in with_options:
        options_cls = selected[name].Options
        fields = {f.name: f for f in dataclasses.fields(options_cls)}
        given = cfg.options.get(name, {})
        for key, value in given.items():
            if key not in fields:
                raise ConfigError(f"unknown option 'model.options.{name}.{key}'{closest(key, fields)}; valid: "
                                  f"{', '.join(f'model.options.{name}.' + k for k in fields) or '(none)'}")
        defaults = dataclasses.asdict(options_cls())  # every option has a default (the interface says so)
        values = {**defaults, **given}
        for key, value in given.items():
            if not _same_kind(value, defaults[key]):
                raise ConfigError(f"model.options.{name}.{key} must be {type(defaults[key]).__name__} like its "
                                  f"default {defaults[key]!r}, got {value!r}")
            if isinstance(defaults[key], float):
                values[key] = float(value)
        try:
            options_cls(**values)  # an Options.__post_init__ may check values further
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model.options.{name}: {error}") from None
        resolved[name] = values
    return resolved


def _same_kind(value, default) -> bool:
    if default is None:  # an optional value: the Options class checks it itself
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"model.{name} must be {kind}, got {value!r}")
