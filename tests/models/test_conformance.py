"""models/conformance.py: every registered component and task passes the checks a plugin must pass, and each
check fails on a component that breaks its rule (so a PASS means something)."""

import dataclasses

import pytest
import torch
from torch import nn

import models  # noqa: F401  (registers every variant)
import tasks  # noqa: F401
from models.attention.softmax import SoftmaxAttention
from models.components import ATTENTION, FFN, MEMORY, NORM, REGISTRIES
from models.conformance import assert_conforms, check, kinds, registry_of
from models.errors import ConfigError

# Installed plugins (the example package in CI) are loaded by tests/conftest.py and go through the same checks.
EVERY = [(kind, name) for kind in kinds() for name in registry_of(kind).names()]


@pytest.mark.parametrize("kind, name", EVERY, ids=[f"{k}-{n}" for k, n in EVERY])
def test_every_registered_name_conforms(kind, name):
    assert_conforms(kind, name)


def test_every_kind_has_checks_and_reports_each_one():
    for kind in REGISTRIES:
        outcomes = check(kind, registry_of(kind).names()[0])
        assert {o.status for o in outcomes} <= {"PASS", "FAIL", "SKIP"}
        assert len(outcomes) >= 8 and all(o.line().startswith(o.status) for o in outcomes)


def test_unknown_kind_and_name_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown kind 'atention' \(did you mean 'attention'\?\); valid: attention"):
        check("atention", "softmax")
    with pytest.raises(ConfigError, match="unknown attention 'nope'.*valid: .*softmax"):
        check("attention", "nope")


def failures(kind, name) -> dict:
    return {o.check: o.reason for o in check(kind, name) if o.status == "FAIL"}


# --- each check catches what it promises to -----------------------------------------------------------------------
def test_attention_that_reads_the_future_fails_causality(isolated_plugins):
    @ATTENTION.register("leaky")
    class Leaky(SoftmaxAttention):
        def mix(self, q, k, v, *, bias, n_prefix):
            out = super().mix(q, k, v, bias=bias, n_prefix=n_prefix)
            return out + v[:, :, -1:].mean(dim=2, keepdim=True)  # every position sees the last value

    failed = failures("attention", "leaky")
    assert "when later positions changed" in failed["causal"]
    assert "later tokens changed earlier logits" in failed["in_model"]
    assert "deterministic" not in failed and "shape" not in failed


def register_dead_weight(name: str) -> None:
    """An ffn with a parameter that nothing uses, so no gradient can reach it."""
    @FFN.register(name)
    class DeadWeight(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
            self.unused = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return self.out_proj(x)


def test_component_with_a_dead_parameter_fails_gradient_flow(isolated_plugins):
    register_dead_weight("deadweight")

    failed = failures("ffn", "deadweight")
    assert failed["gradients"] == "no gradient reaches parameter 'unused'"
    assert failed["in_model"].startswith("no gradient reaches parameter")


def test_mixing_across_positions_fails_per_token_and_dtype_changes_fail(isolated_plugins):
    @NORM.register("seqnorm")
    class SeqNorm(nn.Module):  # normalises over the sequence, and computes in float32 whatever it gets
        def __init__(self, d_model):
            super().__init__()

        def forward(self, x):
            x = x.float()
            return (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)

    failed = failures("norm", "seqnorm")
    assert "not per-token" in failed["per_position"]
    assert failed["dtype_float64"] == "float64 input gave torch.float32 output"
    assert failed["dtype_bfloat16"] == "bfloat16 input gave torch.float32 output"


def test_random_output_fails_determinism(isolated_plugins):
    @FFN.register("noisy")
    class Noisy(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)

        def forward(self, x):
            return self.out_proj(x) + torch.rand_like(x) * 1e-3

    assert "the same input and seed gave different outputs" in failures("ffn", "noisy")["deterministic"]


def test_memory_that_leaks_the_future_fails_causality(isolated_plugins):
    @MEMORY.register("peek")
    class Peek(nn.Module):
        needs = frozenset()

        def __init__(self, cfg):
            super().__init__()

        def forward(self, h, run_blocks):
            return run_blocks(h + h.mean(dim=1, keepdim=True))

    assert "causal" in failures("memory", "peek")


def test_task_checks_catch_bad_targets_and_nondeterminism(isolated_plugins):
    from tasks.base import TASKS, Split
    from tasks.copy import Copy

    @TASKS.register("badcopy")
    class BadCopy(Copy):
        def make_split(self, split, n, seed):
            data = super().make_split(split, n, seed + int(torch.randint(0, 1000, ())))  # ignores the seed
            return Split(data.inputs, data.targets + 100)  # targets out of range

    failed = failures("task", "badcopy")
    assert "targets outside [0, n_classes=10)" in failed["shapes"]
    assert failed["deterministic"] == "the same seed gave different data"


def test_assert_conforms_lists_every_failed_check(isolated_plugins):
    register_dead_weight("deadweight2")

    with pytest.raises(AssertionError, match=r"ffn 'deadweight2' fails conformance: FAIL gradients: .*; FAIL in_model"):
        assert_conforms("ffn", "deadweight2")


def test_a_component_the_config_rejects_fails_in_one_line(isolated_plugins):
    @MEMORY.register("needs_everything")
    @dataclasses.dataclass
    class NeedsTime(nn.Module):
        needs = frozenset({"teleport"})

    outcomes = check("memory", "needs_everything")
    assert [o.status for o in outcomes] == ["FAIL"] and "needs teleport" in outcomes[0].reason
