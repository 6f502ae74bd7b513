"""The `position` kind: how order information enters, through three hooks of `models.components.Position`.

A position may add to the embedding (`embed`), rotate queries and keys (`rotate`) or bias attention scores
(`score_bias`); the harness calls all three on one input and sums what they give, so each hook a variant overrides
is checked (shape, causality, dtypes, gradients), and declares what it `needs` from the attention.
"""

from models.components import POSITION
from models.kinds._base import Kind, component_checks


def build(cls, cfg, causal):
    return cls(cfg, 64)


def run(module, x, cfg):
    hd = cfg.d_model // cfg.n_heads
    q = x.view(*x.shape[:2], cfg.n_heads, hd).transpose(1, 2)
    q2, k2 = module.rotate(q, q * 0.5)
    out = module.embed(x) + q2.transpose(1, 2).reshape(x.shape) + k2.transpose(1, 2).reshape(x.shape)
    bias = module.score_bias(x.shape[1], x.shape[1], x.device)
    return out if bias is None else out + bias.float().mean().to(out.dtype)


TEMPLATE = '''import torch
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
'''


KIND = Kind(
    name="position",
    load_registry=lambda: POSITION,
    interface="subclass Position: cls(cfg, max_len) ; embed(h) -> h, rotate(q, k) -> (q, k), "
              "score_bias(t_q, t_k, device) -> (.., H, t_q, t_k) or None ; declares needs",
    template=TEMPLATE,
    checks=component_checks("causal", "score_bias_shape"),
    build=build,
    run=run,
    declares=("needs",),
)
