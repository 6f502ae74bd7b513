"""The algorithmic tasks (reverse, sort, assoc_recall, induction, selective_copy, parity, modular_add, addition,
dyck, markov, listops): labels against slow references written here with plain Python loops, and each task's
own parameter checks. Determinism and the tensor layout are covered for every task by tests/tasks/test_base.py."""

import statistics

import pytest
import torch

from models.errors import ConfigError
from tasks import IGNORE, TASKS
from tasks.base import SPLITS


def make(name, **params):
    return TASKS.get(name)(**params)


def rows(split_data):
    return split_data.inputs.tolist(), split_data.targets.tolist()


def check_transduction(inputs, targets, sources, answers, vocab):
    """The copy-style layout `source SEP answer[:-1]`, targets IGNORE x len(source) then the answer."""
    for row_in, row_target, source, answer in zip(inputs, targets, sources, answers):
        length = len(source)
        assert row_in == list(source) + [vocab] + list(answer[:-1])
        assert row_target == [IGNORE] * length + list(answer)


# --- reverse ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("length,vocab", [(12, 10), (1, 3), (5, 2)])
def test_reverse_matches_the_reference(split, length, vocab):
    data = make("reverse", length=length, vocab=vocab).make_split(split, 30, seed=4)
    inputs, targets = rows(data)
    sources = [row[:length] for row in inputs]
    answers = []
    for source in sources:
        assert all(0 <= s < vocab for s in source)
        answers.append([source[length - 1 - i] for i in range(length)])
    check_transduction(inputs, targets, sources, answers, vocab)


def test_reverse_sizes():
    task = make("reverse", length=7, vocab=4, n_train=11, n_eval=5)
    assert (task.vocab_size, task.n_classes, task.max_len(), task.chance) == (5, 4, 14, 0.25)
    assert [task.split_size(s) for s in SPLITS] == [11, 5, 5]


# --- sort ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("length,vocab", [(10, 10), (1, 4), (8, 3)])
def test_sort_matches_the_reference(split, length, vocab):
    data = make("sort", length=length, vocab=vocab).make_split(split, 30, seed=2)
    inputs, targets = rows(data)
    sources = [row[:length] for row in inputs]
    answers = []
    for source in sources:
        remaining, answer = list(source), []
        while remaining:  # selection sort, duplicates kept
            smallest = min(remaining)
            remaining.remove(smallest)
            answer.append(smallest)
        answers.append(answer)
    check_transduction(inputs, targets, sources, answers, vocab)


def test_sort_sources_have_duplicates_and_are_not_sorted():
    data = make("sort").make_split("train", 200, seed=0)
    sources = data.inputs[:, :10].tolist()
    assert sum(len(set(s)) < len(s) for s in sources) > 100
    assert sum(s == sorted(s) for s in sources) < 5


# --- assoc_recall -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("params", [{}, {"n_pairs": 3, "n_queries": 1, "vocab": 7}, {"n_pairs": 4, "n_queries": 4,
                                                                                     "vocab": 8}])
def test_assoc_recall_targets_are_the_bound_values(split, params):
    task = make("assoc_recall", **params)
    p = task.params
    n_keys = p.vocab // 2
    data = task.make_split(split, 40, seed=1)
    inputs, targets = rows(data)
    for row_in, row_target in zip(inputs, targets):
        assert len(row_in) == 2 * (p.n_pairs + p.n_queries) == task.max_len()
        binding = {}
        for i in range(p.n_pairs):
            key, value = row_in[2 * i], row_in[2 * i + 1]
            assert 0 <= key < n_keys and n_keys <= value < p.vocab  # disjoint ranges
            assert key not in binding  # distinct keys
            binding[key] = value
            assert row_target[2 * i] == IGNORE and row_target[2 * i + 1] == IGNORE
        asked = []
        for i in range(p.n_queries):
            at = 2 * p.n_pairs + 2 * i
            key, shown = row_in[at], row_in[at + 1]
            assert key in binding
            asked.append(key)
            assert shown == binding[key]  # the query's own value follows it (teacher forcing)
            assert row_target[at] == binding[key] - n_keys  # scored: the value's index
            assert row_target[at + 1] == IGNORE
        assert len(set(asked)) == len(asked)


