"""Sandwich-norm: normalise the branch input and again its output before it meets the stream,
x + norm_out(f(norm(x))) (Ding et al., 2021, CogView, https://arxiv.org/abs/2105.13290). The second norm bounds
what each branch can add, which CogView needed to keep large pre-norm models from diverging; the stream itself
stays un-normalised, so, as with pre-norm, the stack wants a final norm before the head.

`norm` is the input norm (the same attribute as pre/post) and `norm_out` the output norm."""
from torch import nn

from models.components import PLACEMENT


@PLACEMENT.register("sandwich")
class SandwichNorm(nn.Module):
    wants_final_norm = True

    def __init__(self, make_norm):
        super().__init__()
        self.norm = make_norm()
        self.norm_out = make_norm()

    def forward(self, x, branch, residual):
        # x + LN(f(LN(x))) (Ding et al., 2021, sec. 2.4 "Sandwich-LN", https://arxiv.org/abs/2105.13290)
        return residual(x, self.norm_out(branch(self.norm(x))))
