"""Runs per hour of a fixed small tuned sweep (`ablate run sweep=quick ...`) with 1, 2 and N workers on one machine.

Why: tiny models leave most of a machine idle (on a GPU, well under 1% of it), so trials per machine is the
throughput that matters for tuning. `sweep.workers=W` starts W trial processes that share the study storage
(ablations/sweep.py, `start_local_workers`), and splits the CPU threads between them (cores // W each; with W
larger than the cores each gets one thread, oversubscribed). The workload is fixed: the default ablation's 3
variants on one task, `--trials` tuning trials plus `--seeds` final runs per cell, `--steps` training steps each, so
runs per hour = (trials + final runs) / wall time of the whole command (start-up, tuning, final runs, report).
On a GPU (`--device cuda`) every worker trains on the one GPU (bf16), and the figure judged is runs per hour with
W workers sharing it against one at a time (target >= 4x at W = 8).

    python benchmarks/sweep_throughput.py [--workers 1,2,4 --trials 4 --steps 100]
    python benchmarks/sweep_throughput.py --device cuda --workers 1,8 --trials 8
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


def sweep_command(out: Path, workers: int, args) -> list[str]:
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    return [sys.executable, "-m", "ablations.cli", "run", "-q", "ablation=default", f"task={args.task}",
            "sweep=quick", f"sweep.trials={args.trials}", f"sweep.seeds={args.seeds}", f"sweep.workers={workers}",
            f"trainer.max_steps={args.steps}", f"trainer.val_every={max(1, args.steps // 2)}",
            f"trainer.accelerator={accelerator}", f"out={out}"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default=f"1,2,{os.cpu_count() or 1}", help="comma-separated worker counts")
    parser.add_argument("--task", default="copy")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=1, help="alternating repetitions of the whole set")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    counts = list(dict.fromkeys(int(w) for w in args.workers.split(",")))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("sweep_throughput: --device cuda but no GPU is available; skipped")
            return {}
        where = torch.cuda.get_device_name()
    else:
        where = f"{os.cpu_count()} CPU cores"
    runs = VARIANTS * (args.trials + args.seeds)
    print(f"sweep_throughput on {where}: ablation=default task={args.task} sweep=quick, {args.trials} trials + "
          f"{args.seeds} final run(s) per cell x {VARIANTS} cells = {runs} runs of {args.steps} steps each")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    walls: dict[int, list[float]] = {w: [] for w in counts}
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for workers in counts:
                out = Path(tmp) / f"w{workers}-r{rep}"
                result = run_measured(sweep_command(out, workers, args), env=env, cwd=str(ROOT))
                if result["returncode"]:
                    print(f"  workers={workers}: failed (exit {result['returncode']}):\n{result['output'][-2000:]}")
                    return {}
                walls[workers].append(result["wall_s"])
                peaks[workers] = max(peaks.get(workers, 0), result["tree_peak_bytes"] / 2**30)
                print(f"  workers={workers}: {result['wall_s']:.1f} s, {3600 * runs / result['wall_s']:.0f} runs/hour, "
                      f"peak RSS of all processes {result['tree_peak_bytes'] / 2**30:.2f} GiB")
    import statistics

    rates = {w: 3600 * runs / statistics.median(walls[w]) for w in counts}
    base = rates[counts[0]]
    print("  summary (median over reps):")
    for w in counts:
        print(f"    workers={w:<3} {rates[w]:8.0f} runs/hour  x{rates[w] / base:.2f} vs workers={counts[0]}  "
              f"(peak {peaks[w]:.2f} GiB)")
    if args.device == "cuda":
        print(f"  ratio runs/hour workers={counts[-1]} / workers={counts[0]} = {rates[counts[-1]] / base:.2f}  "
              f"(target >= 4 on one GPU)")
    return {"rates": rates, "walls": walls}


if __name__ == "__main__":
    main()
