"""models/kinds: one object per kind holds its registry, interface, harness, checks and template, and the
conformance suite, `ablate list -v` and `ablate new` read nothing about a kind from anywhere else."""

import contextlib
import dataclasses
import io

import pytest
import torch

import models.conformance as conformance
import tasks
from ablations.cli import main
from models.components import REGISTRIES
from models.errors import ConfigError
from models.kinds import KINDS, Kind, component_checks, kind_named

COMPONENT_KINDS = [kind for kind in KINDS.values() if kind.build is not None]
EVERY_COMPONENT = [(kind.name, name) for kind in COMPONENT_KINDS for name in kind.registry.names()]


def test_every_registry_has_exactly_one_kind_and_every_kind_a_registry():
    for field, registry in REGISTRIES.items():
        owners = [kind for kind in KINDS.values() if kind.registry is registry]
        assert [kind.name for kind in owners] == [field]
    assert list(KINDS) == [*REGISTRIES, "task"]  # the order `ablate check --help` and `ablate list` use
    assert KINDS["task"].registry is tasks.TASKS
    assert all(isinstance(kind, Kind) for kind in KINDS.values())


def test_every_component_kind_has_a_harness_and_the_task_kind_none():
    assert [kind.name for kind in COMPONENT_KINDS] == list(REGISTRIES)
    assert KINDS["task"].build is None and KINDS["task"].run is None


def test_the_interface_ablate_list_prints_is_the_kinds():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list", "-v"]) == 0
    printed = [line.removeprefix("    interface: ") for line in out.getvalue().splitlines()
               if line.startswith("    interface: ")]
    assert printed == [KINDS[kind].interface for kind in REGISTRIES]


@pytest.mark.parametrize("kind, name", EVERY_COMPONENT, ids=[f"{k}-{n}" for k, n in EVERY_COMPONENT])
def test_each_kinds_harness_builds_and_runs_every_registered_component(kind, name):
    harness = conformance.Harness(kind, name)
    assert harness.kind is KINDS[kind]
    if harness.skipped:  # attention/ffn `none` removes its sublayer: there is nothing to build or feed
        return
    module = harness.build().eval()
    x = torch.randn(2, 8, harness.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = harness.run(module, x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_the_checks_run_are_the_ones_each_kind_names():
    assert set(conformance.COMPONENT_CHECKS) == set(REGISTRIES)  # a new component kind needs no edit there
    for kind in KINDS.values():
        assert set(kind.checks) <= set(conformance.CHECKS.names()), kind.name
        outcomes = conformance.check(kind.name, kind.registry.names()[0])
        assert [o.check for o in outcomes] == [name.removeprefix("task_") for name in kind.checks], kind.name
    for name, checks in conformance.COMPONENT_CHECKS.items():
        assert [fn.__name__ for fn in checks] == [f"check_{n}" for n in KINDS[name].checks]


def test_every_check_is_named_by_some_kind():
    named = {name for kind in KINDS.values() for name in kind.checks}
    assert named == set(conformance.CHECKS.names())  # a check no kind names would never run


def test_component_checks_wrap_a_kinds_own_checks_in_the_common_ones():
    assert component_checks("causal") == ("registered", "shape", "causal", "dtype_float64", "dtype_bfloat16",
                                          "device", "gradients", "deterministic", "in_model")
    assert KINDS["attention"].checks == component_checks("causal", "prefix")


def test_capabilities_say_what_a_class_declares():
    attention, memory, ffn = KINDS["attention"], KINDS["memory"], KINDS["ffn"]
    softmax = attention.registry.get("softmax")
    assert attention.capabilities(softmax) == "provides causal,prefix,rotate,score_bias; O(T^2)"
    assert attention.capabilities(attention.registry.get("none")) == "removes the sublayer"
    assert memory.capabilities(memory.registry.get("recurrent")).split("; ")[-2:] == ["needs segment_len",
                                                                                     "options n_tokens=8"]
    assert attention.capabilities(attention.registry.get("local")).endswith("; options window=16")
    assert ffn.capabilities(ffn.registry.get("mlp")) == ""  # nothing declared: `ablate list -v` prints '-'


def test_check_and_render_take_everything_about_a_kind_from_its_object(monkeypatch):
    """What `ablate check` runs and what `ablate new` writes come from the kind object alone: swap the object and
    both follow, with no edit to models/conformance.py or ablations/templates.py."""
    from ablations.templates import render

    norm = KINDS["norm"]
    fed = []

    def run(module, x, cfg):
        fed.append(x.shape)
        return module(x)

    swapped = dataclasses.replace(norm, checks=("registered", "shape", "per_position"), run=run,
                                  template="class $Class:  # my own starting file for $name\n",
                                  try_command="ablate try {kind} {name}")
    monkeypatch.setitem(KINDS, "norm", swapped)
    outcomes = conformance.check("norm", "layernorm")
    assert [(o.check, o.status) for o in outcomes] == [("registered", "PASS"), ("shape", "PASS"),
                                                       ("per_position", "PASS")]
    assert len(fed) == 3  # shape once, per_position twice: the swapped harness fed every forward pass
    text = render("norm", "my_norm")
    assert text.endswith("\nclass MyNorm:  # my own starting file for my_norm\n") and "ablate try norm my_norm" in text


def test_an_unknown_kind_is_one_line_listing_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown kind 'memroy' \(did you mean 'memory'\?\); valid: attention, "
                                          r"ffn, norm, norm_placement, residual, position, memory, task$"):
        kind_named("memroy")
