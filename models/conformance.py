"""Conformance: the semantic checks every registered component and task must pass, built-in or plugin.

Why one module: a plugin author runs exactly what the built-ins pass, with `ablate check <kind> <name>` or, in
their own tests, `assert_conforms(kind, name)`. The suite's own tests (tests/models/test_conformance.py) call the
same functions over every registered name, so "passes the built-in tests" means the same thing for everyone.

Each check returns None (pass), raises `Skip` (does not apply, e.g. no CUDA device) or raises any other
exception (fail, with that reason). The checks use tiny sizes: a whole kind runs in about a second on a CPU.

Which checks a kind runs, and how its components are built and fed, belong to the kind (`models/kinds/`): this
module holds the checks, registered by name in `CHECKS`, and runs what a kind names, so a new kind needs no edit
here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from models.components import Position
from models.config import ModelConfig
from models.errors import ConfigError
from models.kinds import KINDS, kind_named
from models.registry import Registry
from models.transformer import build_model

#: A small config: 2 heads of width 8, so that head-wise code paths are exercised.
BASE = dict(d_model=16, n_layers=2, n_heads=2, d_ff=32)
BATCH, TIME, VOCAB = 2, 8, 11
CUT = 5  # causality: positions >= CUT are perturbed, outputs < CUT must not move
#: What an attention may provide and a position or memory may need: the words config validation understands.
CAPABILITIES = frozenset({"causal", "rotate", "score_bias", "prefix"})
#: Every check, by the name a kind lists it under (`check_<name>` without its prefix).
CHECKS: Registry = Registry("conformance check")


def _check(fn: Callable) -> Callable:
    """Register a check under its function name without `check_`, the name a kind's `checks` uses."""
    return CHECKS.register(fn.__name__.removeprefix("check_"))(fn)


class Skip(Exception):
    """The check does not apply to this component (its reason says why)."""


@dataclass(frozen=True)
class Outcome:
    check: str
    status: str  # PASS, FAIL or SKIP
    reason: str = ""

    def line(self) -> str:
        return f"{self.status} {self.check}" + (f": {self.reason}" if self.reason else "")


def kinds() -> list[str]:
    """Every kind that `ablate check` and `ablate new` know: the component registries, then `task`."""
    return list(KINDS)


def registry_of(kind: str) -> Registry:
    """The registry of `kind`; an unknown kind is a ConfigError listing the valid ones."""
    return kind_named(kind).registry


# --- helpers ----------------------------------------------------------------------------------------------------
def model_config(kind: str, name: str) -> ModelConfig:
    """The small config with `name` selected for `kind`, plus what the component declares it needs."""
    cls = kind_named(kind).registry.get(name)
    values = dict(BASE, **{kind: name})
    if getattr(cls, "segmented", False):
        values["segment_len"] = 4
    return ModelConfig(**values)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(*shape, seed=1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_seeded(seed)).to(dtype)


def _finite(t: torch.Tensor, what: str) -> None:
    if not torch.isfinite(t.float()).all():
        raise AssertionError(f"{what} has non-finite values")


def _shape(t, expected, what="output") -> None:
    if not isinstance(t, torch.Tensor):
        raise AssertionError(f"{what} is a {type(t).__name__}, expected a tensor")
    if tuple(t.shape) != tuple(expected):
        raise AssertionError(f"{what} has shape {tuple(t.shape)}, expected {tuple(expected)}")


def _grads_reach(module: nn.Module, loss: torch.Tensor, *, nonzero: bool) -> None:
    module.zero_grad(set_to_none=True)
    loss.backward()
    for pname, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            raise AssertionError(f"no gradient reaches parameter '{pname}'")
        _finite(p.grad, f"the gradient of '{pname}'")
        if nonzero and not p.grad.abs().sum() > 0:
            raise AssertionError(f"the gradient of parameter '{pname}' is exactly zero")


