"""Composing and validating configs.

Hydra's compose API builds the config from `conf/` plus the user's overrides; this module then checks every
section strictly (unknown keys, bad values, unknown names) so that a mistake is one line before any work
starts. The result is a `RunConfig` of plain values: it is what a run receives, what `result.json` stores and
what the config hash is computed from.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ablations import require_own_packages

require_own_packages()  # a user's own `models` first on sys.path: one line saying so, not "No module named ..."

import ablations.config.secrets  # noqa: E402,F401  (installs the redaction of every ConfigError message)
from models.errors import ConfigError  # noqa: E402
from models.registry import closest  # noqa: E402

# Hydra, the model config and the task registry (torch) are imported where they are used: `ablate list` and
# `--help` need none of them, and each costs a large part of a second or more to import.

GROUPS = ("model", "task", "trainer", "sweep", "ablation")


def conf_dir() -> Path:
    """`conf/` beside the packages in a clone or editable install, else the copy packaged into the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / "config.yaml").is_file():
        return checkout
    packaged = Path(str(resources.files("ablations") / "conf"))
    if (packaged / "config.yaml").is_file():
        return packaged
    raise ConfigError(f"cannot find the config directory (looked in {checkout} and {packaged})")


USER_CONFIG_ENV = "ABLATE_CONFIG_DIR"


def user_conf_dir() -> Path | None:
    """A config directory of the user's own (`$ABLATE_CONFIG_DIR`), searched after ours: its `ablation/*.yaml`,
    `task/*.yaml`, ... add options to our groups without editing our files. None when the variable is unset."""
    value = os.environ.get(USER_CONFIG_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{USER_CONFIG_ENV}={value} is not a directory; it should hold config groups such as "
                          f"ablation/*.yaml")
    return path


def group_options(group: str) -> tuple[str, ...]:
    """The names a group accepts, from the YAML files in `conf/<group>/` and the user's config directory."""
    return _group_options(group, user_conf_dir())


@lru_cache(maxsize=None)
def _group_options(group: str, user: Path | None) -> tuple[str, ...]:
    folders = [conf_dir() / group] + ([user / group] if user else [])
    return tuple(sorted({p.stem for folder in folders for p in folder.glob("*.yaml")}))


def ablation_description(name: str) -> str:
    """The `description` of the ablation `name`, read from its YAML file alone (`ablate list` shows every
    ablation, and a compose of each would cost a large part of a second apiece). A file that only a compose
    reads right (a defaults list, a package directive, interpolations, a YAML error) is composed instead."""
    user = user_conf_dir()
    folders = [conf_dir() / "ablation"] + ([user / "ablation"] if user else [])
    path = next((f / f"{name}.yaml" for f in folders if (f / f"{name}.yaml").is_file()), None)
    try:
        text = path.read_text() if path else ""
        data = OmegaConf.to_container(OmegaConf.create(text)) if "@package" not in text else None
    except Exception:  # noqa: BLE001  (the compose below reports it as it always has)
        data = None
    description = data.get("description") if isinstance(data, dict) and "defaults" not in data else None
    if isinstance(description, str) and "${" not in description:
        return description
    try:
        return compose_config([f"ablation={name}"]).ablation.description
    except ConfigError as error:  # a listing shows every ablation; a broken file is said, not fatal to the list
        if not str(error).startswith("invalid YAML"):
            raise
        return f"(cannot be used: {error})"


def _strict(cls, section: str, values: dict):
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown key '{section}.{key}'{closest(key, known)}; "
                              f"valid: {', '.join(section + '.' + k for k in known)}")
    return cls(**values)


