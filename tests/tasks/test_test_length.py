"""`task.test_length` of the transduction tasks (copy, reverse, sort): a longer test split, as parity has.

Each split must still follow its task's definition at its own length (checked against slow references), train
and val must be untouched by the option, and the default (0) must leave every split exactly as before."""

import pytest
import torch

from models import ModelConfig, build_model
from models.errors import ConfigError
from tasks import IGNORE, TASKS

NAMES = ["copy", "reverse", "sort"]
ANSWERS = {"copy": lambda s: list(s), "reverse": lambda s: list(reversed(s)), "sort": sorted}


def make(name, **params):
    return TASKS.get(name)(**params)


@pytest.mark.parametrize("name", NAMES)
def test_the_test_split_is_longer_and_still_correct(name):
    task = make(name, length=6, test_length=11, vocab=5)
    train, val, test = (task.make_split(s, 40, seed=3) for s in ("train", "val", "test"))
    assert train.inputs.shape[1] == val.inputs.shape[1] == 2 * 6
    assert test.inputs.shape == test.targets.shape == (40, 2 * 11)
    assert task.max_len() == 2 * 11 >= test.inputs.shape[1]
    for data, length in ((train, 6), (val, 6), (test, 11)):
        for row_in, row_target in zip(data.inputs.tolist(), data.targets.tolist()):
            source = row_in[:length]
            answer = ANSWERS[name](source)
            assert row_in == source + [5] + answer[:-1]
            assert row_target == [IGNORE] * length + answer


@pytest.mark.parametrize("name", NAMES)
def test_the_default_changes_nothing(name):
    """test_length=0 (the default) and test_length=length give the splits of a task without the option."""
    default = make(name)
    length = default.params.length
    assert default.params.test_length == 0 and default.max_len() == 2 * length
    same = make(name, test_length=length)
    for split in ("train", "val", "test"):
        a, b = default.make_split(split, 20, seed=0), same.make_split(split, 20, seed=0)
        assert a.inputs.shape[1] == 2 * length
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("name", NAMES)
def test_train_and_val_do_not_depend_on_test_length(name):
    short, long = make(name, length=5), make(name, length=5, test_length=9)
    for split in ("train", "val"):
        a, b = short.make_split(split, 20, seed=1), long.make_split(split, 20, seed=1)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [3, -1, 2.5, True, "12"])
def test_bad_test_lengths_are_one_line_errors(name, value):
    with pytest.raises(ConfigError, match=f"task.test_length.* of task {name}"):
        make(name, length=4, test_length=value)


def test_a_model_sized_by_max_len_reads_the_longer_test_split():
    """The learned position table covers the test length, so evaluation runs (its positions beyond training are
    simply untrained: that is what the split measures)."""
    task = make("copy", length=4, test_length=10)
    model = build_model(ModelConfig(d_model=16, n_heads=2, d_ff=32), vocab_size=task.vocab_size,
                        out_dim=task.n_classes, max_len=task.max_len())
    test = task.make_split("test", 3, seed=0)
    assert model(test.inputs).shape == (3, 20, task.n_classes)
