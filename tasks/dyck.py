"""`dyck`: is a string over k bracket types balanced? One label per string (formal language, Dyck-k).

Half the strings are random balanced (Dyck-k) words; the other half are such words with two positions holding
different symbols swapped, re-swapped until unbalanced (at most a few rounds; a string still balanced then is
labelled balanced, so labels are always exact). A swap keeps the count of every symbol, so every string has
the same number of opening and closing brackets of each type: counting alone, the trick that solves Dyck-1
membership on balanced-length strings, cannot tell the classes apart; the model must match brackets by depth
and type, as a stack does. Recognising Dyck languages is the standard probe of hierarchical structure in
transformers (Hahn, 2020, https://arxiv.org/abs/1906.06755; Bhattamishra et al., 2020,
https://arxiv.org/abs/2009.11264; Yao et al., 2021, https://arxiv.org/abs/2105.11115). Not causal; pooled head.

Balanced words are generated left to right: at depth 0 a bracket opens, when the remaining positions equal the
depth one closes, otherwise it opens or closes with probability 1/2; an opening bracket's type is uniform and
a closing bracket matches the innermost open one.

Length generalisation: with `test_length` > `length` the test strings have `test_length` brackets (train and
val keep `length`): deeper nesting and positions never trained; 0 (the default) tests at `length`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Ladder, Split, Task, check_test_length, positive_int, split_generator, split_length

_SWAP_ROUNDS = 8  # re-swaps of negatives that came out balanced again


def is_balanced(tokens: torch.Tensor, n_types: int) -> torch.Tensor:
    """(n, length) ids, opening bracket of type t = t, closing = n_types + t -> (n,) bool, with a
    vectorised stack (a loop over positions)."""
    n, length = tokens.shape
    stack = torch.zeros(n, length + 1, dtype=torch.long)
    top = torch.zeros(n, dtype=torch.long)
    ok = torch.ones(n, dtype=torch.bool)
    rows = torch.arange(n)
    for j in range(length):
        tok = tokens[:, j]
        opening = tok < n_types
        kind = tok % n_types
        # close: the innermost open bracket must exist and have the same type
        below = (top - 1).clamp_min(0)
        ok &= opening | ((top > 0) & (stack[rows, below] == kind))
        stack[rows, top] = torch.where(opening, kind, stack[rows, top])
        top = torch.where(opening, top + 1, (top - 1).clamp_min(0))
    return ok & (top == 0)


@TASKS.register("dyck")
class Dyck(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("length", (8, 12, 16, 24, 32))  # deeper and longer nesting

    @dataclass(frozen=True)
    class Params:
        n_types: int = 2       # bracket types k (tokens: k opening, k closing)
        length: int = 16       # brackets per string (even)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test
        test_length: int = 0   # brackets per test string (0: `length`; more probes length generalisation)

    def validate(self):
        p = self.params
        positive_int(self.name, n_types=p.n_types, length=p.length, n_train=p.n_train, n_eval=p.n_eval)
        if p.length % 2 or p.length < 4:
            raise ConfigError(f"task.length={p.length} of task {self.name} must be even and >= 4")
        check_test_length(self.name, p.test_length, p.length)
        if p.test_length % 2:
            raise ConfigError(f"task.test_length={p.test_length} of task {self.name} must be even (or 0)")

    @property
    def vocab_size(self) -> int:
        return 2 * self.params.n_types

    @property
    def n_classes(self) -> int:
        return 2

    def max_len(self) -> int:
        return max(self.params.length, self.params.test_length)

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def balanced(self, n: int, g: torch.Generator, length: int | None = None) -> torch.Tensor:
        """(n, length) random balanced words (`length`: `task.length` unless given)."""
        k, length = self.params.n_types, length or self.params.length
        coin = torch.rand(n, length, generator=g) < 0.5
        kinds = torch.randint(0, k, (n, length), generator=g)
        tokens = torch.zeros(n, length, dtype=torch.long)
        stack = torch.zeros(n, length + 1, dtype=torch.long)
        depth = torch.zeros(n, dtype=torch.long)
        rows = torch.arange(n)
        for j in range(length):
            remaining = length - j
            opening = (depth == 0) | ((depth < remaining) & coin[:, j])
            innermost = stack[rows, (depth - 1).clamp_min(0)]
            tokens[:, j] = torch.where(opening, kinds[:, j], k + innermost)
            stack[rows, depth] = torch.where(opening, kinds[:, j], stack[rows, depth])
            depth = torch.where(opening, depth + 1, depth - 1)
        return tokens

    def make_split(self, split: str, n: int, seed: int) -> Split:
        g = split_generator(split, seed)
        k, length = self.params.n_types, split_length(split, self.params.length, self.params.test_length)
        tokens = self.balanced(n, g, length)
        corrupt = torch.rand(n, generator=g) < 0.5
        rows = torch.arange(n)
        pending = corrupt.clone()
        for _ in range(_SWAP_ROUNDS):
            # swap position i with a random position j holding a different symbol (a balanced word always
            # has one: it holds an opening and a closing bracket)
            i = torch.randint(0, length, (n,), generator=g)
            other = tokens != tokens[rows, i].unsqueeze(1)
            j = torch.where(other, torch.rand(n, length, generator=g), torch.full((n, length), -1.0)).argmax(1)
            swapped = tokens.clone()
            swapped[rows, i], swapped[rows, j] = tokens[rows, j], tokens[rows, i]
            tokens = torch.where(pending.unsqueeze(1), swapped, tokens)
            pending &= is_balanced(tokens, k)
            if not pending.any():
                break
        return Split(tokens, is_balanced(tokens, k).long())