def _check_number(section: str, name: str, value, *, minimum=0.0, positive=False, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{section}.{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{section}.{name} must be a finite number, got {value!r}")
    if (positive and value <= 0) or value < minimum:
        raise ConfigError(f"{section}.{name} must be {'positive' if positive else f'>= {minimum}'}, got {value!r}")


#: `optim.name`: the optimisers a run may use (ablations/execute/module.py `make_optimizer`).
OPTIMIZERS = ("adamw", "adam", "sgd", "muon")  # muon: torch.optim.Muon on hidden matrices, AdamW on the rest
#: `optim.schedule`: the learning-rate schedules (ablations/execute/module.py `lr_factor`).
SCHEDULES = ("cosine", "constant", "linear", "inverse_sqrt")
#: Optimiser settings added after the first results were written, with the value that reproduces those results:
#: left out of a run's hash at that value, so that an existing results directory keeps its hashes (and resumes).
OPTIM_DEFAULTS = {"name": "adamw", "betas": (0.9, 0.98), "eps": 1e-8, "momentum": 0.9, "schedule": "cosine"}
#: The same for the trainer (`trainer.checkpoint` and `trainer.logger` never change what a run computes: they are
#: in NEUTRAL_TRAINER_KEYS, out of every hash).
TRAINER_DEFAULTS = {"grad_clip": 0.0, "checkpoint": "none", "logger": "csv"}


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    warmup_steps: int
    weight_decay: float
    batch_size: int
    name: str = "adamw"  # adamw | adam (L2 decay, as torch.optim.Adam) | sgd (heavy-ball momentum)
    betas: tuple = (0.9, 0.98)  # Adam(W)'s betas (Xiong et al. 2020 train with (0.9, 0.98))
    eps: float = 1e-8  # Adam(W)'s eps (torch's default)
    momentum: float = 0.9  # SGD's momentum (nesterov off)
    schedule: str = "cosine"  # cosine | constant | linear | inverse_sqrt, each after a linear warmup

    def __post_init__(self):
        _check_number("optim", "lr", self.lr, positive=True)
        _check_number("optim", "warmup_steps", self.warmup_steps, integer=True)
        _check_number("optim", "weight_decay", self.weight_decay)
        _check_number("optim", "batch_size", self.batch_size, positive=True, integer=True)
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optim.name '{self.name}'{closest(str(self.name), OPTIMIZERS)}; "
                              f"valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown optim.schedule '{self.schedule}'{closest(str(self.schedule), SCHEDULES)}; "
                              f"valid: {', '.join(SCHEDULES)}")
        betas = self.betas
        if (isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2
                or any(isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1 for b in betas)):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), e.g. [0.9, 0.98], got {betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))  # a YAML list, hashable and comparable
        _check_number("optim", "eps", self.eps, positive=True)
        _check_number("optim", "momentum", self.momentum)
        if self.momentum >= 1:
            raise ConfigError(f"optim.momentum must be in [0, 1), got {self.momentum!r}")