def test_assoc_recall_queries_are_shuffled_and_values_repeat():
    data = make("assoc_recall").make_split("train", 200, seed=0)
    inputs = data.inputs.tolist()
    in_order = sum([r[16 + 2 * i] for i in range(8)] == [r[2 * i] for i in range(8)] for r in inputs)
    assert in_order < 5
    assert sum(len(set(r[1:16:2])) < 8 for r in inputs) > 100  # values are drawn with replacement


def test_assoc_recall_sizes_and_checks():
    task = make("assoc_recall", n_pairs=3, n_queries=2, vocab=9)
    assert (task.vocab_size, task.n_classes, task.max_len()) == (9, 5, 10)
    with pytest.raises(ConfigError, match="n_queries=4 .* must be <= task.n_pairs=3"):
        make("assoc_recall", n_pairs=3, n_queries=4)
    with pytest.raises(ConfigError, match="n_pairs=5 .* at most task.vocab // 2 = 4"):
        make("assoc_recall", n_pairs=5, n_queries=1, vocab=8)


# --- induction ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
def test_induction_repeated_once_second_half_equals_first(split):
    length = 8
    data = make("induction", length=length, min_length=length, vocab=10).make_split(split, 30, seed=5)
    inputs, targets = rows(data)
    for row_in, row_target in zip(inputs, targets):
        first, second = row_in[:length], row_in[length:]
        assert second == first
        assert len(set(first)) == length
        for j in range(2 * length):
            if j < length:
                assert row_target[j] == IGNORE
            elif j < 2 * length - 1:
                assert row_target[j] == row_in[j + 1]
            else:
                assert row_target[j] == first[0]  # the repetition goes on


@pytest.mark.parametrize("split", SPLITS)
def test_induction_variable_period(split):
    task = make("induction", length=10, min_length=3, vocab=12)
    data = task.make_split(split, 60, seed=0)
    inputs, targets = rows(data)
    periods = []
    for row_in, row_target in zip(inputs, targets):
        k = 1
        while k < len(row_in) and row_in[k] != row_in[0]:  # the first return of the first token
            k += 1
        periods.append(k)
        segment = row_in[:k]
        assert len(set(segment)) == k and 3 <= k <= 10
        for j in range(len(row_in)):
            assert row_in[j] == segment[j % k]
            expected = segment[(j + 1) % k] if j >= k else IGNORE
            assert row_target[j] == expected
    assert len(set(periods)) > 4


def test_induction_checks():
    with pytest.raises(ConfigError, match="min_length=5 .* must be <= task.length=4"):
        make("induction", length=4, min_length=5)
    with pytest.raises(ConfigError, match="vocab=3 .* must be >= task.length=4"):
        make("induction", length=4, min_length=2, vocab=3)


# --- selective_copy -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("length,n_content,vocab", [(24, 6, 8), (5, 5, 3), (9, 1, 2)])
def test_selective_copy_matches_the_reference(split, length, n_content, vocab):
    task = make("selective_copy", length=length, n_content=n_content, vocab=vocab)
    data = task.make_split(split, 30, seed=3)
    inputs, targets = rows(data)
    noise, sep = vocab, vocab + 1
    for row_in, row_target in zip(inputs, targets):
        stream = row_in[:length]
        content = [s for s in stream if s != noise]
        assert len(content) == n_content and all(0 <= s < vocab for s in content)
        assert row_in[length] == sep
        assert row_in[length + 1:] == content[:-1]
        assert row_target == [IGNORE] * length + content


def test_selective_copy_positions_vary():
    data = make("selective_copy").make_split("train", 100, seed=0)
    masks = {tuple(row) for row in (data.inputs[:, :24] != 8).long().tolist()}
    assert len(masks) > 90
    with pytest.raises(ConfigError, match="n_content=5 .* must be <= task.length=4"):
        make("selective_copy", length=4, n_content=5)


