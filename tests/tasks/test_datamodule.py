"""tasks/datamodule.py: shuffled training batches and ordered evaluation batches."""

import itertools
from collections import Counter

import pytest
import torch

from tasks import TASKS
from tasks.base import Split
from tasks.datamodule import OrderedBatches, ShuffledBatches, TaskDataModule


def numbered(n):
    """A split whose example i has input row (i, i) and target 1000 + i, to check rows stay aligned."""
    ids = torch.arange(n)
    return Split(torch.stack([ids, ids], dim=1), ids + 1000)


def ids_of(batch):
    inputs, targets = batch
    assert torch.equal(inputs[:, 0], inputs[:, 1])
    assert torch.equal(targets, inputs[:, 0] + 1000)  # inputs and targets stay paired
    return inputs[:, 0].tolist()


def take(dataset, k):
    return list(itertools.islice(iter(dataset), k))


@pytest.mark.parametrize("n,batch_size", [(12, 4), (12, 12), (10, 1)])
def test_each_pass_sees_every_example_once(n, batch_size):
    per_pass = n // batch_size
    batches = take(ShuffledBatches(numbered(n), batch_size, seed=0), 3 * per_pass)
    passes = []
    for p in range(3):
        ids = [i for batch in batches[p * per_pass:(p + 1) * per_pass] for i in ids_of(batch)]
        assert all(len(ids_of(batch)) == batch_size for batch in batches[p * per_pass:(p + 1) * per_pass])
        assert sorted(ids) == list(range(n))
        passes.append(ids)
    if n > batch_size > 1:
        assert passes[0] != passes[1]  # reshuffled every pass


def test_a_ragged_tail_is_dropped_without_repeats():
    n, batch_size = 10, 3
    batches = take(ShuffledBatches(numbered(n), batch_size, seed=1), 6)
    for p in range(2):
        ids = [i for batch in batches[3 * p:3 * p + 3] for i in ids_of(batch)]
        assert len(ids) == 9 and len(set(ids)) == 9  # full batches only, no example twice in a pass


def test_shuffling_is_deterministic_in_the_seed():
    split = numbered(50)
    a = [ids_of(b) for b in take(ShuffledBatches(split, 8, seed=3), 10)]
    b = [ids_of(b) for b in take(ShuffledBatches(split, 8, seed=3), 10)]
    c = [ids_of(b) for b in take(ShuffledBatches(split, 8, seed=4), 10)]
    assert a == b
    assert a != c
    # a fresh iterator of the same dataset restarts the same stream
    dataset = ShuffledBatches(split, 8, seed=3)
    assert [ids_of(b) for b in take(dataset, 10)] == [ids_of(b) for b in take(dataset, 10)]


def test_shuffled_batches_are_not_in_order():
    ids = [i for b in take(ShuffledBatches(numbered(50), 10, seed=0), 5) for i in ids_of(b)]
    assert ids != list(range(50))


def test_batch_larger_than_the_split_is_clipped():
    batches = take(ShuffledBatches(numbered(5), 64, seed=0), 2)
    assert [sorted(ids_of(b)) for b in batches] == [list(range(5))] * 2


@pytest.mark.parametrize("n,batch_size", [(10, 4), (8, 4), (3, 10), (7, 1)])
def test_ordered_batches_cover_the_split_exactly_once_in_order(n, batch_size):
    dataset = OrderedBatches(numbered(n), batch_size)
    batches = list(dataset)
    assert len(batches) == -(-n // batch_size)
    assert [i for b in batches for i in ids_of(b)] == list(range(n))
    assert all(len(ids_of(b)) == batch_size for b in batches[:-1])
    assert [i for b in dataset for i in ids_of(b)] == list(range(n))  # re-iterable


def test_datamodule_serves_the_task_splits():
    task = TASKS.get("copy")(length=3, vocab=4, n_train=20, n_eval=7)
    data = TaskDataModule(task, batch_size=4, seed=2, eval_batch_size=3)
    train = data.split("train")
    assert data.split("train") is train  # generated once
    assert len(train) == 20
    assert torch.equal(train.inputs, task.make_split("train", 20, 2).inputs)
    batches = take(data.train_dataloader(), 5)
    counts = Counter(tuple(row) for b in batches for row in b[0].tolist())
    assert counts == Counter(tuple(row) for row in train.inputs.tolist())
    for loader, name in ((data.val_dataloader(), "val"), (data.test_dataloader(), "test")):
        batches = list(loader)
        assert [len(b[0]) for b in batches] == [3, 3, 1]
        assert torch.equal(torch.cat([b[0] for b in batches]), data.split(name).inputs)
        assert torch.equal(torch.cat([b[1] for b in batches]), data.split(name).targets)
