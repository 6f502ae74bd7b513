"""Training-step time and peak memory of every registered attention variant as the sequence grows (128 ... 4096).

Why: `linear` and `performer` claim to be linear-time (`linear_time = True`); this shows whether their cost grows
linearly in practice, and how the quadratic variants grow, by the slope of log(cost) against log(T) per variant
(1: linear, 2: quadratic). Every name in `models.components.ATTENTION` is measured (plugins included, the `none`
variant that removes attention skipped), in a small causal model (d_model 64, 2 layers, 4 heads, batch 2 by
default) so that attention dominates at long sequences.

Memory: on the CPU every (variant, T) runs in a freshly forked process, which builds the model and batch, reads its peak
resident set (ru_maxrss), runs one training step and reads it again: the difference is the step's peak memory
(activations, gradients, optimizer state), free of what earlier configurations left behind. On a GPU the runs are
in-process and the figure is torch.cuda.max_memory_allocated() after a reset, minus the memory allocated before.
A variant's sweep stops at the first length whose step exceeds `--budget` seconds, so the CPU run ends in minutes.
Writes attention_scaling.csv and attention_scaling.png (log-log) under `--out` (default benchmarks/out/).

    python benchmarks/attention_scaling.py [--max-len 4096 --budget 3 --device cpu --out benchmarks/out]
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402,F401  (registers every variant; plugins found through entry points as usual)
from models import ModelConfig, build_model  # noqa: E402
from models.components import ATTENTION  # noqa: E402

VOCAB = 32


def variants() -> list[str]:
    return [name for name in ATTENTION.names() if not getattr(ATTENTION.get(name), "skip", False)]


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kilobytes


def measure(variant: str, seq: int, *, d_model: int, layers: int, batch: int, reps: int, device: str) -> dict:
    """One (variant, T): peak memory of the first training step above what was allocated before it, and the median
    time of `reps` further steps."""
    torch.manual_seed(0)
    dev = torch.device(device)
    cfg = ModelConfig(d_model=d_model, n_layers=layers, n_heads=4, d_ff=4 * d_model, attention=variant)
    model = build_model(cfg, vocab_size=VOCAB, causal=True, max_len=seq).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, VOCAB, (batch, seq), device=dev)
    cuda = dev.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            logits = model(tokens)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tokens.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    else:
        before = rss_bytes()
    start = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize()
    first = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(dev) if cuda else rss_bytes()) - before
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"variant": variant, "seq": seq, "step_ms": 1e3 * statistics.median(times) if times else 1e3 * first,
            "first_step_ms": 1e3 * first, "peak_mib": peak / 2**20, "linear_time": bool(ATTENTION.get(variant).linear_time)}


def _child(variant: str, seq: int, args) -> dict:
    torch.set_num_threads(args.threads)
    # a tiny step first loads the kernels and libraries that torch initialises lazily, so that they are not
    # counted as the measured step's memory
    measure(variant, 8, d_model=args.d_model, layers=args.layers, batch=1, reps=0, device="cpu")
    gc.collect()
    return measure(variant, seq, d_model=args.d_model, layers=args.layers, batch=args.batch, reps=args.reps,
                   device="cpu")


def measure_in_subprocess(pool_context, variant: str, seq: int, args) -> dict | None:
    """Fork a fresh child for one measurement: its peak resident set starts at this (idle) parent's, so the
    high-water mark it reads is its own step's. Forking, not spawning, skips re-importing torch (seconds on a
    busy machine); the parent never runs torch operations, so no thread pool is forked mid-use."""
    with pool_context.Pool(1, maxtasksperchild=1) as pool:
        try:
            return pool.apply_async(_child, (variant, seq, args)).get(timeout=args.budget * (args.reps + 2) + 120)
        except Exception as exc:  # a variant that cannot run at this length is a result, not a crash
            print(f"  {variant} T={seq}: failed: {type(exc).__name__}: {exc}")
            return None


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(y) against log(T)."""
    if len(points) < 2:
        return float("nan")
    xs, ys = [math.log(t) for t, _ in points], [math.log(max(y, 1e-9)) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-len", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=4096)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3, help="timed steps after the first (memory) step")
    parser.add_argument("--budget", type=float, default=3.0, help="stop a variant after a step slower than this (s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per measurement subprocess")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="", help="comma-separated subset (default: every registered one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("attention_scaling: --device cuda but no GPU is available; skipped")
        return
    names = args.variants.split(",") if args.variants else variants()
    lengths = []
    t = args.min_len
    while t <= args.max_len:
        lengths.append(t)
        t *= 2
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} thread(s) per run"
    print(f"attention_scaling on {where}, torch {torch.__version__}: d_model {args.d_model}, {args.layers} layers, "
          f"batch {args.batch}, T = {lengths[0]} .. {lengths[-1]}, step budget {args.budget} s")
    rows = []
    started = time.perf_counter()
    for name in names:
        for seq in lengths:
            if args.device == "cuda":
                try:
                    row = measure(name, seq, d_model=args.d_model, layers=args.layers, batch=args.batch,
                                  reps=args.reps, device="cuda")
                except torch.OutOfMemoryError:
                    print(f"  {name} T={seq}: out of memory")
                    torch.cuda.empty_cache()
                    break
            else:
                row = measure_in_subprocess(multiprocessing.get_context("fork"), name, seq, args)
            if row is None:
                break
            rows.append(row)
            print(f"  {name:<10} T={seq:<5} {row['step_ms']:10.1f} ms/step  peak {row['peak_mib']:9.1f} MiB")
            if row["step_ms"] / 1e3 > args.budget:
                break
    print(f"  ({time.perf_counter() - started:.0f} s in all)")
    print(f"\n{'variant':<10} {'linear_time':>11} {'max T':>6} {'time slope':>10} {'mem slope':>9} "
          f"{'time slope (last 2)':>19} {'mem slope (last 2)':>18}")
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        tp = [(r["seq"], r["step_ms"]) for r in mine]
        mp = [(r["seq"], r["peak_mib"]) for r in mine]
        print(f"{name:<10} {str(mine[0]['linear_time']):>11} {mine[-1]['seq']:>6} {slope(tp):>10.2f} "
              f"{slope(mp):>9.2f} {slope(tp[-2:]):>19.2f} {slope(mp[-2:]):>18.2f}")
    print("(slope of log cost vs log T: 1 = linear, 2 = quadratic; 'last 2' = between the two longest lengths)")
    write_outputs(rows, args.out, where)


def write_outputs(rows: list[dict], out: Path, where: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "attention_scaling.csv", index=False)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4))
    for ax, column, label in ((axes[0], "step_ms", "training step (ms)"), (axes[1], "peak_mib", "peak memory (MiB)")):
        sns.lineplot(data=frame, x="seq", y=column, hue="variant", style="linear_time", markers=True, ax=ax)
        ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel=label)
        ax.set_xticks(sorted(frame["seq"].unique()), labels=[str(t) for t in sorted(frame["seq"].unique())])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
    axes[0].get_legend().remove()
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(f"Attention variants: cost vs sequence length (log-log), {where}")
    fig.tight_layout()
    fig.savefig(out / "attention_scaling.png", dpi=120)
    print(f"wrote {out / 'attention_scaling.csv'} and {out / 'attention_scaling.png'}")


if __name__ == "__main__":
    main()
