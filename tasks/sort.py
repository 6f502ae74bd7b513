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

from tasks._transduction import Transduction
from tasks.base import TASKS, Ladder


@TASKS.register("sort")
class Sort(Transduction):
    difficulty = Ladder("length", (6, 10, 16, 24, 32))  # more tokens to count and order
    @dataclass(frozen=True)
    class Params:
        length: int = 10       # tokens to sort in train and val
        vocab: int = 10        # distinct symbols, drawn with replacement (a separator is added)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test
        test_length: int = 0   # tokens to sort in test (0: `length`; > length probes length generalisation)

    def answer(self, source: torch.Tensor) -> torch.Tensor:
        return source.sort(dim=1).values