#: How a stack's members run their forward and backward (ablations/execute/stack.py): `vmap`, one torch.func.vmap
#: call over all of them; `loop`, each member's own module in turn, with one optimiser update for all; `auto`, the
#: one measured faster on the device.
STACK_ENGINES = ("auto", "vmap", "loop")
#: Trainer settings that never change what a run computes (left out of its hash and its study's name): diagnostics
#: only read the model, and a stacked run, by either engine, ends where the same run alone would end.
NEUTRAL_TRAINER_KEYS = ("diagnostics_every", "diagnostics_schedule", "stack", "stack_engine", "logger", "checkpoint")
#: `trainer.diagnostics_schedule` (ablations/execute/diagnostics.py `schedule_steps`, which defines each)
DIAGNOSTICS_SCHEDULES = ("every", "geometric")
#: `trainer.logger`: where a run logs besides its CSV log, which is always written (ablations/execute/loggers.py).
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
#: `trainer.checkpoint`: which weights a run keeps (ablations/execute/checkpoint.py).
CHECKPOINTS = ("none", "last", "best")


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int
    val_every: int
    log_every: int
    accelerator: str
    devices: int
    strategy: str
    precision: str
    eval_batch_size: int
    divergence_factor: float
    diagnostics_every: int = 0  # measure layer diagnostics every this many steps (0: off); see ablations/diagnostics.py
    diagnostics_schedule: str = "every"  # every | geometric (dense early, gaps capped at diagnostics_every)
    stack: int = 1  # train up to this many runs of one architecture as one stacked model (ablations/execute/stack.py)
    stack_engine: str = "auto"  # how a stack's members compute: auto (per device, as measured), vmap or loop
    grad_clip: float = 0.0  # clip each update's global gradient norm to this (0: off), as Lightning's norm clipping
    checkpoint: str = "none"  # none | last | best (by the task's validation metric): run_dir/checkpoints/<which>.ckpt
    logger: str = "csv"  # csv | tensorboard | mlflow | wandb: the CSV log is always written, the others beside it

    def __post_init__(self):
        for name in ("max_steps", "val_every", "log_every", "devices", "eval_batch_size"):
            _check_number("trainer", name, getattr(self, name), positive=True, integer=True)
        _check_number("trainer", "diagnostics_every", self.diagnostics_every, integer=True)
        if self.diagnostics_schedule not in DIAGNOSTICS_SCHEDULES:
            raise ConfigError(f"unknown trainer.diagnostics_schedule '{self.diagnostics_schedule}'"
                              f"{closest(str(self.diagnostics_schedule), DIAGNOSTICS_SCHEDULES)}; "
                              f"valid: {', '.join(DIAGNOSTICS_SCHEDULES)}")
        _check_number("trainer", "stack", self.stack, positive=True, integer=True)
        _check_number("trainer", "divergence_factor", self.divergence_factor, positive=True)
        _check_number("trainer", "grad_clip", self.grad_clip)
        for name, valid in (("checkpoint", CHECKPOINTS), ("logger", LOGGERS)):
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(f"unknown trainer.{name} '{value}'{closest(str(value), valid)}; "
                                  f"valid: {', '.join(valid)}")
        if self.logger != "csv":
            from ablations.execute.loggers import missing  # importlib.util only: no logger package is imported

            reason = missing(self.logger)
            if reason:
                raise ConfigError(reason)
        if self.stack_engine not in STACK_ENGINES:
            raise ConfigError(f"unknown trainer.stack_engine '{self.stack_engine}'; valid: {', '.join(STACK_ENGINES)}")
        precisions = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
        if self.precision not in precisions:
            raise ConfigError(f"unknown trainer.precision '{self.precision}'; valid: {', '.join(precisions)}")
        strategies = ("auto", "ddp", "ddp_find_unused_parameters_true")
        if self.strategy not in strategies:
            raise ConfigError(f"unknown trainer.strategy '{self.strategy}'; valid: {', '.join(strategies)}")
        accelerators = ("auto", "cpu", "gpu", "cuda", "mps")
        if self.accelerator not in accelerators:
            raise ConfigError(f"unknown trainer.accelerator '{self.accelerator}'; valid: {', '.join(accelerators)}")


@dataclass(frozen=True)
class ReportConfig:
    """`report:` of conf/config.yaml: how the report judges cells. Not part of a run (nor of its hash)."""

    margin: float = 0.05  # equivalence margin, a fraction of the chance-to-baseline range (ablations/analyse/stats.py)

    def __post_init__(self):
        _check_number("report", "margin", self.margin, positive=True)
        if self.margin >= 1:
            raise ConfigError(f"report.margin must be below 1 (a fraction of the chance-to-baseline range), "
                              f"got {self.margin!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run depends on, as plain values."""

    model: ModelConfig
    task: dict            # task parameters, including `name`
    optim: OptimConfig
    trainer: TrainerConfig
    seed: int

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}  # the model's own (see ModelConfig)

    def hash(self) -> str:
        """A short content hash: two runs with the same hash computed the same thing. Diagnostics only read the
        model on a held-out probe batch (no randomness, no update), so switching them does not change the hash; a
        stacked run computes what the run alone would (ablations/execute/stack.py), so `trainer.stack` and its engine
        do not either."""
        values = {**self.to_dict(), "model": self.model.hash_form()}  # the shape before options moved (#19)
        values["trainer"] = {k: v for k, v in without_later_defaults("trainer", values["trainer"]).items()
                             if k not in NEUTRAL_TRAINER_KEYS}
        values["optim"] = without_later_defaults("optim", values["optim"])
        blob = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def without_later_defaults(section: str, values: dict) -> dict:
    """An `optim` or `trainer` section without the keys added after the first results were written, where they hold
    the value that reproduces those results (`OPTIM_DEFAULTS`, `TRAINER_DEFAULTS`): what a hash of a run is taken
    over (`RunConfig.hash`), so that the hashes of existing results directories stay what they were."""
    defaults = {"optim": OPTIM_DEFAULTS, "trainer": TRAINER_DEFAULTS}[section]

    def plain(value):  # dataclasses.asdict keeps `betas` a tuple, JSON makes it a list
        return tuple(value) if isinstance(value, list) else value

    return {k: v for k, v in values.items() if k not in defaults or plain(v) != defaults[k]}


