"""`char_lm`: character-level language modelling of real English prose (text modality, next-token prediction).

Probes what a causal transformer learns from raw characters within a short context: spelling, frequent words,
punctuation and some syntax. The corpus ships with Python itself, so nothing is downloaded: the documentation
topics of `pydoc_data.topics.topics` (about 460k characters of prose and code from the Python reference, keys
sorted and joined with blank lines; the text follows the running Python's version, so compare scores within
one Python version). `task.corpus=PATH` reads a UTF-8 text file instead.

The corpus is cut once into three contiguous, non-overlapping character ranges (the first 90% train, the next
5% validation, the last 5% test), so evaluation text is never seen in training. An example is a random window
of `context + 1` characters lying wholly inside its split's range (start positions drawn from the split's
seeded generator); the inputs are its first `context` characters, the targets the next character at every
position (all positions scored). The vocabulary is every ASCII character that occurs at least `min_count`
times in the training range; every other character (rare or non-ASCII) maps to one UNK id (0).

The metric is bits per character (mean cross-entropy / ln 2, lower is better); a model that guesses uniformly
scores log2(vocabulary size). Character-level language modelling as a transformer benchmark: Al-Rfou et al.,
2019, "Character-Level Language Modeling with Deeper Self-Attention", https://arxiv.org/abs/1808.04444.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from models.errors import ConfigError
from tasks.base import SPLITS, TASKS, Split, Task, positive_int, split_generator

FRACTIONS = {"train": 0.90, "val": 0.05, "test": 0.05}  # contiguous ranges of the corpus, in this order
UNK = 0


@lru_cache(maxsize=4)
def load_corpus(path: str = "") -> str:
    """The corpus text: pydoc's topics (sorted keys, joined by blank lines) when `path` is empty, else the file."""
    if not path:
        from pydoc_data.topics import topics  # ships with CPython: no download

        return "\n\n".join(topics[key] for key in sorted(topics))
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"task.corpus={path!r} of task char_lm is not a readable file")
    try:
        return file.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as error:
        raise ConfigError(f"task.corpus={path!r} of task char_lm is not UTF-8 text: "
                          f"{str(error).splitlines()[0]}") from None


def split_ranges(n_chars: int) -> dict[str, tuple[int, int]]:
    """Half-open character ranges [start, end) of each split: contiguous, in order train, val, test, disjoint."""
    ranges, start = {}, 0
    for i, split in enumerate(SPLITS):
        end = n_chars if i == len(SPLITS) - 1 else start + int(n_chars * FRACTIONS[split])
        ranges[split] = (start, end)
        start = end
    return ranges


@lru_cache(maxsize=4)
def encode(path: str, min_count: int) -> tuple[torch.Tensor, tuple[str, ...]]:
    """The corpus as ids (int64) and the vocabulary (`vocab[i]` is the character of id i; id 0 is UNK)."""
    text = load_corpus(path)
    train_start, train_end = split_ranges(len(text))["train"]
    counts = Counter(text[train_start:train_end])
    chars = sorted(c for c, k in counts.items() if ord(c) < 128 and k >= min_count)
    vocab = ("<unk>",) + tuple(chars)
    # Vectorised mapping: code points -> ids through a sorted table of the corpus's distinct code points.
    lookup = {c: i for i, c in enumerate(vocab) if i != UNK}
    distinct = sorted(set(text))
    keys = torch.tensor([ord(c) for c in distinct], dtype=torch.long)
    values = torch.tensor([lookup.get(c, UNK) for c in distinct], dtype=torch.long)
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
    ids = values[torch.searchsorted(keys, codes)]
    return ids, vocab


@TASKS.register("char_lm")
class CharLM(Task):
    modality = "text"
    input_kind = "tokens"
    output_kind = "token"
    causal = True
    metric = "bits_per_char"
    higher_is_better = False
    solved_at = 2.5  # bits per character; unigram statistics alone give about 4.4 on this corpus

    @dataclass(frozen=True)
    class Params:
        context: int = 64      # characters per example (the model sees `context`, predicts each next one)
        corpus: str = ""       # UTF-8 text file; "" = Python's pydoc topics
        min_count: int = 5     # an ASCII character seen fewer times in the train range becomes UNK
        n_train: int = 20000   # training windows
        n_eval: int = 500      # windows in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, context=p.context, min_count=p.min_count, n_train=p.n_train, n_eval=p.n_eval)
        if not isinstance(p.corpus, str):
            raise ConfigError(f"task.corpus of task char_lm must be a file path or '', got {p.corpus!r}")
        ids, _ = encode(p.corpus, p.min_count)
        shortest = min(end - start for start, end in split_ranges(len(ids)).values())
        if shortest < p.context + 1:
            raise ConfigError(f"task.context={p.context} of task char_lm needs every split to hold "
                              f"{p.context + 1} characters; the shortest has {shortest} (corpus: {len(ids)})")

    def _encoded(self) -> tuple[torch.Tensor, tuple[str, ...]]:
        return encode(self.params.corpus, self.params.min_count)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self._encoded()[1]

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def n_classes(self) -> int:
        return len(self.vocabulary)

    @property
    def chance(self) -> float:
        """Bits per character of uniform guessing over the vocabulary."""
        return math.log2(self.n_classes)

    def max_len(self) -> int:
        return self.params.context

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def ranges(self) -> dict[str, tuple[int, int]]:
        return split_ranges(len(self._encoded()[0]))

    def window_starts(self, split: str, n: int, seed: int) -> torch.Tensor:
        """Start positions of the windows of a split (each window covers [s, s + context + 1))."""
        generator = split_generator(split, seed)  # validates the split name
        start, end = self.ranges()[split]
        return torch.randint(start, end - self.params.context, (n,), generator=generator)

    def make_split(self, split: str, n: int, seed: int) -> Split:
        ids, _ = self._encoded()
        starts = self.window_starts(split, n, seed)
        windows = ids[starts[:, None] + torch.arange(self.params.context + 1)]  # (n, context + 1), one gather
        return Split(windows[:, :-1].contiguous(), windows[:, 1:].contiguous())
