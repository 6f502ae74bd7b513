"""`copy`: reproduce a random token string after a separator (sequence transduction, algorithmic).

Input `s_1..s_L SEP s_1..s_{L-1}`, causal; the model is scored on predicting `s_1..s_L` from the separator on.
Solving it needs attention to look back exactly L+1 positions: a position-based lookup, not a statistic.
"""

from __future__ import annotations

import torch

from tasks._transduction import Transduction
from tasks.base import TASKS, Ladder


@TASKS.register("copy")
class Copy(Transduction):
    difficulty = Ladder("length", (8, 12, 24, 48, 96))  # longer strings: a longer fixed look-back
    def answer(self, source: torch.Tensor) -> torch.Tensor:
        return source