def parse_overrides(overrides: list[str]):
    """Parse with Hydra's own grammar; a malformed override is one line naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed.extend(parser.parse_overrides([text]))
        except HydraException as error:
            from ablations.config.secrets import override_secrets, redact

            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = next((line for line in lines[1:] if not line.startswith("See ")), "cannot parse")
            if override_secrets(text) or redact(text) != text:  # the parser's reason may quote any piece of it
                reason = "cannot parse it (the parser's message is not shown: the override holds a secret)"
            raise ConfigError(f"malformed override '{redact(text)}': {reason}; expected key=value, "
                              f"e.g. model.residual=none") from None
    return parsed


def override_key(text: str) -> str:
    """The key (or group) an override sets."""
    return parse_overrides([text])[0].key_or_group


#: The deletions (`~key`) that mean something: each drops one entry of a mapping of named entries, which no
#: assignment can do (Hydra merges an assigned mapping into the old one). Every other key has a default, so
#: `~key` would only run with the schema's own default under a misleading name: it is an error.
DELETABLE = ("ablation.variants.<name>", "ablation.parts.<name>", "ablation.parts.<name>.variants.<name>",
             "sweep.space.<name>")


def _deletable(key: str) -> bool:
    parts = key.split(".")
    return any(len(parts) == len(shape) and all(s == "<name>" or s == p for s, p in zip(shape, parts))
               for shape in (pattern.split(".") for pattern in DELETABLE))


def _check_deletions(parsed) -> None:
    for o in parsed:
        if o.is_delete() and not _deletable(o.key_or_group):
            key = o.key_or_group
            example = f"{key}=<name>" if key in GROUPS else f"{key}=<value>"
            raise ConfigError(f"'{o.input_line}' deletes a config key; every key has a default, set it instead, "
                              f"e.g. {example} (only entries can be deleted: "
                              f"{', '.join('~' + d for d in DELETABLE)})")


def _group_choices(parsed) -> list[str]:
    """The `group=option` overrides among parsed ones: what the config's shape (its keys) depends on."""
    return [f"{o.key_or_group}={o.value()}" for o in parsed if o.key_or_group in GROUPS and not o.is_delete()]


def _check_overrides(overrides: list[str]) -> None:
    """Reject unknown groups, group options and keys with a suggestion, before Hydra's multi-line errors."""
    parsed = parse_overrides(overrides)
    _check_deletions(parsed)
    group_choices = _group_choices(parsed)
    for o in parsed:
        key = o.key_or_group
        if key in GROUPS:
            value = o.value()
            if not isinstance(value, str):
                raise ConfigError(f"{key} takes one name, got '{o.input_line}'; valid: {', '.join(group_options(key))}")
            if value not in group_options(key):
                raise ConfigError(f"unknown {key} '{value}'{closest(str(value), group_options(key))}; "
                                  f"valid: {', '.join(group_options(key))}")
    base = _composed(group_choices)  # only read
    for o in parsed:
        key = o.key_or_group
        if key in GROUPS or o.is_add() or o.is_force_add():
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        if not isinstance(node, DictConfig) or leaf not in node:
            valid = sorted(node.keys()) if isinstance(node, DictConfig) else sorted(base.keys())
            prefix = f"{parent}." if isinstance(node, DictConfig) and parent else ""
            hint = closest(leaf, valid).replace("'", f"'{prefix}", 1) if prefix else closest(leaf, valid)
            raise ConfigError(f"unknown config key '{key}'{hint}; "
                              f"valid: {', '.join(prefix + str(k) for k in valid)}")


