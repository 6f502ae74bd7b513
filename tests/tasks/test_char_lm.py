"""tasks/char_lm.py: disjoint contiguous splits, windows inside their split, next-character targets, corpora."""

import math

import pytest
import torch

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS
from tasks.char_lm import UNK, encode, load_corpus, split_ranges


def char_lm(**params):
    return TASKS.get("char_lm")(**params)


def decode(task, ids):
    return "".join(task.vocabulary[i] for i in ids.tolist())


def test_default_corpus_is_pydoc_topics_sorted_and_joined():
    from pydoc_data.topics import topics

    text = load_corpus("")
    assert text == "\n\n".join(topics[k] for k in sorted(topics))
    assert len(text) > 100_000


def test_split_ranges_are_contiguous_disjoint_and_cover_the_corpus():
    for n_chars in (20, 1000, 465_001):
        ranges = split_ranges(n_chars)
        assert list(ranges) == list(SPLITS)
        assert ranges["train"][0] == 0 and ranges["test"][1] == n_chars
        assert ranges["train"][1] == ranges["val"][0] and ranges["val"][1] == ranges["test"][0]
        covered = set()
        for start, end in ranges.values():
            assert start < end
            span = set(range(start, end))
            assert not covered & span
            covered |= span
        assert covered == set(range(n_chars))
    ranges = split_ranges(1000)
    assert ranges == {"train": (0, 900), "val": (900, 950), "test": (950, 1000)}


@pytest.mark.parametrize("split", SPLITS)
def test_windows_lie_inside_their_split_and_targets_are_the_next_characters(split):
    task = char_lm(context=32)
    ids, _ = encode("", 5)
    start, end = task.ranges()[split]
    n = 3000
    starts = task.window_starts(split, n, seed=4)
    assert (starts >= start).all() and (starts + 32 + 1 <= end).all()
    data = task.make_split(split, n, seed=4)
    assert data.inputs.shape == data.targets.shape == (n, 32)
    for row, s in enumerate(starts.tolist()[:200]):  # slicing, one window at a time
        assert data.inputs[row].tolist() == ids[s:s + 32].tolist()
        assert data.targets[row].tolist() == ids[s + 1:s + 33].tolist()
    assert torch.equal(data.inputs[:, 1:], data.targets[:, :-1])


def test_windows_decode_to_the_corpus_text():
    task = char_lm(context=40)
    text = load_corpus("")
    starts = task.window_starts("val", 50, seed=0)
    data = task.make_split("val", 50, seed=0)
    for row, s in enumerate(starts.tolist()):
        original = text[s:s + 40]
        decoded = decode(task, data.inputs[row])
        assert decoded == "".join(c if c in task.vocabulary[1:] else "<unk>" for c in original)


def test_vocabulary_is_ascii_with_one_unk_and_metric_is_bits_per_char():
    task = char_lm()
    vocab = task.vocabulary
    assert vocab[UNK] == "<unk>" and len(set(vocab)) == len(vocab)
    assert all(len(c) == 1 and ord(c) < 128 for c in vocab[1:])
    assert list(vocab[1:]) == sorted(vocab[1:])
    assert {"e", " ", "\n", "(", "A"} <= set(vocab)
    assert task.vocab_size == task.n_classes == len(vocab)
    assert task.metric == "bits_per_char" and task.higher_is_better is False
    assert task.chance == pytest.approx(math.log2(len(vocab)))
    assert task.solved_at < task.chance
    assert task.max_len() == task.params.context


def test_custom_corpus_file(tmp_path):
    text = ("the cat sat on the mat. " * 40) + "caf\u00e9 \u2014 na\u00efve. " + ("a dog ran. " * 20)
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    task = char_lm(corpus=str(path), context=8, min_count=1, n_train=50, n_eval=10)
    train_text = text[:split_ranges(len(text))["train"][1]]
    assert set(task.vocabulary[1:]) == {c for c in train_text if ord(c) < 128}
    assert "\u00e9" not in task.vocabulary
    ids, _ = encode(str(path), 1)
    assert len(ids) == len(text)
    for i, c in enumerate(text):
        if ord(c) < 128 and c in train_text:
            assert task.vocabulary[ids[i]] == c
        else:
            assert ids[i] == UNK
    data = task.make_split("test", 10, seed=0)
    start, end = task.ranges()["test"]
    assert data.inputs.shape == (10, 8)
    for row in data.inputs:
        assert decode(task, row) in "".join(task.vocabulary[i] for i in ids[start:end].tolist())


def test_min_count_sends_rare_characters_to_unk(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("ab" * 200 + "z" + "ab" * 50, encoding="utf-8")
    assert "z" in char_lm(corpus=str(path), context=4, min_count=1).vocabulary
    assert "z" not in char_lm(corpus=str(path), context=4, min_count=2).vocabulary


def test_missing_corpus_is_a_one_line_config_error(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as info:
        char_lm(corpus=str(missing))
    message = str(info.value)
    assert "task.corpus" in message and "nope.txt" in message and "\n" not in message


def test_non_utf8_corpus_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("caf\u00e9 " * 100).encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        char_lm(corpus=str(path))
    assert "UTF-8" in str(info.value) and "\n" not in str(info.value)


def test_context_longer_than_a_split_is_rejected(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 100, encoding="utf-8")
    with pytest.raises(ConfigError, match="task.context=64"):
        char_lm(corpus=str(path), min_count=1)


@pytest.mark.parametrize("key", ["context", "min_count", "n_train", "n_eval"])
@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_sizes_must_be_positive_integers(key, value):
    with pytest.raises(ConfigError, match=f"task.{key} of task char_lm"):
        char_lm(**{key: value})
