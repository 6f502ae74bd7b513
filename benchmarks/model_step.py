"""Training-step time of the suite's baseline transformer against a minimal plain-PyTorch GPT of the same
shape and math (pre-norm LayerNorm, fused QKV, SDPA causal attention, GELU MLP, learned positions, final norm,
untied head): the configurable model must cost no more than the plain one.

The two models are timed alternately in one process (A B A B ...), so machine noise hits both alike; the
figure judged is the ratio of medians ours / plain (target: <= 1.05 on CPU).

    python benchmarks/model_step.py [--d-model 128 --layers 4 --seq 128 --batch 32 --reps 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from models import ModelConfig, build_model


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


def make_step(model, tokens, targets):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--steps-per-rep", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    d_ff = 4 * args.d_model
    ours = build_model(ModelConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads, d_ff=d_ff),
                       vocab_size=args.vocab, causal=True, max_len=args.seq)
    plain = PlainGPT(args.vocab, args.d_model, args.layers, args.heads, d_ff, args.seq)
    n_ours, n_plain = (sum(p.numel() for p in m.parameters()) for m in (ours, plain))
    assert n_ours == n_plain, f"shapes differ: {n_ours} vs {n_plain} parameters"
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq))
    targets = torch.randint(0, args.vocab, (args.batch, args.seq))
    steps = {"ours": make_step(ours, tokens, targets), "plain": make_step(plain, tokens, targets)}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.reps):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps_per_rep):
                step()
            times[name].append((time.perf_counter() - start) / args.steps_per_rep)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"model_step on {torch.get_num_threads()} CPU threads, torch {torch.__version__}: d_model {args.d_model}, "
          f"{args.layers} layers, seq {args.seq}, batch {args.batch}, {n_ours:,} parameters, "
          f"{args.reps} alternating reps of {args.steps_per_rep} steps")
    for name in steps:
        print(f"  {name:<6} median {med[name] * 1e3:8.2f} ms/step  (min {min(times[name]) * 1e3:.2f}, "
              f"max {max(times[name]) * 1e3:.2f})")
    print(f"  ratio ours/plain = {med['ours'] / med['plain']:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
