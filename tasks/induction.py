"""`induction`: continue a repeated random sequence (in-context copying by induction heads).

Each row is a random segment of k distinct tokens repeated until the row is `2 * length` long, with k drawn
per row from [min_length, length]; causal next-token prediction, scored only where the next token is
predictable: from the first repetition on (positions j >= k, target `x_{j+1} = x_{j+1-k}`). With
`min_length == length` this is the plain "random sequence, repeated once; scored on the second half". Because
the period k varies, a fixed look-back offset (which solves `copy`) does not; the model has to find the
earlier occurrence of the current token and copy what followed it, the induction-head mechanism (Olsson et al.,
2022, https://arxiv.org/abs/2209.11895). Tokens within a segment are distinct, so that lookup is unambiguous
and every scored target is determined by the context.

Length generalisation: with `test_length` > `length` the test split is made as if `length` were `test_length`
(periods up to `test_length`, rows of `2 * test_length` tokens; train and val unchanged), so the test score
measures whether the induction mechanism carries over to longer periods and positions never trained; 0 (the
default) tests at `length`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import (IGNORE, TASKS, Ladder, Split, Task, check_test_length,
                        positive_int, split_generator, split_length)


@TASKS.register("induction")
class Induction(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("length", (6, 12, 18, 24))  # longer periods to find the earlier occurrence across

    @dataclass(frozen=True)
    class Params:
        length: int = 12       # longest random segment; rows are 2 * length tokens
        min_length: int = 6    # shortest random segment (== length: every row is one segment repeated once)
        vocab: int = 24        # symbols; a segment's tokens are distinct, so vocab >= length
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test
        test_length: int = 0   # longest test segment (0: `length`; more probes length generalisation)

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, min_length=p.min_length, vocab=p.vocab, n_train=p.n_train,
                     n_eval=p.n_eval)
        if p.min_length > p.length:
            raise ConfigError(f"task.min_length={p.min_length} of task {self.name} must be <= "
                              f"task.length={p.length}")
        check_test_length(self.name, p.test_length, p.length)
        longest = max(p.length, p.test_length)
        if p.vocab < longest:
            which = "task.length" if longest == p.length else "task.test_length"
            raise ConfigError(f"task.vocab={p.vocab} of task {self.name} must be >= {which}={longest} "
                              f"(a segment's tokens are distinct)")

    @property
    def vocab_size(self) -> int:
        return self.params.vocab

    @property
    def n_classes(self) -> int:
        return self.params.vocab

    def max_len(self) -> int:
        return 2 * max(self.params.length, self.params.test_length)

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        g = split_generator(split, seed)
        length = split_length(split, p.length, p.test_length)
        segment = torch.rand(n, p.vocab, generator=g).argsort(dim=1)[:, :length]  # distinct tokens
        period = torch.randint(p.min_length, length + 1, (n, 1), generator=g)
        time = 2 * length
        position = torch.arange(time + 1).unsqueeze(0)             # one extra: the token after the last
        row = segment.gather(1, position % period)                 # x_j = segment[j mod k]
        inputs, following = row[:, :-1], row[:, 1:]
        targets = torch.where(position[:, :-1] >= period, following, torch.full_like(following, IGNORE))
        return Split(inputs, targets)
