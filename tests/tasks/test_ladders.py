"""Difficulty ladders (`Task.difficulty`): every algorithmic task declares the parameter that makes it harder and
its levels, easiest first; every level must be a valid task that makes data, and the default level sits on it."""

import dataclasses

import pytest
import yaml

from ablations.config import conf_dir
from tasks import TASKS
from tasks.base import Ladder, parse_task_label, task_label

ALGORITHMIC = ["addition", "assoc_recall", "copy", "dyck", "induction", "listops", "markov", "modular_add",
               "parity", "permutation", "reverse", "selective_copy", "sort"]


def stated(name):
    """What the task's file sets (beside its name): the levels are applied over it, as `task.<key>=<level>`."""
    data = yaml.safe_load((conf_dir() / "task" / f"{name}.yaml").read_text())["task"]
    return {k: v for k, v in data.items() if k != "name"}


def default_level(name):
    """The level a plain `task=<name>` runs at: its file's value, else its Params default."""
    cls = TASKS.get(name)
    key = cls.difficulty.key
    fields = {f.name: f.default for f in dataclasses.fields(cls.Params)}
    return stated(name).get(key, fields[key])


@pytest.mark.parametrize("name", ALGORITHMIC)
def test_every_algorithmic_task_declares_a_ladder_on_one_of_its_parameters(name):
    ladder = TASKS.get(name).difficulty
    assert isinstance(ladder, Ladder)
    assert ladder.key in {f.name for f in dataclasses.fields(TASKS.get(name).Params)}
    assert len(ladder.levels) >= 3 and len(set(ladder.levels)) == len(ladder.levels)
    assert default_level(name) in ladder.levels, "the default level must be a rung of the ladder"


@pytest.mark.parametrize("name", ALGORITHMIC)
def test_every_level_builds_and_makes_a_split(name):
    cls = TASKS.get(name)
    key = cls.difficulty.key
    lengths = []
    for level in cls.difficulty.levels:
        task = cls(**{**stated(name), key: level})
        for split in ("train", "test"):
            data = task.make_split(split, 8, seed=0)
            assert len(data) == 8 and data.inputs.shape[1] <= task.max_len()
        lengths.append(data.inputs.shape[1])
        # its label round-trips to the override the ablation expansion applies
        assert parse_task_label(task_label(name, key, level)) == (name, {key: str(level)})
    if key in ("length", "n_digits", "n_pairs", "max_depth"):
        assert lengths == sorted(lengths), "levels must go easiest (shortest) first"


def test_tasks_without_a_natural_difficulty_declare_none():
    for name in TASKS.names():
        if name not in ALGORITHMIC:
            assert TASKS.get(name).difficulty is None, name
