"""Model FLOPs and model FLOPs utilisation (MFU): one documented formula, and the device's peak looked up by name.

Why one formula: an MFU figure is only comparable across runs, machines and papers when the FLOPs it counts are
fixed and stated. We use the standard count of Kaplan et al. (2020, https://arxiv.org/abs/2001.08361, Table 1)
as written in PaLM (Chowdhery et al., 2022, https://arxiv.org/abs/2204.02311, Appendix B), also used by nanoGPT:

    training FLOPs per token = 6 * N + 12 * L * T * d        (= 3 x the forward count below)
    forward  FLOPs per token = 2 * N + 4 * L * T * d

- N: the weights of the matrix multiplications, each costing 2 FLOPs (a multiply and an add) per token forward:
  per layer the query/key/value and output projections (d*(d + 2*kv_width) + d*d) and the feed-forward matrices
  (2*d*d_ff for `mlp`/`relu2`, 3*d*d_ff for `swiglu`), plus the output head (d*out_dim) when it is applied at
  every position, and a short convolution's d*K taps per layer (`model.short_conv=K`: K multiply-adds per
  channel and token, counted like matmul weights). Not counted: embedding tables (a lookup is not a matmul),
  biases, norms, activations, softmax, residual adds, the loss and the optimizer (a few percent at these widths).
- 4*L*T*d: the two attention matmuls per layer, scores q.k^T and the weighted sum of values, each 2*T*d per
  query token over all T keys. As in PaLM, causal masking is *not* discounted (a kernel that skips the masked
  half does less work than counted), and the same term is used whatever `model.attention` is, so that MFU of
  every variant is measured against the same reference workload (it is "model FLOPs", not "hardware FLOPs").
- Backward = 2 x forward (gradients with respect to activations and to weights), hence training = 3 x forward.
  Activation recomputation is not counted (that would be hardware FLOPs utilisation).

MFU = (training FLOPs per token x tokens per optimizer step) / (seconds per optimizer step x peak FLOP/s), where the
tokens per step are summed over every gradient-accumulation micro-batch and every data-parallel rank: accumulating
k micro-batches of B/k sequences does the same work as one batch of B, and gets the same MFU.

The peak is the dense (no structured sparsity) bf16 tensor-core peak from the vendor's datasheet, looked up by
`torch.cuda.get_device_name()`. An unknown device gets no MFU (None, with a message), never a guess.
"""

from __future__ import annotations

import re

from models.config import ModelConfig

FFN_MATRICES = {"mlp": 2, "relu2": 2, "swiglu": 3, "none": 0}