_COMPOSED: dict[tuple, DictConfig] = {}


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's compose, memoised per process: a grid composes the same few override lists many times (to
    validate every cell, then to run it), and each compose reads every YAML file again (about 0.3 s). A copy:
    the caller may change it."""
    return copy.deepcopy(_composed(overrides))


def _composed(overrides: list[str]) -> DictConfig:
    """The memoised compose itself, for callers that only read it (a copy of a large config, such as a suite's,
    costs about 10 ms)."""
    key = (str(user_conf_dir()), tuple(overrides))
    if key not in _COMPOSED:
        if len(_COMPOSED) > 1024:
            _COMPOSED.clear()
        composed = _reseeded(overrides)
        if composed is None:
            composed = _compose_uncached(_task_defaults(overrides) + list(overrides), shown=list(overrides))
        _COMPOSED[key] = composed
    return _COMPOSED[key]


_SEED = re.compile(r"seed=(0|[1-9][0-9]*)")


def _reseeded(overrides: list[str]) -> DictConfig | None:
    """The compose of `overrides` whose last is `seed=N` (N as Hydra reads it: a plain decimal integer), as the
    compose of the others with `seed` set to N; None when the last override is not one, or the others do not
    compose (the full compose then says why, naming every override).

    Why: every unit of a cell is composed at its own seed (ablations/execute/worker.py), and a Hydra compose costs
    about 0.1 s; Hydra applies value overrides in order after the config groups are merged, so the last one, on a
    plain top-level key, is the same as setting that key on the compose of the others (an interpolation of `seed`
    elsewhere resolves when read, to the new value)."""
    match = _SEED.fullmatch(overrides[-1]) if overrides else None
    if match is None:
        return None
    try:
        composed = _compose(list(overrides[:-1]))
    except ConfigError:
        return None
    if "seed" not in composed:
        return None
    composed.seed = int(match.group(1))
    return composed


_TASK_DEFAULTS: dict[tuple, list[str]] = {}


def _hydra_value(value) -> str:
    """A Params default as a Hydra override value: strings quoted (a comma would otherwise make a sweep)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _task_defaults(overrides: list[str]) -> list[str]:
    """`+task.<field>=<default>` for every Params field that the selected task's file leaves out.

    Why: a task file states only what differs from its code defaults (tasks/<name>.py `Params`) and its budget,
    so that a default lives in one place; the composed config must still hold every parameter, so that
    `task.length=24` is a known key and `ablate config` shows the whole task."""
    from tasks import TASKS

    choices = [o for o in overrides if o.partition("=")[0] in GROUPS]
    key = (str(user_conf_dir()), tuple(choices))
    if key not in _TASK_DEFAULTS:
        task = _compose_uncached(choices).task
        name = str(task.get("name", ""))
        added = []
        if name in TASKS.names():
            for field in dataclasses.fields(TASKS.get(name).Params):
                if field.name not in task and field.default is not dataclasses.MISSING:
                    added.append(f"+task.{field.name}={_hydra_value(field.default)}")
        _TASK_DEFAULTS[key] = added
    return list(_TASK_DEFAULTS[key])