class Harness:
    """One component of a kind with its small config: builds it and feeds it the way its kind says."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind_named(kind), name
        self.cls = self.kind.registry.get(name)
        self.cfg = model_config(kind, name)

    @property
    def skipped(self) -> bool:
        return bool(getattr(self.cls, "skip", False))

    def build(self, seed=0, causal=True) -> nn.Module:
        """A fresh component from a seeded global RNG, so that two builds with one seed are the same."""
        torch.manual_seed(seed)
        return self.kind.build(self.cls, self.cfg, causal)

    def run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One forward pass on x (B, T, D); the extra inputs a kind needs are derived from x."""
        return self.kind.run(module, x, self.cfg)


# --- component checks --------------------------------------------------------------------------------------------
@_check
def check_registered(h: Harness) -> None:
    """The name resolves to a class that declares what the config validation reads."""
    if not isinstance(h.cls, type):
        raise AssertionError(f"registered object is a {type(h.cls).__name__}, expected a class")
    if h.skipped:  # a removed sublayer offers and needs nothing
        return
    for declared in h.kind.declares:  # provides (attention), needs (position, memory)
        extra = set(getattr(h.cls, declared, ())) - CAPABILITIES
        if extra:
            raise AssertionError(f"{declared} unknown capabilities {sorted(extra)}")


@_check
def check_shape(h: Harness) -> None:
    """Output has the input's shape (B, T, D) and is finite."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    out = h.run(h.build().eval(), _x(BATCH, TIME, h.cfg.d_model))
    _shape(out, (BATCH, TIME, h.cfg.d_model))
    _finite(out, "output")


@_check
def check_causal(h: Harness) -> None:
    """With causal=True, changing positions >= t never changes the outputs before t."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    if "provides" in h.kind.declares and "causal" not in getattr(h.cls, "provides", ()):  # causal is optional there
        raise Skip("does not declare 'causal' in provides")
    module = h.build().eval()
    x = _x(BATCH, TIME, h.cfg.d_model)
    x2 = x.clone()
    x2[:, CUT:] = _x(BATCH, TIME - CUT, h.cfg.d_model, seed=9)
    with torch.no_grad():
        a, b = h.run(module, x), h.run(module, x2)
    if not torch.allclose(a[:, :CUT], b[:, :CUT], atol=1e-5, rtol=1e-5):
        diff = (a[:, :CUT] - b[:, :CUT]).abs().max().item()
        raise AssertionError(f"outputs before position {CUT} changed by {diff:.3g} when later positions changed")


@_check
def check_dtype_float64(h: Harness) -> None:
    """In float64 the output is float64 and matches float32."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    x = _x(BATCH, TIME, h.cfg.d_model)
    with torch.no_grad():
        ref = h.run(h.build().eval(), x)
        out = h.run(h.build().eval().double(), x.double())
    if out.dtype != torch.float64:
        raise AssertionError(f"float64 input gave {out.dtype} output")
    _finite(out, "float64 output")
    if not torch.allclose(out.float(), ref, atol=1e-4, rtol=1e-3):
        raise AssertionError(f"float64 output differs from float32 by {(out.float() - ref).abs().max().item():.3g}")


@_check
def check_dtype_bfloat16(h: Harness) -> None:
    """In bfloat16 the output is bfloat16, finite and close to float32 (as under bf16 training)."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    x = _x(BATCH, TIME, h.cfg.d_model)
    with torch.no_grad():
        ref = h.run(h.build().eval(), x)
        out = h.run(h.build().eval().to(torch.bfloat16), x.to(torch.bfloat16))
    if out.dtype != torch.bfloat16:
        raise AssertionError(f"bfloat16 input gave {out.dtype} output")
    _finite(out, "bfloat16 output")
    scale = ref.abs().max().item() + 1.0
    if (out.float() - ref).abs().max().item() > 0.05 * scale:
        raise AssertionError(f"bfloat16 output differs from float32 by {(out.float() - ref).abs().max().item():.3g}")


