"""`reverse`: write a random token string backwards after a separator (sequence transduction, algorithmic).

Input `s_1..s_L SEP s_L..s_2`, causal; the model is scored on predicting `s_L..s_1` from the separator on.
The prediction made at the separator plus j reads source position L-1-j, 2j+1 positions back: the look-back
distance grows with every step, so unlike `copy` it is not one fixed offset; it needs attention that knows
absolute (or mirrored) positions. A classic seq2seq probe (Sutskever et al., 2014, https://arxiv.org/abs/1409.3215;
Graves et al., 2014, https://arxiv.org/abs/1410.5401).
"""

from __future__ import annotations

import torch

from tasks._transduction import Transduction
from tasks.base import TASKS, Ladder


@TASKS.register("reverse")
class Reverse(Transduction):
    difficulty = Ladder("length", (8, 12, 16, 24, 32))  # longer strings: more look-back distances
    def answer(self, source: torch.Tensor) -> torch.Tensor:
        return source.flip(1)
