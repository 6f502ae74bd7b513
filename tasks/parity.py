"""`parity`: is the number of ones in a bit string odd? One label per string; the test split is longer.

Parity depends on every bit, and flipping any one bit flips the answer, which makes it a classic hard case
for transformers: Hahn (2020, https://arxiv.org/abs/1906.06755) shows soft attention cannot represent it
robustly at growing length, and it is learned slowly and generalises poorly to longer inputs (Bhattamishra et
al., 2020, https://arxiv.org/abs/2009.11264; Anil et al., 2022, https://arxiv.org/abs/2207.04901).
The model reads the whole string (not causal) and a pooled head gives the label. Train and val strings have
`length` bits; test strings have `test_length` bits, so the test score measures length generalisation when
`test_length > length` (learned positions beyond `length` are never trained) and the val score measures
in-distribution learning. Each split has one fixed length, so no padding is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import TASKS, Ladder, Split, Task, check_test_length, positive_int, split_generator, split_length


@TASKS.register("parity")
class Parity(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("length", (4, 8, 12, 16, 20))  # every bit matters: longer strings are harder

    @dataclass(frozen=True)
    class Params:
        length: int = 16       # bits per string in train and val
        test_length: int = 20  # bits per string in test (0: `length`; > length probes length generalisation)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, n_train=p.n_train, n_eval=p.n_eval)
        check_test_length(self.name, p.test_length, p.length)

    @property
    def vocab_size(self) -> int:
        return 2

    @property
    def n_classes(self) -> int:
        return 2

    def max_len(self) -> int:
        return max(self.params.length, self.params.test_length)

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        g = split_generator(split, seed)
        length = split_length(split, self.params.length, self.params.test_length)
        bits = torch.randint(0, 2, (n, length), generator=g)
        return Split(bits, bits.sum(dim=1) % 2)
