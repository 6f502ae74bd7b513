"""Expanding an ablation into its grid of runs: variants x tasks x seeds.

An ablation (conf/ablation/<name>.yaml) names a baseline variant and every variant as a list of overrides on
top of the base config. A cell's overrides are applied in this order, later ones winning: the ablation's own
shared `overrides` (its defaults, e.g. a budget), the user's command-line overrides, then the cell's task and
seed, then the variant's own overrides (they define it). `cell_overrides` builds that list.

An ablation may instead (or as well) name a component `kind` (`kind: attention`): it then holds one variant per
registered name of that kind, `<name>: [model.<kind>=<name>]`, plus the overrides its optional `extra` mapping
lists for that name (a local attention's window). Why: a variant a plugin registers joins its kind's ablation
without anyone editing a file (../shared/DESIGN.md, Plugins). `baseline` names the one equal to the model config's
value (the catalogue writes `baseline: ${model.<kind>}`).

`match` (none, params, flops) matches every variant's budget to the baseline's (ablations/config/matching.py);
`difficulty: ladder` runs each task with a difficulty ladder (`Task.difficulty`) at every level, as a task label
`copy@length=24` (tasks/base.py), which a user may also write in `tasks:` directly.

`seeds` is a list of seeds, or `auto`: seeds chosen by data (ablations/analyse/sequential.py). Every cell then
starts with `min_seeds` seeds, and the cells still undecided get `seed_step` more at each look, up to `max_seeds`.
Those three keys have their defaults here (`SEED_DEFAULTS`), not in each ablation file, and apply only with
`seeds: auto`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import parse_task_label, task_label

#: A name that becomes a folder (`<out>/runs/<variant>/<task>/`, `<out>/<part>/`, `results/<ablation>`) and a part
#: of a study name: letters, digits and `_ . + -`, not starting with a dot (no `..`, no hidden folder), no
#: separators or NUL bytes, at most 100 characters.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
VALID_NAME = "letters, digits and _ . + - (not starting with . or -, no / or .., at most 100 characters)"

AUTO = "auto"  # `seeds: auto`: seeds chosen by data
ALL = "all"  # `tasks: all`: every registered task
#: the defaults of `seeds: auto`: 3 seeds per side at the first look (2 is the least a test needs, 3 leaves a
#: Welch test about 4 degrees of freedom), 2 more per look for the undecided cells, at most 8
SEED_DEFAULTS = {"min_seeds": 3, "seed_step": 2, "max_seeds": 8}
#: the lowest value of each: a cell is tested only with 2 runs a side; a step adds at least one seed
SEED_MINIMA = {"min_seeds": 2, "seed_step": 1, "max_seeds": 2}
#: the most seeds `auto` may use: tuning trials use seeds 1000 and up (ablations/execute/worker.py), never a
#: reported seed
SEED_LIMIT = 1000
#: `ablation.match`: whose budget each variant's is made equal to the baseline's (ablations/config/matching.py)
MATCHES = ("none", "params", "flops")
#: `ablation.difficulty`: each task at its default level, or at every level of its ladder
DIFFICULTIES = ("default", "ladder")
#: the schema keys that have their defaults here, not in every ablation file (see `seed_keys`)
SCHEMA_DEFAULT_KEYS = (*SEED_DEFAULTS, "match", "difficulty")


def kind_registries() -> dict:
    """What `kind:` may name: every component registry (models.components.REGISTRIES) and the init schemes."""
    from models.components import INIT, REGISTRIES

    return {**REGISTRIES, "init": INIT}


def check_name(kind: str, name, where: str = "") -> str:
    """`name` if it may become a folder name; else a one-line `ConfigError` saying what a valid one is."""
    text = name if isinstance(name, str) else str(name)
    if isinstance(name, bool) or name is None or not NAME.fullmatch(text) or ".." in text:
        raise ConfigError(f"{where}{kind} name {text!r} cannot be used: it becomes a folder name; valid names are "
                          f"{VALID_NAME}, e.g. no_residual")
    return text


def check_task(label, where: str = "") -> str:
    """`label` if it names a registered task, plain (`copy`) or at a level (`copy@length=24`, a parameter of the
    task's `Params`); else a one-line `ConfigError`. The label becomes a folder name (`runs/<variant>/<label>/`)."""
    text = label if isinstance(label, str) else str(label)
    name, level = parse_task_label(text)
    check_name("task", name, where)
    task = TASKS.get(name)
    known = [f.name for f in dataclasses.fields(task.Params)]
    for key, value in level.items():
        if key not in known:
            raise ConfigError(f"{where}task label {text!r}: task {name} has no parameter '{key}'; valid: "
                              f"{', '.join(known) or '(none)'}")
        if not NAME.fullmatch(value) or ".." in value or len(text) > 100:
            raise ConfigError(f"{where}task label {text!r} cannot be used: it becomes a folder name; its value must "
                              f"be {VALID_NAME}")
    return text


def task_name(label: str) -> str:
    """The registered task a label names: `copy@length=24` -> `copy` (a plain name is itself)."""
    return parse_task_label(label)[0]


def task_overrides(label: str) -> list[str]:
    """A label as overrides: `copy@length=24` -> [task=copy, ++task.length=24] (`++`: a task file need not
    restate a parameter's code default; the task itself rejects an unknown one)."""
    name, level = parse_task_label(label)
    return [f"task={name}", *(f"++task.{key}={value}" for key, value in level.items())]


def ladder_labels(label: str) -> tuple[str, ...]:
    """Every level of the task's ladder as labels, easiest first; a label already at a level, or a task with no
    ladder, stays as it is."""
    name, level = parse_task_label(label)
    ladder = None if level else getattr(TASKS.get(name), "difficulty", None)
    return (label,) if ladder is None else tuple(task_label(name, ladder.key, value) for value in ladder.levels)


@dataclass(frozen=True)
class Cell:
    variant: str
    task: str
    seed: int
    overrides: tuple[str, ...]  # the variant's own overrides

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.task}/s{self.seed}"


