"""`permutation`: state tracking, the running product of a sequence of permutations (the word problem of a group).

Input `g_1 .. g_L`, each a uniformly drawn element of a permutation group G, as a token id; causal; at every
position t the model predicts the id of the running product p_t = g_t o ... o g_1 (apply g_1 first; `o` is
composition, (s o r)(i) = s(r(i))), i.e. where a row of n items ends up after the first t shuffles. Every position
is scored. The product depends on every earlier element and, for a non-abelian group, on their order.

Why: Merrill et al. (2024, "The Illusion of State in State-Space Models", https://arxiv.org/abs/2404.08819)
show that the word problem of S5 (and of any non-solvable group, such as A5) is NC1-complete, so transformers and
linear state-space models of constant depth cannot express it at growing length, while solvable groups (cyclic
Z_n, S3, S4, A4) are easier; a recurrent model tracks any of them with one state. `task.group` picks the group:

- `S<n>`: the symmetric group, all n! permutations of n items (n = 2..6); `S5` (120 elements) is the hard case
  of the paper, `S3` (6 elements, solvable, the smallest non-abelian group) the easy rung and the default;
- `A<n>`: the alternating group, the n!/2 even permutations (n = 3..6); `A5` (60 elements) is the smallest
  non-solvable group;
- `Z<n>`: the cyclic group of the n rotations i -> i + k mod n (n = 2..64): abelian, so only the count of each
  rotation matters (modular addition in disguise).

Why the default is `S3` at length 5 and not S5: at the quick budget (600 steps of 64 sequences) the baseline learns
nothing of S5 beyond position 1 (p_1 = g_1) at lengths 4 to 16 (conf/task/permutation.yaml has the figures); its
120 x 120 multiplication table alone is not learned from 20,000 sequences, so S5 would score every variant at the
same floor. `S3` at length 5 lands the baseline in the useful middle (about 0.7 of the way from chance to perfect),
where a variant can show it tracks state better or worse; `task.group=S5` (or `A5`) is the hard rung.

Element ids are the permutations in lexicographic order of their image tuples (p(0), .., p(n-1)), so id 0 is the
identity. With uniform, independent inputs each running product after the first is uniform over G whatever the
current input is, so a model that does not track the state scores 1/|G| there (`chance`, the uniform guess);
only position 1 (p_1 = g_1) is free. Generation is one table lookup per position over the precomputed
multiplication table, vectorised over examples and deterministic in the seed.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Ladder, Split, Task, positive_int, split_generator

#: Group kind -> (smallest, largest) number of points n, and what the kind is.
KINDS = {"S": (2, 6, "symmetric"), "A": (3, 6, "alternating"), "Z": (2, 64, "cyclic")}


def _sign(perm: tuple[int, ...]) -> int:
    """+1 for an even permutation, -1 for an odd one (parity of the number of inversions)."""
    inversions = sum(perm[i] > perm[j] for i in range(len(perm)) for j in range(i + 1, len(perm)))
    return -1 if inversions % 2 else 1


@lru_cache(maxsize=None)
def group_elements(group: str) -> tuple[tuple[int, ...], ...]:
    """The elements of `group` (e.g. "S5") as image tuples, in lexicographic order (the token ids)."""
    kind, n = parse_group(group)
    if kind == "Z":
        return tuple(sorted(tuple((i + k) % n for i in range(n)) for k in range(n)))
    perms = itertools.permutations(range(n))  # lexicographic already
    return tuple(p for p in perms if kind == "S" or _sign(p) == 1)


@lru_cache(maxsize=None)
def multiplication_table(group: str) -> torch.Tensor:
    """(|G|, |G|) ids: table[a, b] = id of (element a) o (element b), i.e. apply b first, then a."""
    elements = torch.tensor(group_elements(group))  # (size, n)
    size, n = elements.shape
    # (a o b)(i) = a(b(i)): row a gathered at the images of b, for every pair at once
    composed = elements[:, None, :].expand(size, size, n).gather(2, elements[None, :, :].expand(size, size, n))
    # Look the composed tuples up by a base-n code of their first k images, k the shortest prefix that tells the
    # elements apart (1 for a cyclic group, n-1 for S_n): lexicographic order is code order, and n^k fits int64.
    k = next(k for k in range(1, n + 1) if len(set(group_elements(group)[i][:k] for i in range(size))) == size)
    weights = n ** torch.arange(k - 1, -1, -1)
    codes = (elements[:, :k] * weights).sum(-1)
    return torch.searchsorted(codes, (composed[..., :k] * weights).sum(-1))


def parse_group(group) -> tuple[str, int]:
    """"S5" -> ("S", 5), or a one-line ConfigError naming the valid groups."""
    match = re.fullmatch(r"([SAZ])(\d+)", group) if isinstance(group, str) else None
    valid = "; ".join(f"{k}<n> ({name}, n = {lo}..{hi})" for k, (lo, hi, name) in KINDS.items())
    if match is None:
        raise ConfigError(f"task.group of task permutation must be a group name such as S5, A5, S3 or Z5, got "
                          f"{group!r}; valid: {valid}")
    kind, n = match.group(1), int(match.group(2))
    low, high, _ = KINDS[kind]
    if not low <= n <= high:
        raise ConfigError(f"task.group={group} of task permutation is out of range; valid: {valid}")
    return kind, n


@TASKS.register("permutation")
class Permutation(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("group", ("S3", "S4", "A5", "S5"))  # solvable groups first; S5: the hard case

    @dataclass(frozen=True)
    class Params:
        group: str = "S3"      # S<n>, A<n> or Z<n> (see the module docstring); S5 is the paper's hard case
        length: int = 5        # group elements per sequence (a running product is predicted at each)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        parse_group(p.group)
        positive_int(self.name, length=p.length, n_train=p.n_train, n_eval=p.n_eval)

    @property
    def order(self) -> int:
        """|G|, the number of group elements: the input vocabulary and the output classes."""
        kind, n = parse_group(self.params.group)
        return {"S": math.factorial(n), "A": math.factorial(n) // 2, "Z": n}[kind]

    @property
    def vocab_size(self) -> int:
        return self.order

    @property
    def n_classes(self) -> int:
        return self.order

    def max_len(self) -> int:
        return self.params.length

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        table = multiplication_table(p.group)
        inputs = torch.randint(0, self.order, (n, p.length), generator=split_generator(split, seed))
        targets = torch.empty_like(inputs)
        state = inputs[:, 0]
        targets[:, 0] = state
        for t in range(1, p.length):
            # p_t = g_t o p_{t-1}: the word problem's prefix products (Merrill et al., 2024,
            # https://arxiv.org/abs/2404.08819)
            state = table[inputs[:, t], state]
            targets[:, t] = state
        return Split(inputs, targets)
