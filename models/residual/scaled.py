"""A fixed branch multiplier: stream + beta * branch, with beta = `model.residual_scale`, or, when that is 0, the
depth-scaled beta = (2N)^(-1/4) with N = `model.n_layers`.

The depth scaling comes from DeepNet (Wang et al., 2022, https://arxiv.org/abs/2203.00555), whose DeepNorm computes
LN(alpha * x + G(x)) with alpha = (2N)^(1/4) for an N-layer encoder. LayerNorm is invariant to the scale of its
input (exactly so but for its epsilon), so LN(alpha * x + G(x)) = LN(x + G(x) / alpha): up-weighting the stream by
alpha under post-norm is the same map as down-weighting the branch by 1/alpha = (2N)^(-1/4), which is what this
variant does. It therefore reproduces DeepNorm's residual only with `model.norm_placement=post` and a
scale-invariant norm (layernorm, rmsnorm, scalenorm); under pre-norm the stream is never normalised and beta simply
shrinks every branch. Not implemented here: DeepNet's second half, the down-scaling by beta = (8N)^(-1/4) of the
value/output/feed-forward weights at initialisation.
"""
from torch import nn

from models.components import RESIDUAL


def depth_scale(n_layers: int) -> float:
    """1/alpha of DeepNorm for an N-layer encoder, (2N)^(-1/4) (https://arxiv.org/abs/2203.00555, Fig. 2)."""
    return (2 * n_layers) ** -0.25


@RESIDUAL.register("scaled")
class ScaledResidual(nn.Module):
    def __init__(self, cfg, layer_index: int):
        super().__init__()
        self.beta = float(cfg.residual_scale) if cfg.residual_scale > 0 else depth_scale(cfg.n_layers)

    def forward(self, stream, branch_out):
        return stream + self.beta * branch_out

    def extra_repr(self) -> str:
        return f"beta={self.beta:.4g}"