@dataclass(frozen=True)
class Ablation:
    name: str
    description: str
    baseline: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: dict[str, tuple[str, ...]]
    sweep: str | None = None  # the sweep profile to run with when the command line names none
    overrides: tuple[str, ...] = ()  # every cell's defaults: the command line overrides them, the variant's own win
    # `seeds: auto` only (None: the default of SEED_DEFAULTS; kept None so that a manifest records what was set)
    min_seeds: int | None = None
    max_seeds: int | None = None
    seed_step: int | None = None
    match: str = "none"  # MATCHES: the budget every variant's is matched to the baseline's
    difficulty: str = "default"  # DIFFICULTIES: `ladder` runs every level of each task's ladder
    kind: str | None = None  # the component kind whose every registered name is a variant

    def task_labels(self, tasks) -> tuple[str, ...]:
        """`tasks` (labels) as the cells run them: with `difficulty: ladder` each expanded into its levels."""
        labels = [check_task(t, f"ablation {self.name}: ") for t in tasks]
        if self.difficulty == "ladder":
            labels = [level for t in labels for level in ladder_labels(t)]
        return tuple(dict.fromkeys(labels))

    @property
    def adaptive(self) -> bool:
        """Whether the seeds are chosen by data (`seeds: auto`)."""
        return self.seeds == AUTO

    @property
    def seed_plan(self) -> tuple[int, int, int]:
        """(min_seeds, seed_step, max_seeds) of `seeds: auto`, defaults filled in."""
        return tuple(SEED_DEFAULTS[k] if getattr(self, k) is None else getattr(self, k)
                     for k in ("min_seeds", "seed_step", "max_seeds"))

    @property
    def initial_seeds(self) -> tuple[int, ...]:
        """The seeds every cell runs: the listed ones, or the first look's of `seeds: auto`."""
        return tuple(range(self.seed_plan[0])) if self.adaptive else tuple(self.seeds)

    @classmethod
    def from_dict(cls, data: dict) -> "Ablation":
        """A plain ablation; see `Suite.from_dict` for an ablation made of parts."""
        known = ("name", "description", "baseline", "tasks", "seeds", "variants", "sweep", "overrides",
                 *SEED_DEFAULTS, "match", "difficulty", "kind", "extra")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown ablation key 'ablation.{unknown[0]}'; valid: "
                              f"{', '.join('ablation.' + k for k in known)}")
        data = dict(data)
        if data.get("kind") not in (None, ""):
            data["variants"] = _kind_variants(data)
        missing = [k for k in ("name", "baseline", "tasks", "seeds", "variants") if data.get(k) in (None, "")]
        if missing:
            raise ConfigError(f"ablation {data.get('name', '?')} needs 'ablation.{missing[0]}'; required: "
                              f"name, baseline, tasks, seeds, variants")
        name = check_name("ablation", data["name"])
        tasks, seeds, variants = data["tasks"], data["seeds"], data["variants"]
        if tasks == ALL:  # every registered task, a plugin's too
            tasks = TASKS.names()
        if not _is_list(tasks):
            raise ConfigError(f"ablation {name}: tasks must be a list or all (every registered task), e.g. tasks: "
                              f"[copy, copy@length=24]")
        if not _is_list(seeds) and seeds != AUTO:
            raise ConfigError(f"ablation {name}: ablation.seeds must be a list of seeds or auto (chosen by data, up "
                              f"to ablation.max_seeds), e.g. seeds: [0, 1, 2] or seeds: auto; got {seeds!r}")
        if not hasattr(variants, "items"):
            raise ConfigError(f"ablation {name}: variants must map each name to a list of overrides, "
                              f"e.g. no_residual: [model.residual=none]")
        for variant, overrides in variants.items():
            check_name("variant", variant, f"ablation {name}: ")
            if overrides is not None and (not _is_list(overrides) or not all(isinstance(o, str) for o in overrides)):
                raise ConfigError(f"ablation {name}: variant '{variant}' must be a list of overrides, "
                                  f"e.g. [model.residual=none], got {overrides!r}")
        match = _choice(name, "match", data.get("match"), MATCHES)
        difficulty = _choice(name, "difficulty", data.get("difficulty"), DIFFICULTIES)
        kind = str(data["kind"]) if data.get("kind") not in (None, "") else None
        description = str(data.get("description") or "") or (
            f"Every registered {kind} variant against {data['baseline']}." if kind else "")
        ablation = cls(name=name, description=description, baseline=str(data["baseline"]),
                       tasks=tuple(tasks), seeds=AUTO if seeds == AUTO else tuple(seeds), match=match,
                       difficulty=difficulty, kind=kind,
                       variants={str(k): tuple(v or ()) for k, v in variants.items()},
                       sweep=_sweep_name(name, data.get("sweep")), overrides=_overrides(name, data.get("overrides")),
                       **_seed_plan(name, data, adaptive=seeds == AUTO))
        if ablation.baseline not in ablation.variants:
            raise ConfigError(f"ablation {name}: baseline '{ablation.baseline}' is not one of its "
                              f"variants; valid: {', '.join(ablation.variants)}")
        ablation = dataclasses.replace(ablation, tasks=ablation.task_labels(ablation.tasks))
        for seed in ablation.initial_seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(f"ablation {name}: seeds must be non-negative integers, got {seed!r}")
        if not ablation.tasks or not ablation.seeds:
            raise ConfigError(f"ablation {name}: needs at least one task and one seed")
        return ablation

    def cells(self, tasks: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        """The grid, baseline first; `tasks`/`seeds` replace the ablation's own (from `task=`/`seed=`)."""
        order = [self.baseline] + [v for v in self.variants if v != self.baseline]
        labels = self.task_labels(tasks) if tasks else self.tasks
        return [Cell(variant, task, seed, self.variants[variant])
                for task in labels for seed in (seeds or self.initial_seeds) for variant in order]


#: what a suite's combined report can be (`report:` in its file): an index of its parts, or the claims report
SUITE_REPORTS = ("parts", "claims")


@dataclass(frozen=True)
class Suite:
    """An ablation made of parts, each a plain ablation with its own variants, tasks, seeds and sweep profile.

    Why: one question can need several grids that do not share a cross product (the claims ablation sweeps depth
    on one task, removes components on another and covers every modality with the baseline alone). Each part
    runs into `<out>/<part>/` as if it were its own `ablate run`, with its own runs.csv, study and report; the
    suite then writes one combined report (`report: parts` an index, `report: claims` the claims report).
    """

    name: str
    description: str
    parts: dict[str, Ablation]
    report: str = "parts"

    @classmethod
    def from_dict(cls, data: dict) -> "Suite":
        known = ("name", "description", "sweep", "parts", "report", "match", "difficulty")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown key 'ablation.{unknown[0]}' in an ablation with parts; valid: "
                              f"{', '.join('ablation.' + k for k in known)}")
        name = str(data.get("name") or "")
        if name:
            check_name("ablation", name)
        parts = data.get("parts")
        if not name or not hasattr(parts, "items") or not parts:
            raise ConfigError(f"ablation {name or '?'}: `parts` must map each part's name to an ablation (baseline, "
                              f"tasks, seeds, variants)")
        report = str(data.get("report") or "parts")
        if report not in SUITE_REPORTS:
            raise ConfigError(f"ablation {name}: unknown report '{report}'; valid: {', '.join(SUITE_REPORTS)}")
        built = {}
        for part, spec in parts.items():
            check_name("part", part, f"ablation {name}: ")
            if not hasattr(spec, "items"):
                raise ConfigError(f"ablation {name}: part '{part}' must be an ablation (baseline, tasks, seeds, "
                                  f"variants)")
            # the suite's sweep, match and difficulty are each part's unless the part sets its own
            shared = {k: data[k] for k in ("match", "difficulty") if data.get(k) is not None}
            spec = {"name": f"{name}-{part}", "sweep": data.get("sweep"), **shared, **dict(spec)}
            built[str(part)] = Ablation.from_dict(spec)
        return cls(name=name, description=str(data.get("description") or ""), parts=built, report=report)


