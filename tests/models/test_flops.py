"""models/flops.py: the documented FLOPs formula against PyTorch's own FLOP counter, MFU under gradient
accumulation, and the peak lookup (unknown devices get no MFU)."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from models import ModelConfig, build_model
from models.flops import (forward_flops_per_token, format_mfu, matmul_params, mfu, peak_bf16_flops, tokens_per_step,
                          training_flops_per_token)

VOCAB, T, BATCH = 50, 48, 3


def counted_flops(cfg, backward=False):
    """FLOPs per token counted by FlopCounterMode. SDPA runs its math backend, whose matmuls the counter sees
    (the CPU's fused kernel is not registered with the counter)."""
    torch.manual_seed(0)
    model = build_model(cfg, vocab_size=VOCAB, causal=True, max_len=T)
    tokens = torch.randint(0, VOCAB, (BATCH, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(tokens)
        if backward:
            out.float().pow(2).mean().backward()
    return counter.get_total_flops() / (BATCH * T)


CONFIGS = [ModelConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64),
           ModelConfig(d_model=32, n_layers=3, n_heads=4, d_ff=96, kv_heads=2),
           ModelConfig(d_model=48, n_layers=1, n_heads=3, d_ff=64, ffn="swiglu")]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["baseline", "gqa", "swiglu"])
def test_forward_formula_matches_the_flop_counter(cfg):
    assert counted_flops(cfg) == pytest.approx(forward_flops_per_token(cfg, T, VOCAB), rel=0.03)


@pytest.mark.parametrize("cfg", CONFIGS[:1], ids=["baseline"])
def test_training_is_three_forwards(cfg):
    assert counted_flops(cfg, backward=True) == pytest.approx(training_flops_per_token(cfg, T, VOCAB), rel=0.03)
    assert training_flops_per_token(cfg, T, VOCAB) == 3 * forward_flops_per_token(cfg, T, VOCAB)


def test_formula_terms():
    cfg = ModelConfig(d_model=768, n_layers=12, n_heads=12, d_ff=3072)
    n = matmul_params(cfg, 50257)
    assert n == 12 * 12 * 768**2 + 768 * 50257  # 12 d^2 per layer (4 d^2 attention + 8 d^2 MLP) plus the head
    assert training_flops_per_token(cfg, 1024, 50257) == 6 * n + 12 * 12 * 1024 * 768


def test_accumulation_gives_the_same_mfu_as_one_big_batch():
    per_token = training_flops_per_token(CONFIGS[0], T, VOCAB)
    peak = 100e12
    one_batch = mfu(per_token, tokens_per_step(64, T), 0.5, peak)
    accumulated = mfu(per_token, tokens_per_step(16, T, accumulation=4), 0.5, peak)
    assert accumulated == pytest.approx(one_batch)
    assert mfu(per_token, tokens_per_step(8, T, accumulation=4, world_size=2), 0.5, peak) == pytest.approx(one_batch)
    assert one_batch == pytest.approx(per_token * 64 * T / (0.5 * peak))


@pytest.mark.parametrize("name, label", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA H200 NVL", "H200 NVL"), ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"), ("NVIDIA L40", "L40"),
    ("NVIDIA A10", "A10"), ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"), ("NVIDIA GH200 480GB", "GH200"),
])
def test_peak_lookup_by_device_name(name, label):
    peak, matched = peak_bf16_flops(name)
    assert matched == label and peak > 50e12


@pytest.mark.parametrize("name", ["NVIDIA A10G", "Tesla V100-SXM2-16GB", "NVIDIA GeForce GTX 1080", "cpu", "H100"])
def test_unknown_device_gets_no_mfu(name):
    peak, message = peak_bf16_flops(name)
    assert peak is None and "n/a" in message
    assert mfu(1e9, 1000, 1.0, peak) is None and format_mfu(None) == "n/a"
