"""tasks/copy.py: the copy task's layout, targets and determinism, against a slow reference."""

import pytest
import torch

from ablations.execute.module import batch_scores
from models.errors import ConfigError
from tasks import IGNORE, TASKS
from tasks.base import SPLITS


def copy_task(**params):
    return TASKS.get("copy")(**params)


def reference(source_rows, vocab):
    """The documented layout, built with plain loops: `s_1..s_L SEP s_1..s_{L-1}`, targets IGNORE x L then s."""
    inputs, targets = [], []
    for source in source_rows:
        length = len(source)
        row_in = [s for s in source] + [vocab] + [source[i] for i in range(length - 1)]
        row_target = [IGNORE for _ in range(length)] + [s for s in source]
        inputs.append(row_in)
        targets.append(row_target)
    return inputs, targets


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("length,vocab", [(12, 10), (1, 3), (5, 2)])
def test_layout_matches_the_reference(split, length, vocab):
    task = copy_task(length=length, vocab=vocab)
    data = task.make_split(split, 30, seed=7)
    sources = [row[:length] for row in data.inputs.tolist()]
    for source in sources:
        assert all(0 <= s < vocab for s in source)  # the separator id never appears in the source
    ref_inputs, ref_targets = reference(sources, vocab)
    assert data.inputs.tolist() == ref_inputs
    assert data.targets.tolist() == ref_targets


def test_scored_positions_predict_the_next_input_token():
    task = copy_task(length=6, vocab=5)
    data = task.make_split("train", 20, seed=0)
    L = 6
    for row_in, row_target in zip(data.inputs.tolist(), data.targets.tolist()):
        assert len(row_in) == len(row_target) == 2 * L
        assert row_in[L] == 5  # the separator
        for j in range(2 * L):
            if j < L:
                assert row_target[j] == IGNORE
            elif j < 2 * L - 1:
                assert row_target[j] == row_in[j + 1]   # teacher forcing: the target is the next input
                assert row_target[j] == row_in[j - L]   # ... which is the token L positions back
            else:
                assert row_target[j] == row_in[L - 1]   # the last target is the last source token


def test_sources_are_not_degenerate():
    data = copy_task(length=12, vocab=10).make_split("train", 200, seed=0)
    source = data.inputs[:, :12]
    assert set(source.unique().tolist()) == set(range(10))
    assert len({tuple(row) for row in source.tolist()}) == 200


def test_a_copying_oracle_scores_perfectly_and_a_shifted_one_does_not():
    L, vocab = 8, 10
    data = copy_task(length=L, vocab=vocab).make_split("test", 64, seed=0)
    n, time = data.inputs.shape

    def oracle(shift):
        logits = torch.zeros(n, time, vocab + 1)  # + the separator, which a shifted oracle may predict
        for j in range(L, time):
            logits[torch.arange(n), j, data.inputs[:, j - shift]] = 1.0
        return logits

    _, correct, count = batch_scores(oracle(L), data.targets)
    assert count == n * L and correct == count
    _, correct, _ = batch_scores(oracle(L - 1), data.targets)
    assert correct < count / 2


def test_different_seeds_give_different_data_in_every_split():
    task = copy_task()
    for split in SPLITS:
        assert not torch.equal(task.make_split(split, 50, 0).inputs, task.make_split(split, 50, 1).inputs)


def test_a_longer_split_extends_a_shorter_one():
    # one generator stream per (split, seed): asking for more examples does not reshuffle the first ones
    task = copy_task()
    small, large = task.make_split("val", 10, 0), task.make_split("val", 30, 0)
    assert torch.equal(large.inputs[:10], small.inputs)


def test_sizes():
    task = copy_task(length=7, vocab=4, n_train=123, n_eval=45)
    assert task.vocab_size == 5 and task.n_classes == 4 and task.max_len() == 14
    assert task.chance == pytest.approx(0.25)
    assert (task.split_size("train"), task.split_size("val"), task.split_size("test")) == (123, 45, 45)
    assert task.make_split("train", 3, 0).inputs.shape == (3, 14)


@pytest.mark.parametrize("key", ["length", "vocab", "n_train", "n_eval"])
@pytest.mark.parametrize("value", [0, -2, 2.5, True])
def test_parameters_must_be_positive_integers(key, value):
    with pytest.raises(ConfigError, match=f"task.{key} of task copy"):
        copy_task(**{key: value})


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError) as info:
        copy_task(lenght=4)
    assert "'task.lenght'" in str(info.value) and "(did you mean 'length'?)" in str(info.value)
