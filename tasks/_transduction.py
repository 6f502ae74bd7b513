"""Shared shape of the sequence-transduction tasks (`copy`, `reverse`, `sort`).

Input `s_1..s_L SEP a_1..a_{L-1}`, causal, where `a = answer(s)`; the model is scored on predicting `a_1..a_L`
from the separator on. A subclass says only how the answer follows from the source.

Length generalisation, as `parity` has it: train and val sources have `length` tokens, test sources have
`test_length` (0, the default: `length`, an in-distribution test). With `test_length > length` the test score
measures whether the algorithm carries over to longer strings (learned positions beyond 2 * length are never
trained) while the val score measures in-distribution learning. Each split has one fixed length: no padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import IGNORE, Split, Task, check_test_length, positive_int, split_generator, split_length


class Transduction(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        length: int = 12       # source tokens in train and val
        vocab: int = 10        # distinct symbols, drawn with replacement (a separator is added)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test
        test_length: int = 0   # source tokens in test (0: `length`; > length probes length generalisation)

    def answer(self, source: torch.Tensor) -> torch.Tensor:
        """(n, L) source tokens -> (n, L) answer tokens."""
        raise NotImplementedError  # each registered task defines its own transduction

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, vocab=p.vocab, n_train=p.n_train, n_eval=p.n_eval)
        check_test_length(self.name, p.test_length, p.length)

    def source_length(self, split: str) -> int:
        """Source tokens of a split: `test_length` for test when it is set, else `length`."""
        return split_length(split, self.params.length, self.params.test_length)

    @property
    def vocab_size(self) -> int:
        return self.params.vocab + 1

    @property
    def n_classes(self) -> int:
        return self.params.vocab

    def max_len(self) -> int:
        return 2 * max(self.params.length, self.params.test_length)

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p, length = self.params, self.source_length(split)
        source = torch.randint(0, p.vocab, (n, length), generator=split_generator(split, seed))
        answer = self.answer(source)
        sep = torch.full((n, 1), p.vocab)
        inputs = torch.cat([source, sep, answer[:, :-1]], dim=1)
        targets = torch.cat([torch.full((n, length), IGNORE), answer], dim=1)
        return Split(inputs, targets)
