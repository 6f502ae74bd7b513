"""`small`: every Linear/Embedding weight from N(0, sqrt(2 / (5 d))) with d = `model.d_model`, zero biases.

Why: Nguyen & Salazar (2019) find a smaller-than-usual initialisation helps pre-norm transformers train without
warmup; sqrt(2 / (5 d)) is Xavier-normal's std for the d x 4d feed-forward matrix, sqrt(2 / (d + 4d)), used for
every matrix (as GPT-NeoX's `small_init` does). One std for the whole model, independent of depth: at d = 64 it is
0.079, above `normal`'s 0.02 but below Xavier's 0.125 for a d x d matrix.
"""
import math

from torch import nn

from models.components import INIT
from models.init._weights import draw_weights


def small_std(d_model: int) -> float:
    """sqrt(2 / (5 d)) (Nguyen & Salazar, 2019, https://arxiv.org/abs/1910.05895)."""
    return math.sqrt(2.0 / (5 * d_model))


@INIT.register("small")
def small_init(model: nn.Module, cfg) -> None:
    # Transformers without Tears (Nguyen & Salazar, 2019, https://arxiv.org/abs/1910.05895)
    draw_weights(model, lambda w: nn.init.normal_(w, std=small_std(cfg.d_model)))
