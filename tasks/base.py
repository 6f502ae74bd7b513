"""What a task is: a small object that makes tensors and says how to score them.

A task declares its modality, input kind (`tokens` or `continuous`), output kind (`token`: a label per position,
`sequence`: one label per example), its metric and the level at which it counts as solved, and its chance level
(so that reports can normalise across tasks). Its parameters are a dataclass, validated strictly. Its data come
from `make_split(split, n, seed)`, vectorised and deterministic in `seed`.

Targets use one convention for every task: class ids, with `IGNORE` at positions that are not scored.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import ConfigError
from models.registry import Registry, closest

TASKS: Registry = Registry("task")
IGNORE = -100  # target value of positions that are not scored (torch's cross-entropy ignore_index)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split. `inputs`: (n, time) token ids or (n, time, features) floats;
    `targets`: (n, time) per-token class ids (IGNORE where unscored) or (n,) sequence labels."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


@dataclass(frozen=True)
class Ladder:
    """A task's difficulty parameter (`key`, a field of its `Params`) and its `levels`, easiest first.

    Why: one difficulty cannot separate variants that all solve it or all fail it; MAD-lab (Poli et al. 2024)
    scores architectures over a sweep of difficulty instead. `ablation.difficulty=ladder` runs every level."""

    key: str
    levels: tuple


#: Separates a task's name from a difficulty level in a task label: `copy@length=24` is `task=copy` with
#: `task.length=24`. A label names a column of the grid and a folder of its runs.
LEVEL_MARK = "@"


def task_label(name: str, key: str | None = None, value=None) -> str:
    """`copy` or, at a level, `copy@length=24`."""
    return name if key is None else f"{name}{LEVEL_MARK}{key}={value}"


def parse_task_label(label: str) -> tuple[str, dict[str, str]]:
    """`copy@length=24` -> ("copy", {"length": "24"}); a plain name -> (name, {}). Values stay strings (they
    become the override `task.length=24`)."""
    name, mark, rest = str(label).partition(LEVEL_MARK)
    if not mark:
        return name, {}
    key, eq, value = rest.partition("=")
    if not eq or not key or not value:
        raise ConfigError(f"task label {label!r} must be <task>{LEVEL_MARK}<key>=<value>, e.g. copy@length=24")
    return name, {key: value}


class Task:
    """Base class. Subclasses set the class attributes, define `Params` and implement `make_split`."""

    modality: str = ""          # tokens, text, image, audio, video
    input_kind: str = "tokens"  # tokens | continuous
    output_kind: str = "token"  # token | sequence
    causal: bool = True         # whether the model must not read the future
    metric: str = "accuracy"
    higher_is_better: bool = True
    solved_at: float = 0.95     # metric value at which the task counts as solved
    difficulty: "Ladder | None" = None  # the parameter that makes it harder and its levels (algorithmic tasks)
    length_key: str = "length"  # the Params field that `test_length` (where a task has one) lengthens in test

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, **params):
        known = [f.name for f in dataclasses.fields(self.Params)]
        for key in params:
            if key not in known:
                raise ConfigError(f"unknown key 'task.{key}' for task {self.name}{closest(key, known)}; "
                                  f"valid: {', '.join('task.' + k for k in known) or '(none)'}")
        self.params = self.Params(**params)
        self.validate()

    @property
    def name(self) -> str:
        return self.registered_name

    def validate(self) -> None:
        """Check parameter values; raise ConfigError with one line. Subclasses extend."""

    # --- what the model needs to know -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int | None:
        """Number of input token ids (token input), else None."""
        return None

    @property
    def input_dim(self) -> int | None:
        """Features per position (continuous input), else None."""
        return None

    @property
    def n_classes(self) -> int:
        raise NotImplementedError

    def max_len(self) -> int:
        """Longest sequence of any split (learned positions must cover it)."""
        raise NotImplementedError

    @property
    def chance(self) -> float:
        """Expected metric of a model that guesses uniformly."""
        return 1.0 / self.n_classes

    def split_size(self, split: str) -> int:
        """Default number of examples in a split."""
        raise NotImplementedError

    def make_split(self, split: str, n: int, seed: int) -> Split:
        raise NotImplementedError


def split_generator(split: str, seed: int) -> torch.Generator:
    """A generator seeded by (split, seed): splits are independent streams, and each is fixed by the seed."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    return torch.Generator().manual_seed(int(seed) * len(SPLITS) + SPLITS.index(split))


def positive_int(task: str, **values) -> None:
    """Raise a one-line ConfigError unless every value is a positive integer."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"task.{key} of task {task} must be a positive integer, got {value!r}")


def check_test_length(task: str, test_length, length: int, key: str = "length") -> None:
    """Raise a one-line ConfigError unless `test_length` is 0 (the test split as training) or >= `task.<key>`.

    Why: a length-generalisation split is longer than training (Deletang et al. 2022, "Neural Networks and the
    Chomsky Hierarchy", https://arxiv.org/abs/2207.02098); a shorter one would test nothing new."""
    if isinstance(test_length, bool) or not isinstance(test_length, int) or test_length < 0:
        raise ConfigError(f"task.test_length of task {task} must be an integer >= 0 (0: task.{key}), "
                          f"got {test_length!r}")
    if 0 < test_length < length:
        raise ConfigError(f"task.test_length={test_length} of task {task} must be >= task.{key}={length} "
                          f"(or 0: the same as task.{key})")


def split_length(split: str, length: int, test_length: int) -> int:
    """The size parameter of one split: `test_length` for test when it is set (> 0), else `length`."""
    return test_length if split == "test" and test_length else length


def user_cache_dir(platform: str | None = None) -> Path:
    """The user's cache folder for the suite: `$XDG_CACHE_HOME/ablate` when that is set (an absolute path, as the
    XDG spec requires), else the platform's convention: `~/Library/Caches/ablate` on macOS,
    `%LOCALAPPDATA%\\ablate\\Cache` on Windows, `~/.cache/ablate` elsewhere. Outside the working directory, so
    that every checkout, results folder and working directory shares one cache instead of regenerating it."""
    platform = sys.platform if platform is None else platform
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "ablate"
    if platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "ablate" / "Cache"
    if platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ablate"
    return Path.home() / ".cache" / "ablate"


def cache_dir() -> Path:
    """Where costly generated data are cached: `$ABLATE_CACHE` if set, else `user_cache_dir()`. Files in it are
    named by the task's parameters, so a changed parameter never reads a stale file."""
    path = Path(os.environ.get("ABLATE_CACHE") or user_cache_dir())
    path.mkdir(parents=True, exist_ok=True)
    return path
