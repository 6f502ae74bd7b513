"""Wall time and peak memory of `ablate run` with its defaults, and torch threads 1 vs 2 for one small run.

Why: the README promises that the default ablation (3 variants x 2 tasks, seed 0) finishes in a few minutes on a
2-core CPU; the targets are < 5 minutes and < 2 GiB peak memory, child processes included (the memory figure is
the sampled sum over the process tree, and the largest single process's own peak; see _proc.py). The command
runs into a temporary directory, exactly as a user types it otherwise.

The thread comparison runs `ablate train task=copy` (the quick size, `--steps` steps) with OMP_NUM_THREADS=1 and
=2 alternately: on a CPU shared with other processes a tiny model is often faster on one thread (no
synchronisation between threads that the other processes delay), which decides the default worth recommending.

    python benchmarks/default_run.py [--skip-run] [--skip-threads] [--reps 2 --steps 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import run_measured  # noqa: E402

ABLATE = [sys.executable, "-m", "ablations.cli"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-run", action="store_true", help="skip the default `ablate run`")
    parser.add_argument("--skip-threads", action="store_true", help="skip the 1 vs 2 threads comparison")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_run:
            result = run_measured([*ABLATE, "run", "-q", f"out={tmp}/default"], env=env, cwd=str(ROOT))
            if result["returncode"]:
                print(f"ablate run failed (exit {result['returncode']}):\n{result['output'][-3000:]}")
                return {}
            tree, single = result["tree_peak_bytes"] / 2**30, result["largest_process_peak_bytes"]
            print(f"default_run: `ablate run` (defaults) on {os.cpu_count()} CPU cores: {result['wall_s']:.0f} s "
                  f"(target < 300 s), peak RSS {tree:.2f} GiB summed over the process tree"
                  + (f", largest process {single / 2**30:.2f} GiB" if single else "") + " (target < 2 GiB)")
            results["run"] = result
        if not args.skip_threads:
            times: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(args.reps):
                for threads in times:
                    command = [*ABLATE, "train", "-q", "task=copy", "trainer.accelerator=cpu",
                               f"trainer.max_steps={args.steps}", f"out={tmp}/t{threads}-{rep}"]
                    result = run_measured(command, env=dict(env, OMP_NUM_THREADS=str(threads)), cwd=str(ROOT))
                    if result["returncode"]:
                        print(f"ablate train failed:\n{result['output'][-3000:]}")
                        return results
                    times[threads].append(result["wall_s"])
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"threads: `ablate train task=copy trainer.max_steps={args.steps}` (process wall time, "
                  f"{args.reps} alternating reps): 1 thread median {med[1]:.1f} s "
                  f"({', '.join(f'{t:.1f}' for t in times[1])}), 2 threads median {med[2]:.1f} s "
                  f"({', '.join(f'{t:.1f}' for t in times[2])}); ratio 2/1 = {med[2] / med[1]:.2f}")
            results["threads"] = times
    return results


if __name__ == "__main__":
    main()