def load_ablation(data: dict) -> "Ablation | Suite":
    """An ablation file's content: a plain ablation, or a suite when it has `parts`."""
    return Suite.from_dict(data) if "parts" in data else Ablation.from_dict(data)


def cell_overrides(ablation: Ablation, user: list[str], cell: Cell) -> list[str]:
    """Everything a cell's config is composed from, in order (see the module docstring)."""
    from ablations.config import dedupe_overrides

    return dedupe_overrides([*ablation.overrides, *user, *task_overrides(cell.task), f"seed={cell.seed}",
                             *cell.overrides])


def _kind_variants(data: dict) -> dict:
    """The variants of `kind: <kind>`: one per registered name, `<name>: [model.<kind>=<name>, *extra[name]]`,
    then the file's own `variants` (they may add variants or replace a generated one)."""
    name = data.get("name", "?")
    registries = kind_registries()
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in registries:
        raise ConfigError(f"ablation {name}: unknown ablation.kind {kind!r}; valid: {', '.join(registries)}")
    registry = registries[kind]
    extra = data.get("extra") or {}
    if not hasattr(extra, "items"):
        raise ConfigError(f"ablation {name}: ablation.extra must map a {kind} name to a list of overrides, e.g. "
                          f"local: [+model.options.local.window=8]")
    for variant, overrides in extra.items():
        if variant not in registry:
            raise ConfigError(f"ablation {name}: ablation.extra names {kind} '{variant}', which is not registered; "
                              f"valid: {', '.join(registry.names())}")
        if not _is_list(overrides) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"ablation {name}: ablation.extra.{variant} must be a list of overrides, e.g. "
                              f"[+model.options.local.window=8], got {overrides!r}")
    own = data.get("variants") or {}
    if not hasattr(own, "items"):
        raise ConfigError(f"ablation {name}: variants must map each name to a list of overrides, "
                          f"e.g. no_residual: [model.residual=none]")
    generated = {n: [f"model.{kind}={n}", *extra.get(n, ())] for n in registry.names()}
    return {**generated, **own}


