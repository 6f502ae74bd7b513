"""tasks/base.py: the contract every registered task honours (parametrised over TASKS, so new tasks are covered)."""

import dataclasses

import pytest
import torch

from ablations.module import batch_scores
from models import ModelConfig, build_model
from models.errors import ConfigError
from tasks import IGNORE, TASKS
from tasks.base import SPLITS, Split, positive_int, split_generator

NAMES = TASKS.names()


def make(name):
    return TASKS.get(name)()


def small_n(task, split):
    return min(40, task.split_size(split))


def test_registry_holds_the_shipped_tasks():
    assert {"copy", "digits"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_task_name_is_its_registered_name(name):
    assert make(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_declared_kinds_are_valid(name):
    task = make(name)
    assert task.input_kind in ("tokens", "continuous")
    assert task.output_kind in ("token", "sequence")
    assert isinstance(task.causal, bool)
    assert task.modality
    assert 0 < task.chance < 1 and task.chance == pytest.approx(1 / task.n_classes)
    if task.input_kind == "tokens":
        assert task.vocab_size and task.input_dim is None
    else:
        assert task.input_dim and task.vocab_size is None


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_tensors(name, split):
    task = make(name)
    n = small_n(task, split)
    a, b = task.make_split(split, n, seed=3), make(name).make_split(split, n, seed=3)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert len(a) == n


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_change_the_training_data(name):
    task = make(name)
    n = small_n(task, "train")
    assert not torch.equal(task.make_split("train", n, seed=0).inputs, task.make_split("train", n, seed=1).inputs)


@pytest.mark.parametrize("name", NAMES)
def test_splits_differ(name):
    task = make(name)
    n = min(small_n(task, split) for split in SPLITS)
    data = {split: task.make_split(split, n, seed=0).inputs for split in SPLITS}
    assert not torch.equal(data["train"], data["val"])
    assert not torch.equal(data["train"], data["test"])
    assert not torch.equal(data["val"], data["test"])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_tensors_follow_the_declared_layout(name, split):
    task = make(name)
    n = small_n(task, split)
    data = task.make_split(split, n, seed=0)
    assert isinstance(data, Split)
    time = data.inputs.shape[1]
    assert 0 < time <= task.max_len()
    if task.input_kind == "tokens":
        assert data.inputs.dtype == torch.long and data.inputs.dim() == 2
        assert data.inputs.min() >= 0 and data.inputs.max() < task.vocab_size
    else:
        assert data.inputs.is_floating_point() and data.inputs.shape == (n, time, task.input_dim)
        assert torch.isfinite(data.inputs).all()
    assert data.targets.dtype == torch.long
    if task.output_kind == "token":
        assert data.targets.shape == (n, time)
    else:
        assert data.targets.shape == (n,)
    scored = data.targets[data.targets != IGNORE]
    assert scored.numel() > 0
    assert scored.min() >= 0 and scored.max() < task.n_classes


@pytest.mark.parametrize("name", NAMES)
def test_a_model_built_from_the_task_description_fits_its_data(name):
    task = make(name)
    data = task.make_split("val", 8, seed=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32), vocab_size=task.vocab_size,
                        input_dim=task.input_dim, out_dim=task.n_classes, causal=task.causal,
                        head="token" if task.output_kind == "token" else "mean", max_len=task.max_len())
    loss_sum, correct, count = batch_scores(model(data.inputs), data.targets)
    assert torch.isfinite(loss_sum)
    assert count == (data.targets != IGNORE).sum()
    assert 0 <= correct <= count


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_names_the_closest(name):
    task_cls = TASKS.get(name)
    fields = [f.name for f in dataclasses.fields(task_cls.Params)]
    assert fields, "every task has parameters"
    with pytest.raises(ConfigError) as info:
        task_cls(**{fields[0] + "x": 1})
    message = str(info.value)
    assert f"'task.{fields[0]}x'" in message and name in message
    assert f"(did you mean '{fields[0]}'?)" in message
    for field in fields:
        assert f"task.{field}" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", NAMES)
def test_unknown_split_is_rejected(name):
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        make(name).make_split("training", 4, seed=0)


def test_split_generator_streams_are_distinct_and_fixed():
    def draw(split, seed):
        return torch.randint(0, 1000, (20,), generator=split_generator(split, seed))

    assert torch.equal(draw("train", 5), draw("train", 5))
    streams = [draw(split, seed) for seed in range(4) for split in SPLITS]
    for i in range(len(streams)):
        for j in range(i + 1, len(streams)):
            assert not torch.equal(streams[i], streams[j])


def test_split_generator_rejects_unknown_split():
    with pytest.raises(ConfigError, match="valid: train, val, test"):
        split_generator("dev", 0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_positive_int_rejects(value):
    with pytest.raises(ConfigError) as info:
        positive_int("copy", ok=3, length=value)
    assert "task.length of task copy" in str(info.value)


def test_positive_int_accepts():
    positive_int("copy", length=1, vocab=10)