@_check
def check_device(h: Harness) -> None:
    """On a CUDA device (when there is one) the output stays there and matches the CPU."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    if not torch.cuda.is_available():
        raise Skip("no CUDA device")
    x = _x(BATCH, TIME, h.cfg.d_model)
    with torch.no_grad():
        ref = h.run(h.build().eval(), x)
        out = h.run(h.build().eval().cuda(), x.cuda())
    if out.device.type != "cuda":
        raise AssertionError(f"CUDA input gave output on {out.device}")
    if not torch.allclose(out.cpu(), ref, atol=1e-3, rtol=1e-3):
        raise AssertionError(f"CUDA output differs from the CPU's by {(out.cpu() - ref).abs().max().item():.3g}")


@_check
def check_gradients(h: Harness) -> None:
    """A loss on the output sends a finite, non-zero gradient to the input and to every parameter."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    module = h.build().train()
    x = _x(BATCH, TIME, h.cfg.d_model).requires_grad_(True)
    out = h.run(module, x)
    _grads_reach(module, (out * _x(*out.shape, seed=5)).sum(), nonzero=True)
    if x.grad is None or not x.grad.abs().sum() > 0:
        raise AssertionError("no gradient reaches the input")


@_check
def check_deterministic(h: Harness) -> None:
    """The same seed builds the same parameters, and the same input gives the same output."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    a, b = h.build(seed=3).eval(), h.build(seed=3).eval()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        if not torch.equal(p, q):
            raise AssertionError(f"parameter or buffer '{name}' differs between two builds with the same seed")
    x = _x(BATCH, TIME, h.cfg.d_model)
    with torch.no_grad():
        first, second, third = h.run(a, x), h.run(a, x), h.run(b, x)
    if not (torch.equal(first, second) and torch.equal(first, third)):
        raise AssertionError("the same input and seed gave different outputs")


@_check
def check_per_position(h: Harness) -> None:
    """A per-token component: changing one position changes no other position's output."""
    if h.skipped:
        raise Skip("removes its sublayer (skip = True)")
    module = h.build().eval()
    x = _x(BATCH, TIME, h.cfg.d_model)
    x2 = x.clone()
    x2[:, 3] += 1.0
    with torch.no_grad():
        a, b = h.run(module, x), h.run(module, x2)
    others = [t for t in range(TIME) if t != 3]
    if not torch.allclose(a[:, others], b[:, others], atol=1e-6):
        raise AssertionError("changing position 3 changed other positions' outputs: it is not per-token")


@_check
def check_prefix(h: Harness) -> None:
    """With 'prefix' declared: extra key/value slots keep the shape and change the output."""
    if h.skipped or "prefix" not in getattr(h.cls, "provides", ()):
        raise Skip("does not declare 'prefix' in provides")
    module, cfg = h.build().eval(), h.cfg
    hd = cfg.d_model // cfg.n_heads
    prefix = (_x(1, cfg.n_heads, 3, hd, seed=7), _x(1, cfg.n_heads, 3, hd, seed=8) * 3)
    x = _x(BATCH, TIME, cfg.d_model)
    with torch.no_grad():
        plain, with_prefix = module(x, Position(cfg, 64)), module(x, Position(cfg, 64), prefix)
    _shape(with_prefix, (BATCH, TIME, cfg.d_model))
    if torch.allclose(plain, with_prefix):
        raise AssertionError("memory slots passed as prefix did not change the output")


@_check
def check_score_bias_shape(h: Harness) -> None:
    """A position's score bias is None or broadcastable to (batch, heads, t_q, t_k)."""
    module = h.build()
    bias = module.score_bias(TIME, TIME, torch.device("cpu"))
    if bias is None:
        raise Skip("adds no score bias")
    try:
        torch.broadcast_shapes(bias.shape, (BATCH, h.cfg.n_heads, TIME, TIME))
    except RuntimeError:
        raise AssertionError(f"score_bias has shape {tuple(bias.shape)}, not broadcastable to "
                             f"(batch, heads, {TIME}, {TIME})") from None


