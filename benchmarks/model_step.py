"""Training-step time of the suite's baseline transformer against two peers of the same shape and math: a minimal
plain-PyTorch GPT written here (pre-norm LayerNorm, fused QKV, SDPA causal attention, GELU MLP, learned positions,
final norm, untied head) and the `x-transformers` package (`pip install -e .[bench]`), configured to the same math.

Why: the configurable model (registries, placements, residual modes) must cost no more than a plain one, or every
ablation pays for the flexibility. The models are timed alternately in one process (A B C A B C ...), so machine
noise hits all alike; the figures judged are ratios of medians:
  ours / plain <= 1.05 on CPU, ours / x-transformers < 1.0 (faster) on CPU and GPU.
On a GPU the step runs in bf16 autocast (optionally under `torch.compile`) and the model FLOPs utilisation (MFU)
of each model is printed with the formula of models/flops.py against the device's dense bf16 peak (target >= 40%
at GPT-2-small shape with compile); `--accum K` splits each optimizer step into K micro-batches, and MFU counts
the tokens of all of them.

    python benchmarks/model_step.py                      # CPU: d_model 128 / 4 layers / seq 128 / batch 32
    python benchmarks/model_step.py --preset gpt2-small --device cuda --bf16 [--compile]

Residual differences to x-transformers (stated in benchmarks/README.md): its q/k/v/out projections and LayerNorms
have no biases (3,200 fewer parameters at the CPU shape, 0.4%), q, k and v are three matmuls instead of one fused
one, and its learned positions are scaled by d_model^-0.5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from models import ModelConfig, build_model  # noqa: E402
from models.flops import format_mfu, mfu, peak_bf16_flops, tokens_per_step, training_flops_per_token  # noqa: E402

PRESETS = {  # name: (d_model, layers, heads, seq, batch, vocab)
    "cpu": (128, 4, 4, 128, 32, 256),
    "gpt2-small": (768, 12, 12, 1024, 16, 50257),
}


class PlainBlock(nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, d_ff: int, max_len: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(PlainBlock(d, heads, d_ff) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        h = self.tok(idx) + self.pos.weight[: idx.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))


def x_transformers_gpt(vocab: int, d: int, layers: int, heads: int, max_len: int):
    """x-transformers' decoder at the same math: pre-norm LayerNorm, GELU MLP of 4*d, learned absolute positions,
    SDPA attention, final norm, untied head; every optional feature (rotary, GLU, ...) off. None if not installed."""
    try:
        from x_transformers import Decoder, TransformerWrapper
    except ImportError:
        return None
    return TransformerWrapper(
        num_tokens=vocab, max_seq_len=max_len, tie_embedding=False, use_abs_pos_emb=True,
        attn_layers=Decoder(dim=d, depth=layers, heads=heads, attn_dim_head=d // heads, ff_mult=4,
                            attn_flash=True, rotary_pos_emb=False, pre_norm=True))


def make_step(model, tokens, targets, *, accum: int, autocast: bool):
    """One optimizer step (AdamW) over `accum` micro-batches of the batch."""
    # the fused CUDA kernel on a GPU (the same for every model compared), the default (foreach) on the CPU
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=tokens.is_cuda or None)
    device_type = tokens.device.type
    chunks = list(zip(tokens.chunk(accum), targets.chunk(accum)))

    def step():
        optimizer.zero_grad(set_to_none=True)
        for x, y in chunks:
            ctx = torch.autocast(device_type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with ctx:
                logits = model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)) / accum
            loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="shape; the flags below override it")
    parser.add_argument("--d-model", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--seq", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--accum", type=int, default=1, help="gradient-accumulation micro-batches per step")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (the GPU runs)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--steps-per-rep", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default="ours,plain,x-transformers", help="comma-separated models to time")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    d, layers, heads, seq, batch, vocab = PRESETS[args.preset]
    d, layers, heads = args.d_model or d, args.layers or layers, args.heads or heads
    seq, batch, vocab = args.seq or seq, args.batch or batch, args.vocab or vocab
    if args.accum < 1 or batch % args.accum:
        parser.error(f"--accum {args.accum} must divide the batch ({batch})")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("model_step: --device cuda but no GPU is available; skipped")
        return {}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=d, n_layers=layers, n_heads=heads, d_ff=4 * d)
    builders = {
        "ours": lambda: build_model(cfg, vocab_size=vocab, causal=True, max_len=seq),
        "plain": lambda: PlainGPT(vocab, d, layers, heads, 4 * d, seq),
        "x-transformers": lambda: x_transformers_gpt(vocab, d, layers, heads, seq),
    }
    models, n_params = {}, {}
    for name in args.only.split(","):
        model = builders[name]()
        if model is None:
            print(f"  ({name} not installed: pip install -e .[bench]; skipped)")
            continue
        n_params[name] = sum(p.numel() for p in model.parameters())
        model = model.to(device)
        models[name] = torch.compile(model) if args.compile else model
    tokens = torch.randint(0, vocab, (batch, seq), device=device)
    targets = torch.randint(0, vocab, (batch, seq), device=device)
    steps = {name: make_step(m, tokens, targets, accum=args.accum, autocast=args.bf16) for name, m in models.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    compile_seconds = {}
    for name, step in steps.items():  # warm-up (and compilation)
        start = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync()
        compile_seconds[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.reps):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            for _ in range(args.steps_per_rep):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / args.steps_per_rep)
    med = {name: statistics.median(t) for name, t in times.items()}

    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} CPU threads")
    precision = "bf16 autocast" if args.bf16 else "float32"
    print(f"model_step on {where}, torch {torch.__version__}, {precision}{', torch.compile' if args.compile else ''}: "
          f"d_model {d}, {layers} layers, {heads} heads, seq {seq}, batch {batch} ({args.accum} micro-batches), "
          f"vocab {vocab}; {args.reps} alternating reps of {args.steps_per_rep} steps")
    flops_token = training_flops_per_token(cfg, seq, vocab)
    tokens_step = tokens_per_step(batch // args.accum, seq, args.accum)
    peak, peak_note = peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else (None, "CPU")
    result = {"device": where, "precision": precision, "compile": args.compile, "shape": dict(
        d_model=d, layers=layers, heads=heads, seq=seq, batch=batch, vocab=vocab, accum=args.accum),
        "flops_per_token": flops_token, "peak_flops": peak, "models": {}}
    for name in steps:
        step_mfu = mfu(flops_token, tokens_step, med[name], peak) if device.type == "cuda" else None
        mfu_text = f"  MFU {format_mfu(step_mfu)}" if device.type == "cuda" else ""
        print(f"  {name:<15} {n_params[name]:>12,} params  median {med[name] * 1e3:9.2f} ms/step  "
              f"(min {min(times[name]) * 1e3:.2f}, max {max(times[name]) * 1e3:.2f}){mfu_text}")
        result["models"][name] = {"params": n_params[name], "median_s": med[name], "times_s": times[name],
                                  "warmup_s": compile_seconds[name], "mfu": step_mfu}
    if device.type == "cuda":
        print(f"  MFU: {flops_token:,} training FLOPs/token (models/flops.py) x {tokens_step:,} tokens/step, "
              f"peak {peak / 1e12:.1f} TFLOP/s dense bf16 ({peak_note})" if peak else f"  {peak_note}")
        if args.compile and "ours" in med and peak:
            print(f"  MFU ours = {format_mfu(mfu(flops_token, tokens_step, med['ours'], peak))}  "
                  f"(target >= 40% at GPT-2-small shape, bf16 + compile)")
    if "ours" in med:
        if "plain" in med:
            ratio = med["ours"] / med["plain"]
            result["ratio_ours_plain"] = ratio
            print(f"  ratio ours/plain = {ratio:.3f}  (target <= 1.05 on CPU)")
        if "x-transformers" in med:
            ratio = med["ours"] / med["x-transformers"]
            result["ratio_ours_xtransformers"] = ratio
            print(f"  ratio ours/x-transformers = {ratio:.3f}  (target < 1.0: faster)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
