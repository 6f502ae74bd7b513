"""`assoc_recall`: multi-query associative recall (MQAR), as in Zoology (Arora et al., 2023,
https://arxiv.org/abs/2312.04927).

Input `k_1 v_1 .. k_N v_N q_1 v(q_1) .. q_Q v(q_Q)`, causal: N key-value pairs with distinct keys, then Q
distinct keys of those pairs in random order, each followed by its value (teacher forcing, as Zoology's
sequences are). The model is scored only at the query keys, on predicting the value bound to that key earlier
in the sequence. Keys and values come from disjoint ranges of the vocabulary, so a key is never mistaken for a
value. Solving it needs a content-addressed lookup over the context (an induction-style head), the skill that
Zoology found separates attention from gated-convolution and recurrent models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import IGNORE, TASKS, Ladder, Split, Task, positive_int, split_generator


@TASKS.register("assoc_recall")
class AssocRecall(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    solved_at = 0.95
    difficulty = Ladder("n_pairs", (4, 6, 8, 12, 16))  # more key-value pairs to hold (Zoology's axis)

    @dataclass(frozen=True)
    class Params:
        n_pairs: int = 8       # key-value pairs in the context
        n_queries: int = 8     # keys queried afterwards (distinct, <= n_pairs)
        vocab: int = 32        # symbols: ids [0, vocab//2) are keys, [vocab//2, vocab) are values
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, n_pairs=p.n_pairs, n_queries=p.n_queries, vocab=p.vocab, n_train=p.n_train,
                     n_eval=p.n_eval)
        if p.n_queries > p.n_pairs:
            raise ConfigError(f"task.n_queries={p.n_queries} of task {self.name} must be <= "
                              f"task.n_pairs={p.n_pairs}")
        if p.n_pairs > self.n_keys:
            raise ConfigError(f"task.n_pairs={p.n_pairs} of task {self.name} needs distinct keys: at most "
                              f"task.vocab // 2 = {self.n_keys}")

    @property
    def n_keys(self) -> int:
        return self.params.vocab // 2

    @property
    def vocab_size(self) -> int:
        return self.params.vocab

    @property
    def n_classes(self) -> int:
        """Targets are value indices: value token id minus `n_keys`."""
        return self.params.vocab - self.n_keys

    def max_len(self) -> int:
        return 2 * (self.params.n_pairs + self.params.n_queries)

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        g = split_generator(split, seed)
        keys = torch.rand(n, self.n_keys, generator=g).argsort(dim=1)[:, :p.n_pairs]  # distinct keys per row
        values = torch.randint(0, self.n_classes, (n, p.n_pairs), generator=g)       # value indices
        asked = torch.rand(n, p.n_pairs, generator=g).argsort(dim=1)[:, :p.n_queries]  # which pairs, in order
        q_keys, q_values = keys.gather(1, asked), values.gather(1, asked)
        context = torch.stack([keys, values + self.n_keys], dim=2).reshape(n, 2 * p.n_pairs)
        queries = torch.stack([q_keys, q_values + self.n_keys], dim=2).reshape(n, 2 * p.n_queries)
        inputs = torch.cat([context, queries], dim=1)
        scored = torch.stack([q_values, torch.full_like(q_values, IGNORE)], dim=2).reshape(n, 2 * p.n_queries)
        targets = torch.cat([torch.full((n, 2 * p.n_pairs), IGNORE), scored], dim=1)
        return Split(inputs, targets)
