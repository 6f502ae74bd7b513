"""Start-up cost of the command line: CPU time (user + system) and wall time of `ablate --help` and `ablate list`.

Why: `--help`, a typo and `ablate list` are what a user runs most often and they do no work, so they must not
pay for importing torch, Lightning, Optuna, Hydra or seaborn. `--help` imports none of them; `list` imports
torch (the registries hold torch modules) and nothing of the training, tuning or plotting stack. Each command
runs as a fresh process, the two alternately (help, list, help, list, ...) after one warm-up each, plus the
import of torch alone as a yardstick (what `list` cannot avoid). The CPU time of each run is the delta of
`getrusage(RUSAGE_CHILDREN)` around it: on a shared machine it is far less noisy than the wall time.

    python benchmarks/cli_startup.py [--runs 7] [--ablate PATH]

Targets (median CPU time): `ablate --help` < 0.5 s, `ablate list` < 2 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {"ablate --help": 0.5, "ablate list": 2.0}


def measure(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `command`, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each command (after one warm-up)")
    parser.add_argument("--ablate", default=None, help="the ablate script (default: the one beside this Python)")
    args = parser.parse_args()
    ablate = args.ablate or str(Path(sys.executable).parent / "ablate")
    if not Path(ablate).exists():
        ablate = shutil.which("ablate") or ablate
    commands = {"ablate --help": [ablate, "--help"], "ablate list": [ablate, "list"],
                "import torch (yardstick)": [sys.executable, "-c", "import torch"]}
    for command in commands.values():  # warm-up: file cache, bytecode
        measure(command)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            figures[name].append(measure(command))
    print(f"{args.runs} runs each, alternating, after one warm-up; CPU = user + system of the child process")
    print(f"{'command':<26} {'CPU median':>10} {'(min-max)':>13} {'wall median':>11} {'(min-max)':>13}  target")
    for name, runs in figures.items():
        cpu, wall = [c for c, _ in runs], [w for _, w in runs]
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"< {target:.1f} s CPU: "
                                             f"{'pass' if statistics.median(cpu) < target else 'FAIL'}")
        print(f"{name:<26} {statistics.median(cpu):>9.2f}s {min(cpu):>6.2f}-{max(cpu):<5.2f}s "
              f"{statistics.median(wall):>10.2f}s {min(wall):>6.2f}-{max(wall):<5.2f}s  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
