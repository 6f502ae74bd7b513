"""Wall time of one `ablate train` run (ablations.execute.run.train: Lightning Trainer, CSV log, divergence checks,
validation, test, result.json) against the same work in a plain PyTorch loop.

Why: the suite trains thousands of tiny models; a harness that costs more than the model makes every ablation
slower for nothing. Both sides build the same task, data (tasks + tasks.datamodule: the same batches in the same
order), model and optimizer (AdamW with the module's parameter groups, warmup + cosine schedule), take the same
number of steps, validate at the same steps over the whole validation split, read the loss on the host every
`log_every` steps, and evaluate the test split at the end. They run alternately (harness, plain, harness, ...) at
the task's quick size; the figure judged is the ratio of median wall times harness / plain (target <= 1.10).
The ratio of median process CPU times is printed beside it: on a machine shared with other processes the wall
time mostly measures the neighbours, the CPU time (with one torch thread) what the run itself did.

    python benchmarks/harness_overhead.py [--tasks copy,digits --reps 3 --threads 0] [--profile]

`--profile` also runs the harness once under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablations.config import compose_config, to_run_config  # noqa: E402
from ablations.execute.module import AblationModule, batch_scores, evaluate  # noqa: E402
from ablations.execute.run import build, train  # noqa: E402
from tasks.datamodule import OrderedBatches, ShuffledBatches, TaskDataModule  # noqa: E402


def run_harness(cfg, workdir: Path) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    row = train(cfg, workdir / f"h{time.monotonic_ns()}", variant="baseline")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert row["status"] == "ok", row
    return wall, cpu


def run_plain(cfg) -> tuple[float, float]:
    """The same run as a plain loop (no Lightning, no logging to disk)."""
    torch.use_deterministic_algorithms(False)  # the harness turns it on for CPU runs; a plain loop would not
    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(cfg.seed)
    task, model = build(cfg)
    data = TaskDataModule(task, cfg.optim.batch_size, cfg.seed, cfg.trainer.eval_batch_size)
    optimizers = AblationModule(model, cfg.optim, cfg.trainer.max_steps, 1, 1.0).configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    batches = iter(ShuffledBatches(data.split("train"), cfg.optim.batch_size, cfg.seed))
    model.train()
    for step in range(cfg.trainer.max_steps):
        inputs, targets = next(batches)
        loss_sum, _, count = batch_scores(model(inputs), targets)
        loss = loss_sum / count.clamp_min(1)
        if step % cfg.trainer.log_every == 0:
            loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % cfg.trainer.val_every == 0:
            evaluate(model, OrderedBatches(data.split("val"), cfg.trainer.eval_batch_size), "cpu")
    evaluate(model, OrderedBatches(data.split("test"), cfg.trainer.eval_batch_size), "cpu")
    return time.perf_counter() - start, time.process_time() - cpu


def profile_harness(cfg, workdir: Path, top: int = 25) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run_harness(cfg, workdir)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    print(text.getvalue())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="copy,digits")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--override", action="append", default=[], help="extra KEY=VALUE for both sides")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    print(f"harness_overhead on {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
          f"{args.reps} alternating reps per task")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for task in args.tasks.split(","):
            cfg = to_run_config(compose_config([f"task={task}", "trainer.accelerator=cpu", *args.override]))
            run_plain(cfg)  # warm-up: data generation caches, lazy kernel loading
            times = {"harness": [], "plain": []}
            cpu = {"harness": [], "plain": []}
            for _ in range(args.reps):
                for side, run in (("harness", lambda: run_harness(cfg, workdir)), ("plain", lambda: run_plain(cfg))):
                    wall, cpu_seconds = run()
                    times[side].append(wall)
                    cpu[side].append(cpu_seconds)
            med = {k: statistics.median(v) for k, v in times.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            ratio, ratio_cpu = med["harness"] / med["plain"], med_cpu["harness"] / med_cpu["plain"]
            results[task] = {"wall": times, "cpu": cpu, "ratio": ratio, "ratio_cpu": ratio_cpu}
            listing = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
            print(f"  {task}: {cfg.trainer.max_steps} steps, batch {cfg.optim.batch_size}, validation every "
                  f"{cfg.trainer.val_every}")
            for side in times:
                print(f"    {side:<8} wall median {med[side]:7.2f} s ({listing(times[side])}); "
                      f"CPU time median {med_cpu[side]:7.2f} s ({listing(cpu[side])})")
            print(f"  {task}: ratio harness/plain = {ratio:.3f} wall, {ratio_cpu:.3f} CPU time  (target <= 1.10)")
            if args.profile:
                profile_harness(cfg, workdir)
    return results


if __name__ == "__main__":
    main()
