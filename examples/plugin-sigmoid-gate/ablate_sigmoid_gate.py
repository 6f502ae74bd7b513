"""sigmoid_gate: softmax attention whose head outputs pass through a query-dependent sigmoid gate.

Qiu et al., 2025, "Gated Attention for Large Language Models" (https://arxiv.org/abs/2505.06708): a gate
sigmoid(x W + b), computed from the same hidden state as the query, multiplies each head's attention output
before the output projection. It adds a non-linearity between the value and output projections and lets a head
output (near) zero, which the paper finds removes "attention sinks" and stabilises training.
Options: `gate=headwise` (one scalar per head) or `elementwise` (one per channel), `init_bias` (the gate's starting
bias; 0 opens every gate half-way). Everything else (projections, masks, positions, memory) is the softmax variant's.
"""
from dataclasses import dataclass

import torch
from torch import nn

from models.attention.softmax import SoftmaxAttention
from models.components import ATTENTION
from models.errors import ConfigError

GATES = ("headwise", "elementwise")


@ATTENTION.register("sigmoid_gate")
class SigmoidGateAttention(SoftmaxAttention):
    @dataclass(frozen=True)
    class Options:
        gate: str = "headwise"   # headwise: one gate per head; elementwise: one per head channel
        init_bias: float = 0.0   # the gate's initial bias: sigmoid(0) = 0.5

        def __post_init__(self):
            if self.gate not in GATES:
                raise ConfigError(f"unknown model.options.sigmoid_gate.gate '{self.gate}'; valid: {', '.join(GATES)}")

    def __init__(self, cfg, causal: bool):
        super().__init__(cfg, causal)
        options = cfg.component_options(self)
        width = self.n_heads if options.gate == "headwise" else cfg.d_model
        self.gate = nn.Linear(cfg.d_model, width)  # build_model gives every Linear GPT-2's init (zero bias) ...
        self.init_bias = options.init_bias  # ... so the starting bias is a constant offset on top of it

    def head_outputs(self, y, x):
        """y (B, H, T, hd) each head's output, x (B, T, D) the block input that the queries come from."""
        b, h, t, hd = y.shape
        # Qiu et al., 2025, https://arxiv.org/abs/2505.06708: Y' = Y * sigmoid(X W_theta), after SDPA (their G1)
        g = torch.sigmoid(self.gate(x) + self.init_bias).view(b, t, h, -1).transpose(1, 2)  # (B, H, T, 1 or hd)
        return y * g