def _compose_uncached(overrides: list[str], shown: list[str] | None = None) -> DictConfig:
    """Hydra's compose of `overrides`; an error names `shown` (default: all of them), the user's own overrides,
    not the task defaults `_task_defaults` adds before them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        user = user_conf_dir()
        search = [f"hydra.searchpath=[file://{user}]"] if user else []  # the user's groups, after ours
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            return compose(config_name="config", overrides=search + list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        from ablations.config.secrets import redact, scrub

        yaml_error = _yaml_error(error)
        if yaml_error is not None:
            raise yaml_error from None
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        named = overrides if shown is None else shown
        raise ConfigError(scrub(f"invalid overrides {' '.join(redact(o) for o in named)}: {first.strip()}",
                                overrides)) from None
    except Exception as error:  # noqa: BLE001  (a YAML error in a config file, from deep inside Hydra)
        yaml_error = _yaml_error(error)
        if yaml_error is None:
            raise
        raise yaml_error from None
    finally:
        GlobalHydra.instance().clear()


def _yaml_error(error: BaseException) -> ConfigError | None:
    """A YAML syntax error, or a tag no safe loader constructs (`!!python/object/...`: no code runs), in a config
    file (ours or `$ABLATE_CONFIG_DIR`'s), as one line naming the file, the line and the problem; None when
    `error` is not one."""
    import yaml

    seen = 0
    while error is not None and not isinstance(error, yaml.YAMLError) and seen < 10:
        error, seen = error.__cause__ or error.__context__, seen + 1
    if not isinstance(error, yaml.YAMLError):
        return None
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    if isinstance(error, yaml.constructor.ConstructorError) and "tag" in problem:
        problem += " (config files are plain YAML: tags such as !!python/... are refused, and nothing was run)"
    return ConfigError(f"invalid YAML in {where}: {problem}")


#: `size=standard`: this many times the task's own (quick) steps, validated this many times in all.
STANDARD_STEPS = 3
STANDARD_VALIDATIONS = 6


def standard_size(max_steps: int) -> list[str]:
    """The `size=standard` preset of a task whose quick budget is `max_steps`.

    Why: serious (tuned, seeded) runs get three times each task's quick budget. The rule lives here, once; a
    task file states `sizes.standard` only where it is an exception to it."""
    steps = STANDARD_STEPS * int(max_steps)
    return [f"trainer.max_steps={steps}", f"trainer.val_every={max(1, steps // STANDARD_VALIDATIONS)}"]


def _task_max_steps(overrides: list[str], cfg: DictConfig) -> int:
    """The task's own `trainer.max_steps` (its file's, before any command-line `trainer.max_steps=`).

    Why not always compose the overrides without `trainer.max_steps=`: that is one more Hydra compose (about 0.1 s)
    for every new override list. Only the group choices (the task, ablation, trainer files) can set the value, so
    it is read from their compose, which `_check_overrides` has just made (memoised); only where the value
    interpolates another key, which any override might set, are the overrides composed."""
    own = [o for o in overrides if o.lstrip("+~").partition("=")[0].strip() != "trainer.max_steps"]
    if len(own) == len(overrides):
        return int(cfg.trainer.max_steps)
    base = _composed(_group_choices(parse_overrides(own)))  # only read
    if not OmegaConf.is_interpolation(base.trainer, "max_steps"):
        return int(base.trainer.max_steps)
    return int(_compose(own).trainer.max_steps)


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose `conf/config.yaml` with overrides, rejecting unknown names and keys in one line.

    `size=<name>` applies the task's preset for that size (`sizes.<name>`: `standard_size` unless its task file
    states an exception) before the command-line overrides, so that an explicit `trainer.max_steps=` still
    wins."""
    overrides = _former_names(list(overrides))
    _check_overrides(overrides)
    cfg = _compose(overrides)
    if cfg.sizes.get("standard") is None:
        cfg.sizes.standard = standard_size(_task_max_steps(list(overrides), cfg))
    sizes = cfg.sizes
    if cfg.size not in sizes:
        raise ConfigError(f"unknown size '{cfg.size}' for task {cfg.task.name}{closest(str(cfg.size), sizes)}; "
                          f"valid: {', '.join(sizes)}")
    preset = [str(o) for o in sizes[cfg.size]]
    if preset:
        _check_overrides(preset + list(overrides))
        cfg = _compose(preset + list(overrides))
        cfg.sizes = sizes
    _move_former_fields(cfg)
    _check_resolves(cfg)
    return cfg


def _former_names(overrides: list[str]) -> list[str]:
    """The overrides, with each that sets a former model field (`model.window=4`; models/config.py, MOVED_FIELDS)
    made `++`: the model's file no longer has those keys, and `_move_former_fields` moves each to the option it
    became once composed. Why: manifests (which `ablate worker` composes again), ablation files and commands
    written before the move must still run, and mean what they meant."""
    from models.config import MOVED_FIELDS

    if not any(field in text for text in overrides for field in MOVED_FIELDS):  # the common case, without parsing
        return overrides
    former = {f"model.{field}" for field in MOVED_FIELDS}
    return [f"++{o.input_line}" if o.key_or_group in former and not (o.is_add() or o.is_force_add() or o.is_delete())
            else o.input_line for o in parse_overrides(overrides)]


def _move_former_fields(cfg: DictConfig) -> None:
    """A composed config whose model holds a former field (set by `_former_names`, or by a user's model file
    written before the move) gets it moved into `model.options` (`models.config.current_form`)."""
    from models.config import MOVED_FIELDS, current_form

    model = cfg.get("model")
    if isinstance(model, DictConfig) and any(field in model for field in MOVED_FIELDS):
        moved = OmegaConf.create(current_form(OmegaConf.to_container(model, resolve=True)))
        with open_dict(cfg):
            cfg.model = moved