@_check
def check_in_model(h: Harness) -> None:
    """Selected in a whole causal model: logits have the right shape, the model stays causal, and every parameter
    gets a gradient."""
    model = build_model(h.cfg, vocab_size=VOCAB, causal=True, max_len=64)
    tokens = torch.randint(0, VOCAB, (BATCH, TIME), generator=_seeded(2))
    logits = model(tokens)
    _shape(logits, (BATCH, TIME, VOCAB), "logits")
    _finite(logits, "logits")
    _grads_reach(model, logits.square().mean(), nonzero=False)
    changed = tokens.clone()
    changed[:, CUT:] = (changed[:, CUT:] + 1) % VOCAB
    model.eval()
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    if not torch.allclose(a[:, :CUT], b[:, :CUT], atol=1e-5, rtol=1e-5):
        raise AssertionError("in a causal model, later tokens changed earlier logits")


# --- task checks ---------------------------------------------------------------------------------------------------
def _split(task, split="train", n=6, seed=0):
    try:
        return task.make_split(split, n, seed)
    except ConfigError as error:  # a task whose data need an absent program says so in one line
        if "espeak" in str(error) and shutil.which("espeak-ng") is None:
            raise Skip(str(error)) from None
        raise


@_check
def check_task_declares(task) -> None:
    """The class attributes that the runner and the reports read have valid values."""
    for attr, valid in (("input_kind", ("tokens", "continuous")), ("output_kind", ("token", "sequence"))):
        if getattr(task, attr) not in valid:
            raise AssertionError(f"{attr}={getattr(task, attr)!r}; valid: {', '.join(valid)}")
    if not isinstance(task.n_classes, int) or task.n_classes < 2:
        raise AssertionError(f"n_classes={task.n_classes!r}, expected an integer >= 2")
    if (task.vocab_size is None) == (task.input_dim is None):
        raise AssertionError("exactly one of vocab_size (token input) and input_dim (continuous input) must be set")
    if any(task.split_size(s) <= 0 for s in ("train", "val", "test")):
        raise AssertionError("split_size must be positive for train, val and test")


@_check
def check_task_shapes(task) -> None:
    """Inputs and targets have the declared shapes, dtypes and ranges, and fit in max_len()."""
    from tasks.base import IGNORE

    for split in ("train", "val", "test"):
        data = _split(task, split, n=6)
        x, y = data.inputs, data.targets
        if x.shape[0] != 6 or y.shape[0] != 6:
            raise AssertionError(f"{split}: asked for 6 examples, got inputs {tuple(x.shape)}, targets {tuple(y.shape)}")
        if task.input_kind == "tokens":
            if x.dim() != 2 or x.dtype != torch.long:
                raise AssertionError(f"{split}: token inputs must be (n, time) long, got {tuple(x.shape)} {x.dtype}")
            if x.min() < 0 or x.max() >= task.vocab_size:
                raise AssertionError(f"{split}: token ids outside [0, vocab_size={task.vocab_size})")
        else:
            if x.dim() != 3 or not x.is_floating_point() or x.shape[2] != task.input_dim:
                raise AssertionError(f"{split}: continuous inputs must be (n, time, {task.input_dim}) floats, "
                                     f"got {tuple(x.shape)} {x.dtype}")
            _finite(x, f"{split} inputs")
        if x.shape[1] > task.max_len():
            raise AssertionError(f"{split}: sequences of length {x.shape[1]} exceed max_len()={task.max_len()}")
        expected = (6, x.shape[1]) if task.output_kind == "token" else (6,)
        _shape(y, expected, f"{split} targets")
        if y.dtype != torch.long:
            raise AssertionError(f"{split}: targets must be long class ids, got {y.dtype}")
        scored = y[y != IGNORE]
        if scored.numel() == 0:
            raise AssertionError(f"{split}: every target is IGNORE: nothing would be scored")
        if scored.min() < 0 or scored.max() >= task.n_classes:
            raise AssertionError(f"{split}: targets outside [0, n_classes={task.n_classes}) other than IGNORE")


