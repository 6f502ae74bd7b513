"""`addition`: add two multi-digit numbers, digit by digit with carries (arithmetic, algorithmic).

Input `a_1..a_D + b_1..b_D = c_1..c_D`, causal, operands most-significant digit first with leading zeros
(fixed width D), answer `c` of D+1 digits (the final carry included); the model is scored on predicting every
answer digit from `=` on. With `reversed: true` the answer is written least-significant digit first, so each
digit depends only on the operand digits at the same place and the carry just produced, which is much easier
to learn than most-significant first, where the first digit already depends on every carry (Lee et al., 2023,
"Teaching Arithmetic to Small Transformers", https://arxiv.org/abs/2307.03381). Operands are uniform over
[0, 10^D), so carries and carry chains occur at their natural rates.

Length generalisation: with `test_length` > `n_digits` the test operands have `test_length` digits (train and
val keep `n_digits`), so the test score measures whether column addition carries over to longer numbers whose
positions were never trained; 0 (the default) tests at `n_digits`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import (IGNORE, TASKS, Ladder, Split, Task, check_test_length,
                        positive_int, split_generator, split_length)

PLUS, EQUALS = 10, 11


@TASKS.register("addition")
class Addition(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    length_key = "n_digits"  # task.test_length: digits per operand in test
    difficulty = Ladder("n_digits", (2, 3, 4, 6, 8))  # longer carry chains

    @dataclass(frozen=True)
    class Params:
        n_digits: int = 3       # digits per operand (leading zeros); the answer has n_digits + 1
        reversed: bool = True   # answer least-significant digit first (easier)
        n_train: int = 20000
        n_eval: int = 1000      # examples in val and in test
        test_length: int = 0    # digits per operand in test (0: `n_digits`; more probes length generalisation)

    def validate(self):
        p = self.params
        positive_int(self.name, n_digits=p.n_digits, n_train=p.n_train, n_eval=p.n_eval)
        if not isinstance(p.reversed, bool):
            raise ConfigError(f"task.reversed of task {self.name} must be true or false, got {p.reversed!r}")
        if p.n_digits > 18:
            raise ConfigError(f"task.n_digits={p.n_digits} of task {self.name} must be <= 18 (int64 operands)")
        check_test_length(self.name, p.test_length, p.n_digits, key="n_digits")

    @property
    def vocab_size(self) -> int:
        return 12  # digits, `+`, `=`

    @property
    def n_classes(self) -> int:
        return 10

    def max_len(self) -> int:
        return 3 * max(self.params.n_digits, self.params.test_length) + 2

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        d = split_length(split, self.params.n_digits, self.params.test_length)
        g = split_generator(split, seed)
        a_digits = torch.randint(0, 10, (n, d), generator=g)   # most significant first
        b_digits = torch.randint(0, 10, (n, d), generator=g)
        # Column addition from the least significant place: a loop over the D places, vectorised over rows.
        answer = torch.zeros(n, d + 1, dtype=torch.long)        # least significant first
        carry = torch.zeros(n, dtype=torch.long)
        for place in range(d):
            column = a_digits[:, d - 1 - place] + b_digits[:, d - 1 - place] + carry
            answer[:, place], carry = column % 10, column // 10
        answer[:, d] = carry
        if not self.params.reversed:
            answer = answer.flip(1)
        plus, equals = torch.full((n, 1), PLUS), torch.full((n, 1), EQUALS)
        inputs = torch.cat([a_digits, plus, b_digits, equals, answer[:, :-1]], dim=1)
        targets = torch.cat([torch.full((n, 2 * d + 1), IGNORE), answer], dim=1)
        return Split(inputs, targets)
