"""`reverse`: write a random token string backwards after a separator (sequence transduction, algorithmic).

Input `s_1..s_L SEP s_L..s_2`, causal; the model is scored on predicting `s_L..s_1` from the separator on.
The prediction made at the separator plus j reads source position L-1-j, 2j+1 positions back: the look-back
distance grows with every step, so unlike `copy` it is not one fixed offset; it needs attention that knows
absolute (or mirrored) positions. A classic seq2seq probe (Sutskever et al., 2014, https://arxiv.org/abs/1409.3215;
Graves et al., 2014, https://arxiv.org/abs/1410.5401).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasks.base import IGNORE, TASKS, Split, Task, positive_int, split_generator


@TASKS.register("reverse")
class Reverse(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        length: int = 12       # tokens to reverse
        vocab: int = 10        # distinct symbols (a separator is added)
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
        answer = source.flip(1)
        sep = torch.full((n, 1), p.vocab)
        inputs = torch.cat([source, sep, answer[:, :-1]], dim=1)
        targets = torch.cat([torch.full((n, p.length), IGNORE), answer], dim=1)
        return Split(inputs, targets)