# --- parity -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split", SPLITS)
def test_parity_labels_and_lengths(split):
    task = make("parity", length=6, test_length=9)
    data = task.make_split(split, 50, seed=0)
    inputs, targets = rows(data)
    for bits, label in zip(inputs, targets):
        assert len(bits) == (9 if split == "test" else 6)
        ones = 0
        for b in bits:
            assert b in (0, 1)
            ones += b
        assert label == ones % 2
    assert 10 < sum(targets) < 40
    assert task.max_len() == 9 and task.vocab_size == 2 and task.n_classes == 2 and not task.causal


def test_parity_checks():
    with pytest.raises(ConfigError, match="test_length=3 .* must be >= task.length=4"):
        make("parity", length=4, test_length=3)


# --- modular_add --------------------------------------------------------------------------------------------

def pair_set(task, split, seed=0):
    data = task.make_split(split, task.split_size(split), seed)
    return [(a, b) for a, b, _ in data.inputs.tolist()]


def test_modular_add_splits_are_disjoint_and_cover_every_pair():
    task = make("modular_add", p=11, train_fraction=0.5)
    found = {split: pair_set(task, split) for split in SPLITS}
    for split in SPLITS:
        assert len(found[split]) == len(set(found[split])) == task.split_size(split)
    train, val, test = (set(found[s]) for s in SPLITS)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == {(a, b) for a in range(11) for b in range(11)}
    assert (len(train), len(val), len(test)) == (60, 30, 31)


@pytest.mark.parametrize("split", SPLITS)
def test_modular_add_targets(split):
    p = 13
    data = make("modular_add", p=p).make_split(split, 20, seed=0)
    for row_in, row_target in zip(*rows(data)):
        a, b, eq = row_in
        assert eq == p and 0 <= a < p and 0 <= b < p
        total = a
        for _ in range(b):  # addition by counting
            total = total + 1 if total + 1 < p else 0
        assert row_target == [IGNORE, IGNORE, total]


def test_modular_add_partition_depends_on_split_seed_not_run_seed():
    task = make("modular_add", p=11)
    for split in SPLITS:
        assert set(pair_set(task, split, seed=0)) == set(pair_set(task, split, seed=5))
    assert pair_set(task, "test", seed=0) == pair_set(task, "test", seed=5)  # eval order fixed too
    assert pair_set(task, "train", seed=0) != pair_set(task, "train", seed=5)  # training order is not
    other = make("modular_add", p=11, split_seed=1)
    assert set(pair_set(other, "test")) != set(pair_set(task, "test"))


def test_modular_add_checks():
    task = make("modular_add", p=5, train_fraction=0.6)
    assert (task.vocab_size, task.n_classes, task.max_len()) == (6, 5, 3)
    assert [task.split_size(s) for s in SPLITS] == [15, 5, 5]
    with pytest.raises(ConfigError, match="has 15 train pairs, 16 requested"):
        task.make_split("train", 16, seed=0)
    for bad in (0, 1, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ConfigError, match="train_fraction"):
            make("modular_add", train_fraction=bad)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="split_seed"):
            make("modular_add", split_seed=bad)
    with pytest.raises(ConfigError, match="empty split"):
        make("modular_add", p=2, train_fraction=0.9)


# --- addition -----------------------------------------------------------------------------------------------

