"""`modular_add`: (a + b) mod p from a fixed fraction of all p^2 pairs, the grokking setting.

Input `a b =`, causal; the model is scored only at `=`, on predicting `(a + b) mod p`. All p^2 pairs are
shuffled once by `split_seed` (not the run seed) and cut into disjoint train / val / test sets: `train_fraction`
of the pairs train, the rest is halved into val and test. So the test pairs are never seen, and generalising
means finding the group structure rather than memorising a table; with weight decay and a small training
fraction this happens late, after memorisation ("grokking", Power et al., 2022,
https://arxiv.org/abs/2201.02177). The run seed only changes which training pairs (when fewer are asked for)
and their order. `p` need not be prime for addition (Z_p is a group for any p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import IGNORE, SPLITS, TASKS, Ladder, Split, Task, positive_int, split_generator


@TASKS.register("modular_add")
class ModularAdd(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("train_fraction", (0.9, 0.7, 0.5, 0.3))  # fewer training pairs: generalise from less

    @dataclass(frozen=True)
    class Params:
        p: int = 23                   # modulus; the pairs are all (a, b) in [0, p)^2
        train_fraction: float = 0.7   # share of the p^2 pairs that train; val and test halve the rest
        split_seed: int = 0           # fixes the partition of pairs, independently of the run seed

    def validate(self):
        p = self.params
        positive_int(self.name, p=p.p)
        fraction = p.train_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"task.train_fraction of task {self.name} must be a number in (0, 1), "
                              f"got {fraction!r}")
        if isinstance(p.split_seed, bool) or not isinstance(p.split_seed, int) or p.split_seed < 0:
            raise ConfigError(f"task.split_seed of task {self.name} must be a non-negative integer, "
                              f"got {p.split_seed!r}")
        sizes = self._sizes()
        if min(sizes.values()) < 1:
            raise ConfigError(f"task {self.name} with p={p.p} and train_fraction={fraction} leaves an empty split "
                              f"({', '.join(f'{k}: {v}' for k, v in sizes.items())}); use a larger p or a "
                              f"fraction further from 0 and 1")

    def _sizes(self) -> dict[str, int]:
        total = self.params.p ** 2
        n_train = math.floor(total * self.params.train_fraction)
        n_val = (total - n_train) // 2
        return {"train": n_train, "val": n_val, "test": total - n_train - n_val}

    def pairs(self, split: str) -> torch.Tensor:
        """(size, 2) the (a, b) pairs of a split, in their fixed order."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
        p, sizes = self.params.p, self._sizes()
        order = torch.randperm(p * p, generator=torch.Generator().manual_seed(self.params.split_seed))
        start = {"train": 0, "val": sizes["train"], "test": sizes["train"] + sizes["val"]}[split]
        index = order[start:start + sizes[split]]
        return torch.stack([index // p, index % p], dim=1)

    @property
    def vocab_size(self) -> int:
        return self.params.p + 1  # residues and `=`

    @property
    def n_classes(self) -> int:
        return self.params.p

    def max_len(self) -> int:
        return 3

    def split_size(self, split: str) -> int:
        return self._sizes()[split]

    def make_split(self, split: str, n: int, seed: int) -> Split:
        pairs = self.pairs(split)
        if n > len(pairs):
            raise ConfigError(f"{self.name} has {len(pairs)} {split} pairs, {n} requested")
        if split == "train":  # the seed picks which training pairs (when n is smaller) and their order
            pairs = pairs[torch.randperm(len(pairs), generator=split_generator(split, seed))]
        pairs = pairs[:n]
        a, b = pairs[:, 0], pairs[:, 1]
        inputs = torch.stack([a, b, torch.full_like(a, self.params.p)], dim=1)
        targets = torch.full_like(inputs, IGNORE)
        targets[:, -1] = (a + b) % self.params.p
        return Split(inputs, targets)
