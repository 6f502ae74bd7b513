"""`selective_copy`: copy only the content tokens, in order, out of a stream padded with noise tokens.

Input `x_1..x_T SEP c_1..c_{K-1}`, causal: `x` holds K content tokens (from `vocab` symbols) at random positions,
every other position is one NOISE token; the model is scored on predicting `c_1..c_K` from the separator on.
Where the content sits changes per example, so a fixed-offset (time-invariant) lookup fails: the model has to
select by content, which is the point of the task in Mamba (Gu & Dao, 2023, https://arxiv.org/abs/2312.00752,
section 3.1; after Arjovsky et al., 2016's copying task).

Length generalisation: with `test_length` > `length` the test streams have `test_length` positions (the same
`n_content` tokens, spread wider, at positions never trained; train and val unchanged); 0 (the default) tests
at `length`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import (IGNORE, TASKS, Ladder, Split, Task, check_test_length,
                        positive_int, split_generator, split_length)


@TASKS.register("selective_copy")
class SelectiveCopy(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("length", (12, 24, 48, 96))  # the content spread over a longer stream

    @dataclass(frozen=True)
    class Params:
        length: int = 24       # positions before the separator (content + noise)
        n_content: int = 6     # content tokens to copy, at random distinct positions
        vocab: int = 8         # content symbols (NOISE and SEP are added)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test
        test_length: int = 0   # stream positions in test (0: `length`; more probes length generalisation)

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, n_content=p.n_content, vocab=p.vocab, n_train=p.n_train,
                     n_eval=p.n_eval)
        if p.n_content > p.length:
            raise ConfigError(f"task.n_content={p.n_content} of task {self.name} must be <= task.length={p.length}")
        check_test_length(self.name, p.test_length, p.length)

    @property
    def noise(self) -> int:
        return self.params.vocab

    @property
    def sep(self) -> int:
        return self.params.vocab + 1

    @property
    def vocab_size(self) -> int:
        return self.params.vocab + 2

    @property
    def n_classes(self) -> int:
        return self.params.vocab

    def max_len(self) -> int:
        return max(self.params.length, self.params.test_length) + self.params.n_content

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        g = split_generator(split, seed)
        length = split_length(split, p.length, p.test_length)
        content = torch.randint(0, p.vocab, (n, p.n_content), generator=g)
        # K distinct positions per row, in increasing order: the K smallest of T random keys, sorted.
        where = torch.rand(n, length, generator=g).argsort(dim=1)[:, :p.n_content].sort(dim=1).values
        stream = torch.full((n, length), self.noise).scatter(1, where, content)
        sep = torch.full((n, 1), self.sep)
        inputs = torch.cat([stream, sep, content[:, :-1]], dim=1)
        targets = torch.cat([torch.full((n, length), IGNORE), content], dim=1)
        return Split(inputs, targets)
