"""`task.test_length` of copy, reverse, sort, addition, dyck, induction and selective_copy: a longer test split.

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


# --- addition, dyck, induction, selective_copy: the same option, each split checked by a slow reference ---------

def _addition_reference(row, d, reversed_):
    a = int("".join(map(str, row[:d])))
    b = int("".join(map(str, row[d + 1:2 * d + 1])))
    digits = [int(c) for c in str(a + b).zfill(d + 1)]
    return digits[::-1] if reversed_ else digits


def _balanced(tokens, k):
    stack = []
    for t in tokens:
        if t < k:
            stack.append(t)
        elif not stack or stack.pop() != t - k:
            return False
    return not stack


def _induction_reference(row):
    """Per position j: the token after the earlier occurrence of row[j] (IGNORE where there is none)."""
    out = []
    for j, token in enumerate(row):
        earlier = [i for i in range(j) if row[i] == token]
        out.append(row[earlier[-1] + 1] if earlier else IGNORE)
    return out


@pytest.mark.parametrize("reversed_", [True, False])
def test_addition_test_operands_are_longer_and_sums_still_right(reversed_):
    task = make("addition", n_digits=3, test_length=7, reversed=reversed_)
    assert task.max_len() == 3 * 7 + 2
    for split, d in (("train", 3), ("val", 3), ("test", 7)):
        data = task.make_split(split, 30, seed=2)
        assert data.inputs.shape == (30, 3 * d + 2)
        for row, target in zip(data.inputs.tolist(), data.targets.tolist()):
            answer = _addition_reference(row, d, reversed_)
            assert row[d] == 10 and row[2 * d + 1] == 11 and row[2 * d + 2:] == answer[:-1]
            assert target == [IGNORE] * (2 * d + 1) + answer


def test_dyck_test_strings_are_longer_and_labels_still_exact():
    task = make("dyck", length=6, test_length=14, n_types=2)
    assert task.max_len() == 14
    for split, length in (("train", 6), ("val", 6), ("test", 14)):
        data = task.make_split(split, 200, seed=1)
        assert data.inputs.shape == (200, length)
        labels = [int(_balanced(row, 2)) for row in data.inputs.tolist()]
        assert data.targets.tolist() == labels
        assert 0.3 < sum(labels) / len(labels) < 0.7


def test_induction_test_rows_are_longer_and_targets_are_the_earlier_continuation():
    task = make("induction", length=6, min_length=4, vocab=16, test_length=12)
    assert task.max_len() == 24
    periods = set()
    for split, length in (("train", 6), ("val", 6), ("test", 12)):
        data = task.make_split(split, 40, seed=0)
        assert data.inputs.shape == data.targets.shape == (40, 2 * length)
        for row, target in zip(data.inputs.tolist(), data.targets.tolist()):
            reference = _induction_reference(row)
            assert target == reference  # scored exactly where the token occurred before, with what followed it
            if split == "test":
                periods.add(target.index(next(t for t in target if t != IGNORE)))
    assert max(periods) > 6  # some test periods are longer than any trained one


def test_selective_copy_test_streams_are_longer_and_copies_still_right():
    task = make("selective_copy", length=10, n_content=4, vocab=5, test_length=25)
    assert task.max_len() == 25 + 4
    for split, length in (("train", 10), ("val", 10), ("test", 25)):
        data = task.make_split(split, 30, seed=4)
        assert data.inputs.shape == (30, length + 4)
        for row, target in zip(data.inputs.tolist(), data.targets.tolist()):
            content = [t for t in row[:length] if t != task.noise]
            assert len(content) == 4 and row[length] == task.sep and row[length + 1:] == content[:-1]
            assert target == [IGNORE] * length + content


NEW = {"addition": "n_digits", "dyck": "length", "induction": "length", "selective_copy": "length"}
SMALL = {"addition": dict(n_digits=3), "dyck": dict(length=6), "induction": dict(length=6, min_length=3, vocab=12),
         "selective_copy": dict(length=8, n_content=3)}


@pytest.mark.parametrize("name", sorted(NEW))
def test_the_default_leaves_every_split_as_before(name):
    """0 and the training size itself give identical splits; train and val never depend on the option."""
    key, params = NEW[name], SMALL[name]
    default, same = make(name, **params), make(name, **params, test_length=params[key])
    longer = make(name, **params, test_length=params[key] + 4)
    assert default.params.test_length == 0 and default.max_len() == same.max_len() < longer.max_len()
    for split in ("train", "val", "test"):
        a, b, c = (t.make_split(split, 20, seed=5) for t in (default, same, longer))
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        if split != "test":
            assert torch.equal(a.inputs, c.inputs) and torch.equal(a.targets, c.targets)
        else:
            assert c.inputs.shape[1] > a.inputs.shape[1]


@pytest.mark.parametrize("name", sorted(NEW))
@pytest.mark.parametrize("value", [-1, 2.5, True, "12", 1])
def test_bad_test_lengths_of_the_new_tasks_are_one_line_errors(name, value):
    with pytest.raises(ConfigError, match=f"task.test_length.* of task {name}") as info:
        make(name, **SMALL[name], test_length=value)
    assert "\n" not in str(info.value)


def test_dyck_test_length_must_be_even_and_induction_vocab_must_cover_it():
    with pytest.raises(ConfigError, match="task.test_length=9 of task dyck must be even"):
        make("dyck", length=6, test_length=9)
    with pytest.raises(ConfigError, match="task.vocab=12 of task induction must be >= task.test_length=13"):
        make("induction", length=6, vocab=12, test_length=13)
