"""tasks/permutation.py: the running product of a sequence of group elements, checked against slow references."""

import itertools
import math

import pytest
import torch

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS
from tasks.permutation import group_elements, multiplication_table

GROUPS = ["S5", "A5", "S3", "Z5", "S4", "A4", "Z12", "S2"]


def make(**params):
    return TASKS.get("permutation")(**params)


def compose(s, r):
    """(s o r)(i) = s(r(i)): apply r first, then s. Pure Python."""
    return tuple(s[r[i]] for i in range(len(r)))


def is_even(p):
    """Even permutation: an even number of transpositions, counted by sorting with swaps (not by inversions,
    which the implementation uses)."""
    p, swaps = list(p), 0
    for i in range(len(p)):
        while p[i] != i:
            j = p[i]
            p[i], p[j] = p[j], p[i]
            swaps += 1
    return swaps % 2 == 0


def reference_elements(group):
    kind, n = group[0], int(group[1:])
    if kind == "Z":
        return sorted(tuple((i + k) % n for i in range(n)) for k in range(n))
    everything = sorted(itertools.permutations(range(n)))
    return [p for p in everything if kind == "S" or is_even(p)]


@pytest.mark.parametrize("group,order", [("S5", 120), ("A5", 60), ("S3", 6), ("Z5", 5), ("S6", 720), ("A4", 12),
                                         ("Z64", 64), ("S2", 2)])
def test_elements_are_the_group_in_lexicographic_order_with_the_identity_first(group, order):
    elements = group_elements(group)
    assert list(elements) == reference_elements(group)
    assert len(set(elements)) == order == make(group=group).order
    n = int(group[1:])
    assert elements[0] == tuple(range(n))
    closed = set(elements)
    for a, b in itertools.islice(itertools.product(elements, repeat=2), 5000):
        assert compose(a, b) in closed  # closed under composition: a group, not just a set of permutations


@pytest.mark.parametrize("group", GROUPS)
def test_multiplication_table_composes_right_to_left(group):
    elements = group_elements(group)
    table = multiplication_table(group)
    for a, b in itertools.product(range(len(elements)), repeat=2):
        assert elements[table[a, b]] == compose(elements[a], elements[b])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("group,length", [("S5", 16), ("A5", 9), ("S3", 5), ("Z5", 7), ("S4", 1)])
def test_targets_are_the_running_products_of_a_slow_reference(split, group, length):
    task = make(group=group, length=length)
    data = task.make_split(split, 50, seed=4)
    elements = group_elements(group)
    assert data.inputs.shape == data.targets.shape == (50, length)
    for inputs, targets in zip(data.inputs.tolist(), data.targets.tolist()):
        state = None
        for g, target in zip(inputs, targets):
            state = elements[g] if state is None else compose(elements[g], state)  # p_t = g_t o p_{t-1}
            assert elements[target] == state


def test_order_matters_in_s5_and_not_in_z5():
    """The convention (apply g_1 first) is observable: in S5 the reversed composition disagrees somewhere; in the
    abelian Z5 the running product is the sum of the rotation amounts mod 5, in any order."""
    s5 = make(group="S5").make_split("train", 200, seed=0)
    elements = group_elements("S5")
    g1, g2 = s5.inputs[:, 0].tolist(), s5.inputs[:, 1].tolist()
    p2 = s5.targets[:, 1].tolist()
    assert all(elements[p] == compose(elements[b], elements[a]) for a, b, p in zip(g1, g2, p2))
    assert any(elements[p] != compose(elements[a], elements[b]) for a, b, p in zip(g1, g2, p2))
    z5 = make(group="Z5", length=12).make_split("test", 100, seed=1)
    shift = torch.tensor([e[0] for e in group_elements("Z5")])  # each rotation's amount k: i -> i + k
    assert torch.equal(shift[z5.targets], shift[z5.inputs].cumsum(1) % 5)


def test_inputs_are_uniform_and_later_products_carry_no_shortcut():
    """Every element is drawn, and the product at t >= 2 is (nearly) independent of the current input: a model
    that reads only g_t scores about chance there, which is what `chance` (1/|G|) reports."""
    task = make(group="S3", length=8)
    data = task.make_split("train", 6000, seed=0)
    assert set(data.inputs.unique().tolist()) == set(range(6))
    joint = torch.zeros(6, 6)
    for g, p in zip(data.inputs[:, 1:].flatten().tolist(), data.targets[:, 1:].flatten().tolist()):
        joint[g, p] += 1
    best_guess_accuracy = joint.max(dim=1).values.sum() / joint.sum()
    assert best_guess_accuracy < 1 / 6 + 0.02
    assert task.chance == pytest.approx(1 / 6)


def test_sizes_and_vocabulary():
    task = make(group="A5", length=10, n_train=77, n_eval=9)
    assert (task.vocab_size, task.n_classes, task.max_len()) == (60, 60, 10)
    assert (task.split_size("train"), task.split_size("val"), task.split_size("test")) == (77, 9, 9)
    assert (make().params.group, make().params.length, make().order) == ("S3", 5, math.factorial(3))
    assert make(group="S5").order == math.factorial(5)


def test_seeded_and_independent_splits():
    task = make(group="S5", length=16)
    first, again = task.make_split("train", 40, seed=2), make(group="S5", length=16).make_split("train", 40, seed=2)
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert not torch.equal(first.inputs, task.make_split("train", 40, seed=3).inputs)
    assert not torch.equal(first.inputs, task.make_split("val", 40, seed=2).inputs)


@pytest.mark.parametrize("group", ["S7", "A2", "Z1", "Z65", "X5", "s5", "S", 5, None, "S05x"])
def test_bad_groups_are_one_line_naming_the_valid_ones(group):
    with pytest.raises(ConfigError) as info:
        make(group=group)
    message = str(info.value)
    assert "\n" not in message and "task.group" in message and "valid: S<n> (symmetric" in message


@pytest.mark.parametrize("key", ["length", "n_train", "n_eval"])
def test_sizes_must_be_positive(key):
    with pytest.raises(ConfigError, match=f"task.{key} of task permutation must be a positive integer"):
        make(**{key: 0})