def school_addition(a, b):
    """Digit lists (most significant first, equal width) -> the sum's digits, least significant first."""
    out, carry = [], 0
    for i in range(len(a) - 1, -1, -1):
        column = a[i] + b[i] + carry
        out.append(column % 10)
        carry = column // 10
    out.append(carry)
    return out


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("reversed_", [True, False])
@pytest.mark.parametrize("n_digits", [1, 3, 5])
def test_addition_matches_the_reference(split, reversed_, n_digits):
    d = n_digits
    data = make("addition", n_digits=d, reversed=reversed_).make_split(split, 40, seed=6)
    for row_in, row_target in zip(*rows(data)):
        a, plus, b, equals = row_in[:d], row_in[d], row_in[d + 1:2 * d + 1], row_in[2 * d + 1]
        assert (plus, equals) == (10, 11)
        answer = school_addition(a, b)
        value_a = int("".join(map(str, a)))
        value_b = int("".join(map(str, b)))
        assert int("".join(map(str, reversed(answer)))) == value_a + value_b  # the reference itself
        if not reversed_:
            answer = list(reversed(answer))
        assert row_in[2 * d + 2:] == answer[:-1]
        assert row_target == [IGNORE] * (2 * d + 1) + answer


def test_addition_has_carries_and_checks():
    data = make("addition", n_digits=3).make_split("train", 500, seed=0)
    a = data.inputs[:, 2] + data.inputs[:, 6]
    assert 0.3 < (a >= 10).float().mean() < 0.6  # the lowest place carries about 45% of the time
    with pytest.raises(ConfigError, match="task.reversed of task addition must be true or false"):
        make("addition", reversed="yes")


# --- dyck ---------------------------------------------------------------------------------------------------

def stack_balanced(tokens, k):
    stack = []
    for t in tokens:
        if t < k:
            stack.append(t)
        elif not stack or stack.pop() != t - k:
            return False
    return not stack


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("n_types,length", [(2, 16), (1, 10), (3, 8)])
def test_dyck_labels_match_a_stack(split, n_types, length):
    data = make("dyck", n_types=n_types, length=length).make_split(split, 300, seed=2)
    inputs, targets = rows(data)
    for tokens, label in zip(inputs, targets):
        assert len(tokens) == length and all(0 <= t < 2 * n_types for t in tokens)
        assert label == int(stack_balanced(tokens, n_types))
    assert 0.4 < statistics.mean(targets) < 0.6


def test_dyck_negatives_defeat_counting():
    k = 2
    data = make("dyck", n_types=k, length=16).make_split("train", 400, seed=0)
    inputs, targets = rows(data)
    for tokens in inputs:
        for t in range(k):  # every type opens as often as it closes, in both classes
            assert tokens.count(t) == tokens.count(t + k)
    negatives = [tokens for tokens, label in zip(inputs, targets) if label == 0]
    # some negatives also never close below depth zero: only type matching tells them apart
    never_negative = 0
    for tokens in negatives:
        depth, low = 0, 0
        for t in tokens:
            depth += 1 if t < k else -1
            low = min(low, depth)
        never_negative += low == 0
    assert never_negative > 0.1 * len(negatives)
    assert len({tuple(t) for t in inputs}) > 350


def test_dyck_checks():
    with pytest.raises(ConfigError, match="length=7 .* must be even"):
        make("dyck", length=7)


# --- markov -------------------------------------------------------------------------------------------------

def test_markov_rows_are_distributions_and_sequences_follow_their_chains():
    task = make("markov", vocab=4, length=30, alpha=0.3)
    transitions, states = task.chains("train", 200, seed=0)
    assert transitions.shape == (200, 4, 4) and states.shape == (200, 31)
    assert torch.allclose(transitions.sum(-1), torch.ones(200, 4, dtype=transitions.dtype))
    assert (transitions >= 0).all()
    for chain, sequence in zip(transitions.tolist(), states.tolist()):
        for now, nxt in zip(sequence[:-1], sequence[1:]):
            assert chain[now][nxt] > 0
    data = task.make_split("train", 200, seed=0)
    assert torch.equal(data.inputs, states[:, :-1]) and torch.equal(data.targets, states[:, 1:])


