"""`gpt2`: `normal`, then every output projection that writes into the residual stream scaled by 1/sqrt(N).

Why: each residual branch adds its output to the stream, so at initialisation the stream's variance grows with
the number of branches; scaling the weights that write into it keeps the sum's scale independent of depth.
N is the number of residual layers, two per block (attention and feed-forward), i.e. 2 * n_layers, as in GPT-2
and nanoGPT; a block whose sublayer is removed (`attention=none`, `ffn=none`) has one fewer residual layer, and
N counts the branches actually present. The scaled weights are each branch's `out_proj` (the attention output
projection and the feed-forward branch's second matrix, the interface of both kinds); biases stay zero.
The drawn N(0, 0.02) weights are multiplied in place, so `gpt2` differs from `normal` at the same seed in
exactly those matrices.
"""
import math

import torch
from torch import nn

from models.components import INIT
from models.errors import ConfigError
from models.init.normal import normal_init


@INIT.register("gpt2")
def gpt2_init(model: nn.Module, cfg) -> None:
    normal_init(model, cfg)
    projections = []
    for block in model.blocks:
        for branch in block.branches():
            out_proj = getattr(branch, "out_proj", None)
            if not isinstance(out_proj, nn.Linear):
                raise ConfigError(f"model.init=gpt2 scales each branch's out_proj, and {type(branch).__name__} "
                                  f"has no out_proj Linear")
            projections.append(out_proj.weight)
    with torch.no_grad():
        for weight in projections:
            # "we scale the weights of residual layers at initialization by a factor of 1/sqrt(N) where N is the
            # number of residual layers" (Radford et al., 2019, GPT-2, sec. 2.3,
            # https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
            weight.mul_(1.0 / math.sqrt(len(projections)))