def _choice(ablation: str, key: str, value, valid: tuple[str, ...]) -> str:
    """`value` of `ablation.<key>` (its first valid choice when unset), one of `valid`."""
    if value in (None, ""):
        return valid[0]
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"ablation {ablation}: unknown ablation.{key} {value!r}; valid: {', '.join(valid)}")
    return value


def _seed_plan(ablation: str, data: dict, *, adaptive: bool) -> dict:
    """min_seeds, seed_step and max_seeds as given (None where not), each checked; with a list of seeds none may
    be given (it would be silently ignored), with `auto` max_seeds must reach min_seeds."""
    given = {k: data.get(k) for k in SEED_DEFAULTS}
    for key, value in given.items():
        if value is None:
            continue
        if not adaptive:
            raise ConfigError(f"ablation {ablation}: ablation.{key} applies only with ablation.seeds=auto (seeds "
                              f"chosen by data); set ablation.seeds=auto or drop ablation.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or not SEED_MINIMA[key] <= value <= SEED_LIMIT:
            raise ConfigError(f"ablation {ablation}: ablation.{key} must be an integer from {SEED_MINIMA[key]} to "
                              f"{SEED_LIMIT}, got {value!r}")
    if adaptive:
        low = SEED_DEFAULTS["min_seeds"] if given["min_seeds"] is None else given["min_seeds"]
        high = SEED_DEFAULTS["max_seeds"] if given["max_seeds"] is None else given["max_seeds"]
        if high < low:
            raise ConfigError(f"ablation {ablation}: ablation.seeds=auto needs ablation.max_seeds >= "
                              f"ablation.min_seeds, got max_seeds={high} and min_seeds={low}; valid: max_seeds "
                              f"from {low} to {SEED_LIMIT}, or a lower min_seeds (at least {SEED_MINIMA['min_seeds']})")
    return given


def _overrides(ablation: str, value) -> tuple[str, ...]:
    if value is None:
        return ()
    if not _is_list(value) or not all(isinstance(o, str) for o in value):
        raise ConfigError(f"ablation {ablation}: overrides must be a list such as [trainer.max_steps=400], "
                          f"got {value!r}")
    return tuple(value)


def _sweep_name(ablation: str, value) -> str | None:
    if value in (None, ""):
        return None
    from ablations.config import group_options

    if str(value) not in group_options("sweep"):
        raise ConfigError(f"ablation {ablation}: unknown sweep profile '{value}'; valid: "
                          f"{', '.join(group_options('sweep'))}")
    return str(value)


def _is_list(value) -> bool:
    """A YAML list (plain or an OmegaConf ListConfig), not a string."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") and not hasattr(value, "items")


def seed_keys(overrides: list[str]) -> list[str]:
    """`ablation.max_seeds=4` (and min_seeds, seed_step, match, difficulty, also of a part:
    `ablation.parts.<p>.max_seeds=4`) as `++ablation.max_seeds=4`. Why: these keys of `seeds: auto` have their defaults in the ablation schema
    (ablations/config/ablation.py, SEED_DEFAULTS), not in every ablation file (a user's own need not name them),
    and Hydra refuses to assign a key its file lacks; `++` sets it whether the file has it or not."""
    import re

    from ablations.config import parse_overrides

    pattern = re.compile(rf"ablation\.(parts\.[^.]+\.)?({'|'.join(SCHEMA_DEFAULT_KEYS)})")
    out = []
    for text in overrides:
        parsed = parse_overrides([text])[0]
        plain = not (parsed.is_add() or parsed.is_force_add() or parsed.is_delete())
        out.append(f"++{text}" if plain and pattern.fullmatch(parsed.key_or_group) else text)
    return out