@_check
def check_task_deterministic(task) -> None:
    """make_split is a function of (split, n, seed): same seed, same data; another seed or split, other data."""
    a, b = _split(task, "train", seed=0), _split(task, "train", seed=0)
    if not (torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)):
        raise AssertionError("the same seed gave different data")
    c = _split(task, "train", seed=1)
    if a.inputs.shape == c.inputs.shape and torch.equal(a.inputs, c.inputs):
        raise AssertionError("seeds 0 and 1 gave the same inputs")


@_check
def check_task_trains(task) -> None:
    """A model built for the task takes a batch and gives a finite loss with a gradient."""
    from tasks.base import IGNORE

    data = _split(task, "train", n=4)
    head = "token" if task.output_kind == "token" else "mean"
    kwargs = {"vocab_size": task.vocab_size} if task.input_kind == "tokens" else {"input_dim": task.input_dim}
    model = build_model(ModelConfig(**BASE), out_dim=task.n_classes, causal=task.causal, head=head,
                        max_len=task.max_len(), **kwargs)
    logits = model(data.inputs)
    loss = nn.functional.cross_entropy(logits.reshape(-1, task.n_classes), data.targets.reshape(-1),
                                       ignore_index=IGNORE)
    _finite(loss, "loss")
    loss.backward()


#: The kinds checked through a `Harness` (the components), and their checks in the order they run: a view of what
#: each kind names, for reading (`check` asks the kind itself).
COMPONENT_CHECKS: dict[str, list[Callable]] = {kind.name: [CHECKS.get(n) for n in kind.checks]
                                               for kind in KINDS.values() if kind.build is not None}


# --- running them -----------------------------------------------------------------------------------------------------
def check(kind: str, name: str) -> list[Outcome]:
    """Run every check of `kind` on the registered `name`; unknown kinds or names raise ConfigError."""
    spec = kind_named(kind)  # raises with the valid kinds
    cls = spec.registry.get(name)  # raises with the valid names
    if spec.build is None:  # no harness (a task): the checks take an instance with default parameters
        try:
            subject = cls()
        except Exception as error:  # noqa: BLE001
            return [Outcome("construct", "FAIL", f"{name}() with default parameters: {_reason(error)}")]
    else:
        try:
            subject = Harness(kind, name)
        except Exception as error:  # noqa: BLE001
            return [Outcome("config", "FAIL", f"a model config selecting it: {_reason(error)}")]
    outcomes = []
    for fn in map(CHECKS.get, spec.checks):
        label = fn.__name__.removeprefix("check_").removeprefix("task_")
        try:
            fn(subject)
            outcomes.append(Outcome(label, "PASS"))
        except Skip as reason:
            outcomes.append(Outcome(label, "SKIP", str(reason)))
        except Exception as error:  # noqa: BLE001  (every failure becomes one reported line)
            outcomes.append(Outcome(label, "FAIL", _reason(error)))
    return outcomes


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return text if isinstance(error, AssertionError) else f"{type(error).__name__}: {text}"


def assert_conforms(kind: str, name: str) -> None:
    """For a plugin's own pytest suite: fails listing every failed check, e.g.

        from models.conformance import assert_conforms
        def test_my_attention():
            import my_attention  # registers it
            assert_conforms("attention", "my_attention")
    """
    failed = [o.line() for o in check(kind, name) if o.status == "FAIL"]
    if failed:
        raise AssertionError(f"{kind} '{name}' fails conformance: " + "; ".join(failed))
