"""The `norm_placement` kind: where the norm sits around a branch, `forward(x, branch, residual) -> x`.

A placement wraps a branch and the residual join, so the harness hands it a stand-in branch (a linear map, built
from its own seed) and a plain sum as the residual; the norms come from the `make_norm` it is built with.
"""

from torch import nn

from models.components import PLACEMENT
from models.kinds._base import Kind, component_checks, stand_in


class StandInBranch(nn.Module):
    """A stand-in branch for placements: a linear map."""

    def __init__(self, d):
        super().__init__()
        self.out_proj = nn.Linear(d, d)

    def forward(self, h):
        return self.out_proj(h)


def build(cls, cfg, causal):
    return cls(lambda: nn.LayerNorm(cfg.d_model))


def run(module, x, cfg):
    branch = stand_in(StandInBranch, cfg.d_model).to(x.dtype).to(x.device)
    return module(x, branch, lambda stream, out: stream + out)


TEMPLATE = '''from torch import nn

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
'''


KIND = Kind(
    name="norm_placement",
    load_registry=lambda: PLACEMENT,
    interface="cls(make_norm) ; forward(x, branch, residual) -> x ; declares wants_final_norm",
    template=TEMPLATE,
    checks=component_checks("per_position"),
    build=build,
    run=run,
)
