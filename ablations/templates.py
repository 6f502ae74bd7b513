"""Starting files for `ablate new <kind> <name>`: one small, commented, working plugin per kind.

Why strings in a module rather than template files: nothing to package or find at run time. Each template is a
real (if modest) idea that passes `ablate check <kind> <name>` as written (tests/ablations/test_templates.py
checks every one), so a researcher starts from something that runs and edits the one method that matters.
`$name` is the registered name and `$Class` the class name.
"""

from __future__ import annotations

from string import Template

HEADER = '''"""$name: <one line: what idea this tests, and its paper (a link on the line that implements it)>.

A plugin for transformer-resilience, started by `ablate new $kind $name`. Try it:
    ablate list plugins=[$name]
    ablate check $kind $name plugins=[$name]
    $train
"""
'''

TEMPLATES: dict[str, str] = {
    "attention": '''from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.attention._base import MultiHeadAttention, visible
from models.components import ATTENTION


@ATTENTION.register("$name")  # the name you select with model.attention=$name
class $Class(MultiHeadAttention):
    """Softmax attention with a learned temperature per head (edit `mix` to try your own idea).

    The base class builds the query/key/value projections (with grouped key/value heads), applies positions
    (rotation, score biases) and memory slots, and applies the output projection; a variant only mixes.
    """

    # What this variant supports, checked against what positions and memories need (see `ablate list -v`).
    provides = frozenset({"causal", "rotate", "score_bias", "prefix"})
    linear_time = False  # True if the cost grows linearly with the sequence length

    @dataclass(frozen=True)
    class Options:  # set with +model.options.$name.init_temperature=2.0; unknown keys are errors
        init_temperature: float = 1.0

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        options = cfg.component_options(self)
        self.log_temperature = nn.Parameter(torch.full((self.n_heads, 1, 1), options.init_temperature).log())

    def mix(self, q, k, v, *, bias, n_prefix):
        """q (B, H, T, hd); k, v (B, H, n_prefix + T, hd): the first n_prefix keys are memory slots that every
        query may read. bias: None or additive scores broadcastable to (B, H, T, n_prefix + T)."""
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5 / self.log_temperature.exp()
        if bias is not None:
            scores = scores + bias.to(scores.dtype)
        allowed = visible(q.shape[2], k.shape[2], causal=self.causal, prefix=n_prefix, device=q.device)
        if allowed is not None:  # causal: query i reads keys j <= i (and every memory slot)
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = F.dropout(scores.softmax(dim=-1), self.dropout if self.training else 0.0)
        return weights @ v
''',
    "ffn": '''import torch.nn.functional as F
from torch import nn

from models.components import FFN


@FFN.register("$name")  # select with model.ffn=$name
class $Class(nn.Module):
    """A SiLU MLP (edit `forward` to try your own idea). It must act on each position on its own."""

    def __init__(self, cfg):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_proj = nn.Linear(cfg.d_ff, cfg.d_model)  # named out_proj: model.zero_init_branches zeroes it

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.dropout(self.out_proj(F.silu(self.up(x))))
''',
    "norm": '''import torch
from torch import nn

from models.components import NORM


@NORM.register("$name")  # select with model.norm=$name
class $Class(nn.Module):
    """Divide each token by its mean absolute value, times a learned gain (edit `forward` for your idea)."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model), each position on its own
        return x / (x.abs().mean(dim=-1, keepdim=True) + self.eps) * self.weight
''',
    "norm_placement": '''from torch import nn

from models.components import PLACEMENT


@PLACEMENT.register("$name")  # select with model.norm_placement=$name
class $Class(nn.Module):
    """Normalise the branch input and its output, then join the stream (edit `forward` for your idea)."""

    wants_final_norm = True  # the stream itself is never normalised, so a final norm before the head helps

    def __init__(self, make_norm):
        super().__init__()
        self.norm_in, self.norm_out = make_norm(), make_norm()  # make_norm() builds the configured model.norm

    def forward(self, x, branch, residual):  # residual(stream, branch_out) is the configured model.residual
        return residual(x, self.norm_out(branch(self.norm_in(x))))
''',
    "residual": '''import torch
from torch import nn

from models.components import RESIDUAL


@RESIDUAL.register("$name")  # select with model.residual=$name
class $Class(nn.Module):
    """stream + tanh(a) * branch, with a learned scalar a starting at 0 (edit `forward` for your idea)."""

    def __init__(self, cfg, layer_index: int):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(()))

    def forward(self, stream, branch_out):  # both (B, T, d_model)
        return stream + torch.tanh(self.a) * branch_out
''',
    "position": '''import torch
from torch import nn

from models.components import POSITION, Position


@POSITION.register("$name")  # select with model.position=$name
class $Class(Position):
    """A linear distance penalty on attention scores with a learned slope per head (ALiBi with learned slopes).

    Position has three hooks, each the identity unless overridden: embed(h) on the input embedding,
    rotate(q, k) inside attention, score_bias(t_q, t_k, device) added to attention scores.
    """

    needs = frozenset({"score_bias"})  # the attention must add score biases (see `ablate list -v`)

    def __init__(self, cfg, max_len: int):
        super().__init__(cfg, max_len)
        self.slopes = nn.Parameter(torch.linspace(0.5, 0.05, cfg.n_heads))

    def score_bias(self, t_q: int, t_k: int, device):  # -> (heads, t_q, t_k), broadcast over the batch
        i = torch.arange(t_q, device=device)[:, None] + (t_k - t_q)
        j = torch.arange(t_k, device=device)[None, :]
        return -self.slopes.to(device)[:, None, None] * (i - j).abs()
''',
    "memory": '''import torch
from torch import nn

from models.components import MEMORY


@MEMORY.register("$name")  # select with model.memory=$name
class $Class(nn.Module):
    """model.memory_size learned key/value slots in every attention layer (edit `forward` for your idea).

    forward(h, run_blocks) wraps the whole trunk: run_blocks(h, prefix_fn) runs every block, and
    prefix_fn(layer_index, block, h_in) may return extra (keys, values) that every query of that layer reads,
    shaped (batch or 1, heads, slots, head_dim). Return one hidden state per input position.
    """

    needs = frozenset({"prefix"})  # the attention must accept memory slots
    segmented = False  # True if it needs model.segment_len (state carried from one segment to the next)

    def __init__(self, cfg):
        super().__init__()
        shape = (cfg.n_layers, cfg.n_heads, cfg.memory_size, cfg.d_model // cfg.n_heads)
        self.keys = nn.Parameter(torch.randn(shape) * 0.02)
        self.values = nn.Parameter(torch.randn(shape) * 0.02)

    def forward(self, h, run_blocks):
        def prefix_fn(i, block, h_in):
            return self.keys[i : i + 1].to(h_in.dtype), self.values[i : i + 1].to(h_in.dtype)

        return run_blocks(h, prefix_fn)
''',
    "task": '''from dataclasses import dataclass

import torch

from tasks.base import IGNORE, TASKS, Split, Task, positive_int, split_generator


@TASKS.register("$name")  # select with task=$name, once a task/$name.yaml exists in your config directory
class $Class(Task):
    """Running count: at each position, how often its token has occurred so far (mod vocab).

    To run it, put a task/$name.yaml into a config directory of your own and point ABLATE_CONFIG_DIR at it
    (copy the suite's conf/task/copy.yaml and change `name:` and the parameters below).
    """

    modality = "tokens"
    input_kind = "tokens"   # tokens (B, T) or continuous (B, T, features)
    output_kind = "token"   # token: a label per position; sequence: one label per example
    causal = True           # the model must not read the future
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:  # task.<param>=... on the command line; unknown keys are errors
        length: int = 16
        vocab: int = 8
        n_train: int = 20000
        n_eval: int = 1000

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, vocab=p.vocab, n_train=p.n_train, n_eval=p.n_eval)

    @property
    def vocab_size(self):
        return self.params.vocab

    @property
    def n_classes(self):
        return self.params.vocab

    def max_len(self):
        return self.params.length

    def split_size(self, split):
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split, n, seed):  # vectorised and deterministic in (split, seed)
        p = self.params
        tokens = torch.randint(0, p.vocab, (n, p.length), generator=split_generator(split, seed))
        same = tokens[:, :, None] == tokens[:, None, :]  # same[b, i, j]: token i equals token j
        earlier = torch.ones(p.length, p.length, dtype=torch.bool).tril()
        targets = (same & earlier).sum(-1) % p.vocab
        targets[:, 0] = IGNORE  # an example of an unscored position
        return Split(tokens, targets)
''',
}


def render(kind: str, name: str) -> str:
    """The starting file of `kind` for the registered name `name`."""
    train = f"ablate train model.{kind}={name} plugins=[{name}]"
    if kind == "task":  # a task also needs its config file (see the class docstring)
        train = f"ablate train task={name} plugins=[{name}]   # with $ABLATE_CONFIG_DIR/task/{name}.yaml"
    class_name = "".join(part.capitalize() for part in name.split("_")) or "Plugin"
    values = {"name": name, "Class": class_name, "kind": kind, "train": train}
    return Template(HEADER).substitute(values) + "\n" + Template(TEMPLATES[kind]).substitute(values)