def _check_resolves(cfg: DictConfig) -> None:
    """Every interpolation resolves (`${oc.env:PGPASS}` with PGPASS unset is one line naming the key, not a
    traceback wherever the value is first read)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ConfigError(f"cannot resolve {key or 'the config'}: {first}") from None


def resolved_yaml(overrides: list[str]) -> str:
    """The configuration these overrides compose to, resolved and validated, as YAML (`ablate config`; Hydra's
    `--cfg job`): what a run, a grid or a sweep with the same overrides would use. Secrets are masked."""
    import yaml

    from ablations.config.ablation import load_ablation, seed_keys
    from ablations.config.secrets import redact_data
    from ablations.config.sweep import SweepConfig

    cfg = compose_config(seed_keys(list(overrides)))
    to_run_config(cfg)  # every section is checked: a bad key or value is one line, as for a run
    SweepConfig.from_dict(OmegaConf.to_container(cfg.sweep, resolve=True))
    load_ablation(OmegaConf.to_container(cfg.ablation, resolve=True))
    data = redact_data(OmegaConf.to_container(cfg, resolve=True))
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Validate every section strictly and return plain values."""
    from ablations.plugins import load_plugins
    from models.config import ModelConfig
    from tasks import TASKS

    data = OmegaConf.to_container(cfg, resolve=True)
    expected = {"model", "task", "optim", "trainer", "seed", "out", "sweep", "ablation", "size", "sizes", "plugins",
                "report"}
    for key in data:
        if key not in expected:
            raise ConfigError(f"unknown config key '{key}'{closest(key, expected)}; valid: {', '.join(sorted(expected))}")
    _strict(ReportConfig, "report", data.get("report") or {})  # checked here, used only by the report
    # Plugins register names that the model and task below are checked against; loading here (once per process)
    # also covers worker processes, which compose from the saved overrides.
    load_plugins(data.get("plugins"))
    seed = data["seed"]
    check_seed(seed)
    task_values = dict(data["task"])
    name = task_values.pop("name")
    TASKS.get(name)(**task_values)  # validates the task parameters
    trainer = _strict(TrainerConfig, "trainer", data["trainer"])
    if _CHECK_HARDWARE.get():
        check_hardware(trainer)
    return RunConfig(model=ModelConfig.from_dict(data["model"]), task=dict(data["task"]),
                     optim=_strict(OptimConfig, "optim", data["optim"]), trainer=trainer, seed=seed)


#: The largest seed: what `numpy.random.seed` and Lightning's `seed_everything` accept (2^32 - 1).
MAX_SEED = 2**32 - 1


def check_seed(seed, what: str = "seed") -> None:
    """A seed is an integer in 0 .. 2^32-1 (numpy's and Lightning's seeding range): anything else is one line."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{what} must be a non-negative integer up to {MAX_SEED} (2^32-1, numpy's seeding "
                          f"range), got {seed!r}")


_CHECK_HARDWARE = contextvars.ContextVar("check_hardware", default=True)


@contextlib.contextmanager
def hardware_elsewhere():
    """Validate configs without checking that their accelerator is present on this machine: for preparing work
    that other machines do (`api.submit` from a login node without GPUs)."""
    token = _CHECK_HARDWARE.set(False)
    try:
        yield
    finally:
        _CHECK_HARDWARE.reset(token)


def check_hardware(trainer: TrainerConfig) -> None:
    """An accelerator that this machine does not have (or fewer GPUs than `trainer.devices`) is known before any
    work: one line, not a crash of every run."""
    accelerator = trainer.accelerator
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if accelerator == "mps" or (accelerator == "gpu" and not cuda and mps):
        if not mps:
            raise ConfigError("trainer.accelerator=mps but this machine has no Apple GPU (MPS) available; "
                              "valid here: auto, cpu")
        count, kind = 1, "MPS device"
    else:
        if not cuda:
            raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no GPU "
                              f"(torch.cuda.is_available() is False, torch {torch.__version__}); valid here: "
                              f"auto (the CPU when there is no GPU), cpu")
        count, kind = cuda, "CUDA GPU"
    if trainer.devices > count:
        raise ConfigError(f"trainer.devices={trainer.devices} but this machine has {count} {kind}"
                          f"{'s' if count != 1 else ''}; valid: 1..{count}")


def config_hash(cfg: DictConfig) -> str:
    """A short hash of a whole composed config (for manifests: which configuration produced a directory)."""
    blob = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def dedupe_overrides(overrides: list[str]) -> list[str]:
    """Keep the last override of each key, in order (later sources win)."""
    last: dict[str, str] = {}
    for text in overrides:
        key = override_key(text)
        last.pop(key, None)
        last[key] = text
    return list(last.values())
