"""`Kind`: everything the suite knows about one component kind (or `task`), in one object.

Why one object: a kind's contract (what a component is built with, what it receives and returns) used to be
restated in four places: the interface text of `ablate list -v`, the conformance harness that builds and feeds a
component, the list of checks it must pass, and the `ablate new` starting file. Kept apart, they drifted apart;
held by one object per kind (`models/kinds/<kind>.py`), they are read and changed together, and the conformance
suite, `ablate list`, `ablate check` and `ablate new` only iterate over the kinds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from models.registry import Registry

#: The checks every component kind runs, in order, around its own (see `component_checks`). Names are those of the
#: functions in `models/conformance.py` without their `check_` prefix (and what `ablate check` prints).
LEADING = ("registered", "shape")
TRAILING = ("dtype_float64", "dtype_bfloat16", "device", "gradients", "deterministic", "in_model")


def component_checks(*own: str) -> tuple[str, ...]:
    """The checks of a component kind: the common ones, with the kind's `own` after the shape check (so a
    component that gives the wrong shape fails there first, before the checks that assume the right one)."""
    return (*LEADING, *own, *TRAILING)


def _no_words(cls) -> list[str]:
    return []


@dataclass(frozen=True)
class Kind:
    """One kind: its registry, its contract, how the conformance suite builds and feeds it, and its template."""

    #: The ModelConfig field that selects from this kind (`model.<name>=...`), or `task`.
    name: str
    #: Returns the registry. A function, so that a kind whose registry fills on a heavy import (the tasks) costs
    #: that import only when asked.
    load_registry: Callable[[], Registry]
    #: What a component is built with, receives and returns, and the class attributes it may declare
    #: (`ablate list -v` prints it for the component kinds; for `task` it is documentation only). Components built
    #: from `cfg` may also read their own `Options` with `cfg.component_options(self)` (a dataclass whose every
    #: field has a default; see `ModelConfig.options`).
    interface: str
    #: The `ablate new <kind> <name>` starting file, after the common header (ablations/templates.py): a
    #: `string.Template` with `$name` (the registered name) and `$Class` (the class name). It must pass
    #: `ablate check` as written (tests/ablations/test_templates.py).
    template: str
    #: The conformance checks this kind runs, in order: names of `check_<name>` in models/conformance.py.
    checks: tuple[str, ...]
    #: `build(cls, cfg, causal) -> module`: a component of the kind, as the conformance harness builds it; None
    #: for a kind whose checks take an instance built with default parameters instead (tasks).
    build: Callable[[type, object, bool], nn.Module] | None = None
    #: `run(module, x, cfg) -> (B, T, D)`: one forward pass on x (B, T, D), with whatever else the kind receives
    #: derived from x (a position for attention, a branch for a placement, stand-in blocks for a memory).
    run: Callable[[nn.Module, torch.Tensor, object], torch.Tensor] | None = None
    #: The capability sets its classes may declare (`provides` for attention, `needs` for position and memory);
    #: `ablate check` rejects names outside the vocabulary that config validation understands.
    declares: tuple[str, ...] = ()
    #: Kind-specific words about a class for `ablate list -v` (the words every kind shares are in `capabilities`).
    describe: Callable[[type], list[str]] = _no_words
    #: The command that tries a new plugin of this kind, for the template's header (`{kind}` and `{name}` filled in).
    try_command: str = "ablate train model.{kind}={name} plugins=[{name}]"

    @property
    def registry(self) -> Registry:
        return self.load_registry()

    def capabilities(self, cls) -> str:
        """What a class declares, in a few words (for `ablate list -v`)."""
        skip = getattr(cls, "skip", False)
        words = ["removes the sublayer"] if skip else []
        if not skip:
            words += self.describe(cls)
        if getattr(cls, "needs", None):
            words.append("needs " + ",".join(sorted(cls.needs)))
        if getattr(cls, "segmented", False):
            words.append("needs segment_len")
        if getattr(cls, "Options", None) is not None:
            defaults = cls.Options()  # every option has a default (the Options contract)
            words.append("options " + ",".join(f"{f.name}={getattr(defaults, f.name)}"
                                               for f in dataclasses.fields(cls.Options)))
        return "; ".join(words)


def stand_in(cls, *args) -> nn.Module:
    """A stand-in for what a component wraps (a branch, the blocks), built from its own fixed seed: the global
    RNG is left alone, so the component itself is built the same with or without it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        return cls(*args)
