"""`listops`: the value (0-9) of a nested list expression of MIN, MAX, MED and SUM_MOD over digits.

An example is a bracketed prefix expression such as `[MAX 2 9 [MIN 4 7 ] 0 ]`; its label is its value. MED is
the median, rounded down when the count is even, and SM the sum modulo 10, as in ListOps (Nangia & Bowman,
2018, https://arxiv.org/abs/1804.06028) and its Long Range Arena version (Tay et al., 2021,
https://arxiv.org/abs/2011.04006). Solving it needs hierarchical composition: each sub-expression's value is
computed and passed to its parent. Tokens: digits 0-9, the four opening operators `[MIN [MAX [MED [SM`, the
closing `]`, and PAD after the expression (rows are `max_length` long); not causal, pooled head.

Expressions are sampled as in LRA's generator: the root is an operator; an operator draws its argument count
uniformly from [2, max_args] and each argument is another operator with probability 1/4 (while the nesting of
operators is below `max_depth`) or else a digit; operators and digits are uniform. (LRA's `max_depth` counts
the digit level too: its 10 is our 9.) Expressions longer than `max_length` tokens are rejected and redrawn.
Generation runs left to right over token positions with a vectorised stack of open operators (their argument
values so far), so each label is computed as the expression is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Ladder, Split, Task, positive_int, split_generator

OPERATORS = ("MIN", "MAX", "MED", "SM")
FIRST_OP, CLOSE, PAD = 10, 14, 15  # digits are 0-9; operator o is FIRST_OP + o
OP_PROBABILITY = 0.25               # LRA's VALUE_P: an argument is a sub-expression with this probability
_ROUNDS = 50                        # rejection rounds before giving up on a too-small max_length


def apply_operator(op: torch.Tensor, values: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """op (m,) in 0..3, values (m, A) of which the first count (m,) are the arguments -> (m,) results."""
    valid = torch.arange(values.shape[1]).unsqueeze(0) < count.unsqueeze(1)
    low = torch.where(valid, values, torch.full_like(values, 10)).min(dim=1).values
    high = torch.where(valid, values, torch.full_like(values, -1)).max(dim=1).values
    total = torch.where(valid, values, torch.zeros_like(values)).sum(dim=1) % 10
    ordered = torch.where(valid, values, torch.full_like(values, 100)).sort(dim=1).values
    lo_mid = ordered.gather(1, ((count - 1) // 2).clamp_min(0).unsqueeze(1)).squeeze(1)
    hi_mid = ordered.gather(1, (count // 2).clamp_max(values.shape[1] - 1).unsqueeze(1)).squeeze(1)
    median = (lo_mid + hi_mid) // 2
    return torch.stack([low, high, median, total], dim=1).gather(1, op.unsqueeze(1)).squeeze(1)


@TASKS.register("listops")
class ListOps(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("max_depth", (1, 2, 3, 4))  # deeper nesting of operators

    @dataclass(frozen=True)
    class Params:
        max_depth: int = 3     # deepest nesting of operators (1: a flat list of digits)
        max_args: int = 4      # most arguments of one operator (>= 2)
        max_length: int = 32   # tokens per row; longer expressions are redrawn, shorter ones padded
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, max_depth=p.max_depth, max_args=p.max_args, max_length=p.max_length,
                     n_train=p.n_train, n_eval=p.n_eval)
        if p.max_args < 2:
            raise ConfigError(f"task.max_args={p.max_args} of task {self.name} must be >= 2")
        if p.max_length < 4:
            raise ConfigError(f"task.max_length={p.max_length} of task {self.name} must be >= 4 "
                              f"(the shortest expression, `[MIN d d ]`)")

    @property
    def vocab_size(self) -> int:
        return 16

    @property
    def n_classes(self) -> int:
        return 10

    def max_len(self) -> int:
        return self.params.max_length

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        g = split_generator(split, seed)
        kept_tokens, kept_labels, have, acceptance = [], [], 0, 0.9
        for _ in range(_ROUNDS):
            m = max(64, int(1.2 * (n - have) / acceptance) + 16)
            tokens, labels, done = self._draw(m, g)
            acceptance = max(done.float().mean().item(), 0.01)
            kept_tokens.append(tokens[done])
            kept_labels.append(labels[done])
            have += int(done.sum())
            if have >= n:
                return Split(torch.cat(kept_tokens)[:n], torch.cat(kept_labels)[:n])
        raise ConfigError(f"task {self.name}: too few expressions fit task.max_length={self.params.max_length} "
                          f"with max_depth={self.params.max_depth}, max_args={self.params.max_args}; "
                          f"raise max_length")

    def _draw(self, m: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """m candidate rows: tokens (m, max_length), labels (m,), and whether the expression fit."""
        p = self.params
        depth, arity, length = p.max_depth, p.max_args, p.max_length
        rows = torch.arange(m)
        ops = torch.zeros(m, depth, dtype=torch.long)      # operator of each open frame
        wants = torch.zeros(m, depth, dtype=torch.long)    # its argument count
        count = torch.zeros(m, depth, dtype=torch.long)    # arguments closed so far
        values = torch.zeros(m, depth, arity, dtype=torch.long)
        tokens = torch.full((m, length), PAD)
        labels = torch.zeros(m, dtype=torch.long)
        # the root operator
        ops[:, 0] = torch.randint(0, len(OPERATORS), (m,), generator=g)
        wants[:, 0] = torch.randint(2, arity + 1, (m,), generator=g)
        tokens[:, 0] = FIRST_OP + ops[:, 0]
        top = torch.ones(m, dtype=torch.long)              # open frames
        done = torch.zeros(m, dtype=torch.bool)
        for t in range(1, length):
            u = torch.rand(m, generator=g)
            new_op = torch.randint(0, len(OPERATORS), (m,), generator=g)
            new_wants = torch.randint(2, arity + 1, (m,), generator=g)
            digit = torch.randint(0, 10, (m,), generator=g)
            active = ~done
            frame = (top - 1).clamp_min(0)
            have = count[rows, frame]
            closing = active & (have == wants[rows, frame])
            arg = active & ~closing
            opening = arg & (top < depth) & (u < OP_PROBABILITY)
            leaf = arg & ~opening
            # a digit: the current frame's next argument
            r = rows[leaf]
            values[r, frame[r], have[r]] = digit[r]
            count[r, frame[r]] += 1
            tokens[r, t] = digit[r]
            # a new operator: a new frame on top
            r = rows[opening]
            ops[r, top[r]], wants[r, top[r]], count[r, top[r]] = new_op[r], new_wants[r], 0
            tokens[r, t] = FIRST_OP + new_op[r]
            top[r] += 1
            # a close: the frame's value becomes its parent's next argument, or the label at the root
            r = rows[closing]
            f = frame[r]
            result = apply_operator(ops[r, f], values[r, f], count[r, f])
            tokens[r, t] = CLOSE
            root = f == 0
            labels[r[root]] = result[root]
            done[r[root]] = True
            child, parent = r[~root], f[~root] - 1
            values[child, parent, count[child, parent]] = result[~root]
            count[child, parent] += 1
            top[r] -= 1
        return tokens, labels, done
