"""Runs per hour of a fixed small tuned sweep (`ablate run sweep=quick ...`) at several stack sizes and worker counts.

Why: tiny models leave most of a machine idle (on a GPU, well under 1% of it), so trials per machine is the
throughput that matters for tuning. `sweep.workers=W` starts W trial processes that share the study storage
(ablations/execute/worker.py, `start_local_workers`), and splits the CPU threads between them (cores // W each; with W
larger than the cores each gets one thread, oversubscribed). The workload is fixed: the default ablation's 3
variants on one task, `--trials` tuning trials plus `--seeds` final runs per cell, `--steps` training steps each (default: the task's
own budget), so runs per hour = (trials + final runs) / wall time of the whole command (start-up, tuning, final runs, report).
On a GPU (`--device cuda`) every worker trains on the one GPU (bf16), and the figure judged is runs per hour with
W workers sharing it against one at a time (target >= 4x at W = 8).

`trainer.stack=K` trains up to K claimed units of one architecture as one stacked model (README, "Stacked runs"),
so a cell's tuning trials and final seeds train together. Each configuration is `STACKxWORKERS`; all of them run
side by side in one call (alternating over `--reps`), so their ratios are measured under the same conditions.
Targets (issue 15): on the CPU, stacking never below 0.95x of stack=1 and 2 single-thread workers >= 1.6x one
worker on 2 cores; on a GPU, stacking >= 10x runs per hour over stack=1.

    python benchmarks/sweep_throughput.py [--configs 1x1,8x1,32x1,1x2 --trials 8 --steps 100 (0: the tasks' own)]
    python benchmarks/sweep_throughput.py --device cuda --configs 1x1,8x1,32x1 --trials 32 --seeds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import run_measured  # noqa: E402

VARIANTS = 3  # conf/ablation/default.yaml: baseline, post_norm, no_residual


def sweep_command(out: Path, stack: int, workers: int, args) -> list[str]:
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    return [sys.executable, "-m", "ablations.cli", "run", "-q", "ablation=default", f"task={args.task}",
            "sweep=quick", f"sweep.trials={args.trials}", f"sweep.seeds={args.seeds}", f"sweep.workers={workers}",
            f"trainer.stack={stack}", f"trainer.stack_engine={args.engine}", f"trainer.accelerator={accelerator}",
            f"out={out}"] + (
            [f"trainer.max_steps={args.steps}", f"trainer.val_every={max(1, args.steps // 2)}"] if args.steps else [])


def work_done(out: Path) -> tuple[int, int]:
    """(training steps, pruned trials) of a finished sweep, from its tables: a stack of trials that start together
    may prune fewer of them than a one-by-one sweep, which changes the work, not the speed."""
    import pandas as pd

    steps = pruned = 0
    for name in ("trials.csv", "runs.csv"):
        if (out / name).exists():
            table = pd.read_csv(out / name)
            steps += int(table["steps"].sum())
            pruned += int((table["status"] == "pruned").sum())
    return steps, pruned


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1x1,8x1,32x1,1x2",
                        help="comma-separated STACKxWORKERS configurations (the first is the reference)")
    parser.add_argument("--task", default="copy")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="training steps per run (0: each task's own budget)")
    parser.add_argument("--reps", type=int, default=1, help="alternating repetitions of the whole set")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--engine", default="auto", help="trainer.stack_engine: auto (loop on CPU, vmap on GPU), "
                        "vmap or loop")
    args = parser.parse_args(argv)
    counts = list(dict.fromkeys(tuple(int(v) for v in c.lower().split("x")) for c in args.configs.split(",")))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("sweep_throughput: --device cuda but no GPU is available; skipped")
            return {}
        where = torch.cuda.get_device_name()
    else:
        where = f"{os.cpu_count()} CPU cores"
    runs = VARIANTS * (args.trials + args.seeds)
    print(f"sweep_throughput on {where} (stack engine {args.engine}): ablation=default task={args.task} sweep=quick, {args.trials} trials + "
          f"{args.seeds} final run(s) per cell x {VARIANTS} cells = {runs} runs of "
          + (f"{args.steps} steps each" if args.steps else "the task's own budget of steps each"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    walls: dict[tuple, list[float]] = {c: [] for c in counts}
    steps: dict[tuple, list[float]] = {c: [] for c in counts}
    peaks: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for stack, workers in counts:
                out = Path(tmp) / f"k{stack}-w{workers}-r{rep}"
                result = run_measured(sweep_command(out, stack, workers, args), env=env, cwd=str(ROOT))
                if result["returncode"]:
                    print(f"  stack={stack} workers={workers}: failed (exit {result['returncode']}):\n"
                          f"{result['output'][-2000:]}")
                    return {}
                walls[(stack, workers)].append(result["wall_s"])
                done, pruned = work_done(out)
                steps[(stack, workers)].append(done / result["wall_s"])
                peaks[(stack, workers)] = max(peaks.get((stack, workers), 0), result["tree_peak_bytes"] / 2**30)
                print(f"  stack={stack} workers={workers}: {result['wall_s']:.1f} s, "
                      f"{3600 * runs / result['wall_s']:.0f} runs/hour, {done} steps ({pruned} trials pruned), "
                      f"{done / result['wall_s']:.0f} steps/s, peak RSS of all processes "
                      f"{result['tree_peak_bytes'] / 2**30:.2f} GiB")
    import statistics

    rates = {c: 3600 * runs / statistics.median(walls[c]) for c in counts}
    speeds = {c: statistics.median(steps[c]) for c in counts}
    base = rates[counts[0]]
    print(f"  summary (median over {args.reps} rep(s)):")
    for stack, workers in counts:
        print(f"    stack={stack:<3} workers={workers:<3} {rates[(stack, workers)]:8.0f} runs/hour  "
              f"ratio x{rates[(stack, workers)] / base:.2f} vs stack={counts[0][0]} workers={counts[0][1]}; "
              f"steps/s x{speeds[(stack, workers)] / speeds[counts[0]]:.2f}  (peak {peaks[(stack, workers)]:.2f} GiB)")
    return {"rates": {f"{k}x{w}": r for (k, w), r in rates.items()}, "walls": {f"{k}x{w}": v for (k, w), v in walls.items()},
            "steps_per_second": {f"{k}x{w}": v for (k, w), v in speeds.items()}}


if __name__ == "__main__":
    main()