def matmul_params(cfg: ModelConfig, out_dim: int | None = None, *, per_token_head: bool = True) -> int:
    """N of the formula: weights of the matmuls applied to every token (see the module docstring).
    `out_dim`: the head's outputs (vocabulary); None leaves the head out."""
    d, layers = cfg.d_model, cfg.n_layers
    kv_width = (cfg.kv_heads or cfg.n_heads) * (d // cfg.n_heads)
    attention = 0 if cfg.attention == "none" else d * (d + 2 * kv_width) + d * d
    if cfg.ffn not in FFN_MATRICES:
        raise ValueError(f"no FLOPs count for ffn={cfg.ffn!r}; known: {', '.join(FFN_MATRICES)}")
    ffn = FFN_MATRICES[cfg.ffn] * d * cfg.d_ff
    head = d * out_dim if out_dim and per_token_head else 0
    conv = d * cfg.short_conv if attention else 0  # the convolution sits on the attention branch
    return layers * (attention + ffn + conv) + head


def attention_flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Forward FLOPs per token of the two attention matmuls, 4 * L * T * d (0 without attention)."""
    return 0 if cfg.attention == "none" else 4 * cfg.n_layers * seq_len * cfg.d_model


def forward_flops_per_token(cfg: ModelConfig, seq_len: int, out_dim: int | None = None) -> int:
    """2 * N + 4 * L * T * d."""
    return 2 * matmul_params(cfg, out_dim) + attention_flops_per_token(cfg, seq_len)


def training_flops_per_token(cfg: ModelConfig, seq_len: int, out_dim: int | None = None) -> int:
    """6 * N + 12 * L * T * d: forward plus a backward of twice the forward."""
    return 3 * forward_flops_per_token(cfg, seq_len, out_dim)


def tokens_per_step(micro_batch: int, seq_len: int, accumulation: int = 1, world_size: int = 1) -> int:
    """Tokens processed per optimizer step: every micro-batch of a gradient-accumulation cycle, on every rank."""
    return micro_batch * seq_len * accumulation * world_size


def mfu(flops_per_token: float, tokens_per_optimizer_step: int, seconds_per_optimizer_step: float,
        peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation in [0, 1] (None when the peak is unknown)."""
    if peak_flops is None:
        return None
    return flops_per_token * tokens_per_optimizer_step / (seconds_per_optimizer_step * peak_flops)


# Dense bf16 tensor-core peaks (FLOP/s, without 2:4 sparsity), matched in order against the device name
# (case-insensitive regular expressions; more specific names first: "A10" must not match "A100" or "A10G").
TFLOPS = 1e12
BF16_PEAKS: list[tuple[str, float, str]] = [
    # NVIDIA H100 Tensor Core GPU datasheet (2023): BF16 1,979 (SXM) / 1,513 (PCIe) / 1,671 (NVL) TFLOPS *with
    # sparsity*; dense is half. The SXM part reports itself as "NVIDIA H100 80GB HBM3".
    (r"H100.*NVL", 835.5 * TFLOPS, "H100 NVL"),
    (r"H100.*PCIe", 756.5 * TFLOPS, "H100 PCIe"),
    (r"H100.*(SXM|HBM3)", 989.5 * TFLOPS, "H100 SXM"),
    # NVIDIA GH200 Grace Hopper Superchip datasheet: the Hopper GPU at the H100 SXM's 989 TFLOPS dense BF16.
    (r"GH200", 989.5 * TFLOPS, "GH200"),
    # NVIDIA H200 Tensor Core GPU datasheet (2024): BF16 1,979 (SXM) / 1,671 (NVL) TFLOPS with sparsity.
    (r"H200.*NVL", 835.5 * TFLOPS, "H200 NVL"),
    (r"H200", 989.5 * TFLOPS, "H200 SXM"),
    # NVIDIA A100 Tensor Core GPU datasheet (2021): BF16 312 TFLOPS dense (624 with sparsity), SXM and PCIe.
    (r"A100", 312 * TFLOPS, "A100"),
    # NVIDIA L40S datasheet (2023): BF16 733 TFLOPS with sparsity -> 366 dense (362.05 in the Ada whitepaper).
    (r"L40S", 362.05 * TFLOPS, "L40S"),
    # NVIDIA L40 datasheet (2022): BF16 362.1 TFLOPS with sparsity -> 181 dense.
    (r"L40(?!S)\b", 181.05 * TFLOPS, "L40"),
    # NVIDIA L4 datasheet (2023): BF16 242 TFLOPS with sparsity -> 121 dense.
    (r"\bL4\b", 121 * TFLOPS, "L4"),
    # NVIDIA A10 datasheet (2021): BF16 125 TFLOPS dense (250 with sparsity). Not the A10G (AWS; no datasheet).
    (r"\bA10\b(?!G)", 125 * TFLOPS, "A10"),
    # NVIDIA Ada GPU architecture whitepaper (v2.1), Table 2: RTX 4090 BF16 tensor with FP32 accumulate 165.2
    # TFLOPS dense (PyTorch accumulates bf16 matmuls in FP32).
    (r"RTX 4090", 165.2 * TFLOPS, "GeForce RTX 4090"),
    # NVIDIA Ampere GA102 GPU architecture whitepaper, Table 9: RTX 3090 BF16 with FP32 accumulate 71 TFLOPS dense.
    (r"RTX 3090(?! Ti)", 71 * TFLOPS, "GeForce RTX 3090"),
]


def peak_bf16_flops(device_name: str) -> tuple[float | None, str]:
    """(dense bf16 peak FLOP/s, what matched) for a `torch.cuda.get_device_name()` string;
    (None, reason) when the device is not in the table, so that MFU is reported as n/a rather than guessed."""
    for pattern, peak, label in BF16_PEAKS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return peak, label
    return None, (f"no dense bf16 peak known for {device_name!r}: MFU n/a "
                  f"(add the vendor datasheet's figure to models/flops.py BF16_PEAKS)")


def format_mfu(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
