"""`markov`: next-token prediction on a sequence drawn from its own random Markov chain (in-context learning).

Every row has its own transition matrix over `vocab` states, each row of it drawn from a symmetric Dirichlet
(`alpha`); the first state is uniform, the rest follow the chain. The model predicts the next state at every
position (causal), so it does well only by estimating the row's bigram statistics from the context itself:
the "statistical induction head" setting of Edelman et al., 2024 (https://arxiv.org/abs/2402.11004), whose
models pass through a unigram phase before learning the in-context bigram rule.

Scoring is accuracy of the argmax prediction over all positions. `chance` (uniform guessing) is 1/vocab, but
the best possible accuracy is far below 1: even an oracle that knows the chain predicts the most likely next
state, and the Bayes-optimal predictor from the context alone (Dirichlet posterior: counts + alpha) is lower
still, especially early in a row. `bayes_accuracy` computes both ceilings for a split, so a score can be read
against them; a smaller `alpha` makes chains more deterministic and both ceilings higher. `solved_at` is 95% of
the in-context (posterior) ceiling, so "solved" means close to Bayes-optimal in-context learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Ladder, Split, Task, positive_int, split_generator


@TASKS.register("markov")
class Markov(Task):
    modality = "tokens"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "accuracy"
    difficulty = Ladder("vocab", (2, 3, 4, 6, 8))  # more states: more transition statistics to infer in context

    @cached_property
    def solved_at(self) -> float:
        """95% of the Bayes-optimal in-context accuracy (estimated on 2,000 fixed rows): 0.95 itself is out of
        reach for any predictor, since the next state is random."""
        return round(0.95 * self.bayes_accuracy("test", 2000, seed=12345)["posterior"], 4)

    @dataclass(frozen=True)
    class Params:
        vocab: int = 3         # states
        length: int = 48       # tokens per row (predictions per row)
        alpha: float = 0.5     # Dirichlet concentration of each transition row (small: near-deterministic)
        n_train: int = 20000
        n_eval: int = 1000     # examples in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, vocab=p.vocab, length=p.length, n_train=p.n_train, n_eval=p.n_eval)
        if p.vocab < 2:
            raise ConfigError(f"task.vocab={p.vocab} of task {self.name} must be >= 2")
        if isinstance(p.alpha, bool) or not isinstance(p.alpha, (int, float)) or not 0 < p.alpha < float("inf"):
            raise ConfigError(f"task.alpha of task {self.name} must be a positive number, got {p.alpha!r}")

    @property
    def vocab_size(self) -> int:
        return self.params.vocab

    @property
    def n_classes(self) -> int:
        return self.params.vocab

    def max_len(self) -> int:
        return self.params.length

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def chains(self, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, vocab, vocab) the rows' transition matrices and (n, length + 1) their state sequences."""
        p = self.params
        g = split_generator(split, seed)
        transitions = _dirichlet(torch.full((n, p.vocab, p.vocab), float(p.alpha), dtype=torch.float64), g)
        cumulative = transitions.cumsum(dim=2)
        uniform = torch.rand(n, p.length + 1, generator=g, dtype=torch.float64)
        states = torch.zeros(n, p.length + 1, dtype=torch.long)
        states[:, 0] = (uniform[:, 0] * p.vocab).long().clamp_max(p.vocab - 1)
        rows = torch.arange(n)
        for j in range(1, p.length + 1):  # inverse-CDF sampling of each step, vectorised over rows
            cdf = cumulative[rows, states[:, j - 1]]
            states[:, j] = (cdf < uniform[:, j:j + 1]).sum(dim=1).clamp_max(p.vocab - 1)
        return transitions, states

    def make_split(self, split: str, n: int, seed: int) -> Split:
        _, states = self.chains(split, n, seed)
        return Split(states[:, :-1].contiguous(), states[:, 1:].contiguous())

    def bayes_accuracy(self, split: str, n: int, seed: int) -> dict[str, float]:
        """Reference accuracies on a split: `oracle` knows each row's chain; `posterior` predicts from the
        context only, by the Dirichlet posterior mean of the current state's row (transition counts + alpha),
        the Bayes-optimal in-context rule; `unigram` predicts the most frequent state of the context so far,
        ignoring the current state (the phase Edelman et al. see before the bigram rule is learned)."""
        p = self.params
        transitions, states = self.chains(split, n, seed)
        rows = torch.arange(n)
        oracle = posterior = unigram = 0
        counts = torch.zeros(n, p.vocab, p.vocab, dtype=torch.float64)
        seen = torch.zeros(n, p.vocab, dtype=torch.float64)
        for j in range(p.length):
            now, nxt = states[:, j], states[:, j + 1]
            oracle += (transitions[rows, now].argmax(1) == nxt).sum().item()
            # ties (e.g. no counts yet) are broken towards the lowest id, as argmax does
            posterior += (counts[rows, now].argmax(1) == nxt).sum().item()
            seen[rows, now] += 1
            unigram += (seen.argmax(1) == nxt).sum().item()
            counts[rows, now, nxt] += 1
        total = n * p.length
        return {"oracle": oracle / total, "posterior": posterior / total, "unigram": unigram / total}


def _dirichlet(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Dirichlet samples along the last dimension from a seeded generator (torch's sampler takes none)."""
    gamma = _gamma(alpha, g)
    return gamma / gamma.sum(dim=-1, keepdim=True)


def _gamma(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gamma(alpha, 1) by Marsaglia & Tsang (2000), vectorised rejection (each round redraws the rejected
    entries); alpha < 1 uses Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha)."""
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(alpha)
    pending = torch.ones_like(alpha, dtype=torch.bool)
    for _ in range(100):  # acceptance is > 95% per round
        x = torch.randn(alpha.shape, generator=g, dtype=alpha.dtype)
        u = torch.rand(alpha.shape, generator=g, dtype=alpha.dtype)
        v = (1 + c * x) ** 3
        accept = (v > 0) & (torch.log(u) < 0.5 * x ** 2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = pending & accept
        out = torch.where(take, d * v, out)
        pending &= ~take
        if not pending.any():
            break
    u = torch.rand(alpha.shape, generator=g, dtype=alpha.dtype)
    return torch.where(boost, out * u.clamp_min(1e-300) ** (1.0 / alpha), out).clamp_min(1e-300)