def test_markov_transition_frequencies_match_the_chain():
    task = make("markov", vocab=3, length=4000, alpha=1.0)
    transitions, states = task.chains("val", 3, seed=0)
    for chain, sequence in zip(transitions.tolist(), states.tolist()):
        counts = [[0] * 3 for _ in range(3)]
        for now, nxt in zip(sequence[:-1], sequence[1:]):
            counts[now][nxt] += 1
        for i in range(3):
            visits = sum(counts[i])
            if visits > 300:
                for j in range(3):
                    assert abs(counts[i][j] / visits - chain[i][j]) < 0.08


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_markov_dirichlet_moments(alpha):
    v = 4
    rows_ = make("markov", vocab=v, length=2, alpha=alpha).chains("train", 3000, seed=1)[0].reshape(-1, v)
    mean, var = rows_.mean().item(), rows_[:, 0].var().item()
    assert mean == pytest.approx(1 / v)
    expected_var = (1 / v) * (1 - 1 / v) / (v * alpha + 1)  # Dirichlet marginal variance
    assert var == pytest.approx(expected_var, rel=0.1)


def test_markov_chance_and_ceilings():
    task = make("markov")
    assert task.chance == pytest.approx(1 / 3)
    ceilings = task.bayes_accuracy("test", 500, seed=0)
    assert task.chance < ceilings["unigram"] < ceilings["posterior"] < ceilings["oracle"] < 0.95
    assert task.chance < task.solved_at < ceilings["posterior"]
    with pytest.raises(ConfigError, match="alpha"):
        make("markov", alpha=0)
    with pytest.raises(ConfigError, match="vocab=1"):
        make("markov", vocab=1)


# --- listops ------------------------------------------------------------------------------------------------

OPS = {10: "MIN", 11: "MAX", 12: "MED", 13: "SM"}


def evaluate_listops(tokens):
    """Recursive descent over the token list: (value, operator nesting depth, largest argument count)."""
    position = 0

    def parse():
        nonlocal position
        tok = tokens[position]
        position += 1
        if tok < 10:
            return tok, 0, 0
        op = OPS[tok]
        args, depth, widest = [], 0, 0
        while tokens[position] != 14:
            value, sub_depth, sub_widest = parse()
            args.append(value)
            depth, widest = max(depth, sub_depth), max(widest, sub_widest)
        position += 1
        if op == "MIN":
            value = min(args)
        elif op == "MAX":
            value = max(args)
        elif op == "SM":
            value = sum(args) % 10
        else:
            ordered = sorted(args)
            middle = len(ordered) // 2
            value = ordered[middle] if len(ordered) % 2 else int((ordered[middle - 1] + ordered[middle]) / 2)
        return value, depth + 1, max(widest, len(args))

    result = parse()
    return result, position


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("params", [{}, {"max_depth": 1, "max_args": 2, "max_length": 8},
                                    {"max_depth": 5, "max_args": 6, "max_length": 60}])
def test_listops_labels_match_a_recursive_evaluator(split, params):
    task = make("listops", **params)
    p = task.params
    data = task.make_split(split, 200, seed=3)
    inputs, targets = rows(data)
    depths = []
    for tokens, label in zip(inputs, targets):
        assert len(tokens) == p.max_length
        assert tokens[0] in OPS
        (value, depth, widest), end = evaluate_listops(tokens)
        assert value == label
        assert 1 <= depth <= p.max_depth and widest <= p.max_args
        assert all(t == 15 for t in tokens[end:]) and 15 not in tokens[:end]
        depths.append(depth)
    if p.max_depth > 1:
        assert max(depths) > 1


def test_listops_labels_spread_and_checks():
    data = make("listops").make_split("train", 2000, seed=0)
    counts = torch.bincount(data.targets, minlength=10)
    assert (counts > 100).all()
    with pytest.raises(ConfigError, match="max_args=1"):
        make("listops", max_args=1)
    shortest = make("listops", max_depth=3, max_args=5, max_length=4).make_split("train", 50, seed=0)
    for tokens in shortest.inputs.tolist():  # only `[OP d d ]` fits: the rest were redrawn
        assert tokens[0] in OPS and tokens[1] < 10 and tokens[2] < 10 and tokens[3] == 14
