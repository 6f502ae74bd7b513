"""`sort`: write the input tokens in ascending order after a separator (algorithmic, permutation-invariant).

Input `s_1..s_L SEP t_1..t_{L-1}`, causal, where `t = sorted(s)` (duplicates kept); the model is scored on
predicting `t_1..t_L` from the separator on. Each output is "the smallest input token not yet used up", which
needs comparisons over the whole source and, with repeated symbols, counting how many copies were already
written: a content-based (not position-based) lookup. A standard algorithmic probe since Neural Turing
Machines (Graves et al., 2014, https://arxiv.org/abs/1410.5401); used on transformers e.g. by Zhou et al. 2023,
"What Algorithms can Transformers Learn?" (https://arxiv.org/abs/2310.16028).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import IGNORE, TASKS, Split, Task, positive_int, split_generator


@TASKS.register("sort")
class Sort(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        length: int = 10       # tokens to sort
        vocab: int = 10        # distinct symbols, drawn with replacement (a separator is added)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, vocab=p.vocab, n_train=p.n_train, n_eval=p.n_eval)

    @property
    def vocab_size(self) -> int:
        return self.params.vocab + 1

    @property
    def n_classes(self) -> int:
        return self.params.vocab

    def max_len(self) -> int:
        return 2 * self.params.length

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        source = torch.randint(0, p.vocab, (n, p.length), generator=split_generator(split, seed))
        answer = source.sort(dim=1).values
        sep = torch.full((n, 1), p.vocab)
        inputs = torch.cat([source, sep, answer[:, :-1]], dim=1)
        targets = torch.cat([torch.full((n, p.length), IGNORE), answer], dim=1)
        return Split(inputs, targets)
