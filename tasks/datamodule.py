"""One LightningDataModule for every task.

Why not a TensorDataset with a batch size: the default collate indexes one example at a time and stacks them,
a Python loop per batch that dominates tiny CPU steps. The splits already live in memory as tensors, so a batch
is one fancy-index of a shuffled permutation.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from tasks.base import Split, Task


class ShuffledBatches(IterableDataset):
    """Endless mini-batches from a split, reshuffled every pass, deterministic in `seed`.

    Under distributed training (Lightning's `ddp`) every rank draws the same permutation and takes every
    world_size-th batch starting at its rank, so the ranks see disjoint batches; `batch_size` is per device.
    """

    def __init__(self, split: Split, batch_size: int, seed: int):
        self.split, self.batch_size, self.seed = split, min(batch_size, len(split)), seed

    def __iter__(self):
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        generator = torch.Generator().manual_seed(self.seed)
        n, size = len(self.split), self.batch_size
        while True:
            order = torch.randperm(n, generator=generator)
            for number, start in enumerate(range(0, n - size + 1, size)):
                if number % world == rank:
                    index = order[start:start + size]
                    yield self.split.inputs[index], self.split.targets[index]


class OrderedBatches(IterableDataset):
    """One pass over a split in order (evaluation)."""

    def __init__(self, split: Split, batch_size: int):
        self.split, self.batch_size = split, batch_size

    def __iter__(self):
        for start in range(0, len(self.split), self.batch_size):
            yield self.split.inputs[start:start + self.batch_size], self.split.targets[start:start + self.batch_size]


class TaskDataModule(pl.LightningDataModule):
    """Generates a task's splits once (as tensors) and serves them; `seed` fixes data and training order."""

    def __init__(self, task: Task, batch_size: int, seed: int, eval_batch_size: int = 512):
        super().__init__()
        self.task, self.batch_size, self.seed, self.eval_batch_size = task, batch_size, seed, eval_batch_size
        self.splits: dict[str, Split] = {}

    def split(self, name: str) -> Split:
        if name not in self.splits:
            self.splits[name] = self.task.make_split(name, self.task.split_size(name), self.seed)
        return self.splits[name]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ShuffledBatches(self.split("train"), self.batch_size, self.seed), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(OrderedBatches(self.split("val"), self.eval_batch_size), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(OrderedBatches(self.split("test"), self.eval_batch_size), batch_size=None)
