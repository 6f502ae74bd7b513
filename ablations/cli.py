"""`ablate`: the command line.

    ablate train [OVERRIDES]     one run, e.g. `ablate train task=copy model.residual=none`
    ablate run [OVERRIDES]       an ablation grid (default: conf/ablation/default.yaml) and its report
    ablate worker DIR            join the tuned sweep of a results directory (another process or machine)
    ablate report DIR [--compare OTHER]   report.md, report.html, figures/ and tables/ of a results directory
    ablate list                  every registered component, task, ablation and sweep profile

Overrides use Hydra's grammar (`key=value`). Bad input is one line on stderr and exit status 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from models.errors import ConfigError

EXIT_USAGE = 2


def _command_line(argv: list[str]) -> str:
    return "ablate " + " ".join(shlex.quote(a) for a in argv)


def _summary(index: int, total: int, label: str, row: dict) -> str:
    score = row.get("score")
    shown = f"{row['metric']}={score:.4f}" if isinstance(score, float) else f"{row['metric']}=n/a"
    extra = f" at step {row['diverged_step']}" if row["status"] == "diverged" else ""
    extra += f": {row['error']}" if row.get("error") else ""
    return (f"[{index}/{total}] {label}: {row['status']}{extra} {shown} in {row['wall_seconds']:.1f}s "
            f"({row['tokens_per_second']:.0f} tok/s)" if row.get("tokens_per_second") else
            f"[{index}/{total}] {label}: {row['status']}{extra} {shown}")


def cmd_train(args) -> int:
    from ablations.config import compose_config, override_key, to_run_config
    from ablations.run import train

    cfg = compose_config(args.overrides)
    run_cfg = to_run_config(cfg)
    model_overrides = [o for o in args.overrides if override_key(o).startswith("model.")]
    variant = ",".join(o.removeprefix("model.") for o in model_overrides) or "baseline"
    run_dir = Path(cfg.out) if cfg.out else Path("results") / "train" / run_cfg.task["name"] / (
        variant.replace("/", "_") + f"-s{run_cfg.seed}")
    row = train(run_cfg, run_dir, variant=variant)
    if not row:  # a non-zero rank of a distributed run: rank 0 reports
        return 0
    if not args.quiet:
        print(_summary(1, 1, f"{variant} x {row['task']} (seed {row['seed']})", row))
    print(run_dir / "result.json")
    return 0 if row["status"] != "failed" else 1


def cmd_run(args) -> int:
    from omegaconf import OmegaConf

    from ablations.config import compose_config, config_hash, override_key
    from ablations.grid import Ablation
    from ablations.results import write_manifest
    from ablations.sweep import SweepConfig, redact

    cfg = compose_config(args.overrides)
    ablation = Ablation.from_dict(OmegaConf.to_container(cfg.ablation, resolve=True))
    sweep = SweepConfig.from_dict(OmegaConf.to_container(cfg.sweep, resolve=True))
    keys = {override_key(o) for o in args.overrides}
    tasks = (cfg.task.name,) if "task" in keys else None
    seeds = (cfg.seed,) if "seed" in keys else None
    out = Path(cfg.out) if cfg.out else Path("results") / ablation.name
    command = _command_line(["run", *[redact(o) for o in args.overrides]])
    runner = _run_sweep if sweep.tunes else _run_grid
    # The runner validates every cell before any work and calls `started` only then (bad input writes nothing).
    started = lambda: write_manifest(out, ablation=ablation, command=command,  # noqa: E731
                                     overrides=[redact(o) for o in args.overrides], config_hash=config_hash(cfg))
    runner(args, out, ablation, sweep, tasks, seeds, started)
    print(_report(out, ablation, command))
    return 0


def _report(out: Path, ablation, command: str) -> Path:
    """The report of a results directory (its manifest.json, written before any run, says how it was made)."""
    from ablations.report import build_report

    report = build_report(out)
    for error in report["errors"]:
        print(f"ablate: warning: {error}", file=sys.stderr)
    return report["report_md"]


def cmd_report(args) -> int:
    from ablations.report import build_report

    directories = [Path(args.directory)] + ([Path(args.compare)] if args.compare else [])
    for directory in directories:
        if not (directory / "runs.csv").is_file():
            raise ConfigError(f"{directory} is not a results directory (no runs.csv); give the out= directory "
                              f"of an `ablate run`, e.g. results/default")
    report = build_report(directories[0], compare=directories[1] if args.compare else None)
    for error in report["errors"]:
        print(f"ablate: warning: {error}", file=sys.stderr)
    print(report["report_md"])
    print(report["report_html"])
    return 0


def _single_device(run_cfg) -> None:
    if run_cfg.trainer.devices != 1:
        raise ConfigError(f"trainer.devices={run_cfg.trainer.devices} is for single runs (`ablate train`); a grid or "
                          f"sweep runs many small models, one device each (use sweep.workers for parallelism)")


def _run_grid(args, out, ablation, sweep, tasks, seeds, started) -> None:
    """sweep=none: every cell once per seed with the task's default hyper-parameters; resumes from runs.csv."""
    from tqdm import tqdm

    from ablations.config import compose_config, dedupe_overrides, to_run_config
    from ablations.results import append_run, read_runs
    from ablations.run import train

    planned = []
    for cell in ablation.cells(tasks, seeds):
        overrides = dedupe_overrides([*args.overrides, f"task={cell.task}", f"seed={cell.seed}", *cell.overrides])
        planned.append((cell, to_run_config(compose_config(overrides))))
        _single_device(planned[-1][1])
    done = read_runs(out)
    todo = []
    for cell, run_cfg in planned:
        previous = done[(done["variant"] == cell.variant) & (done["task"] == cell.task) & (done["seed"] == cell.seed)]
        if previous.empty:
            todo.append((cell, run_cfg))
        elif run_cfg.hash() not in set(previous["config_hash"]):
            raise ConfigError(f"{out}/runs.csv already holds {cell.name} with a different config "
                              f"({previous['config_hash'].iloc[-1]} != {run_cfg.hash()}); choose another out=DIR "
                              f"or remove that directory")
    if not args.quiet and len(todo) < len(planned):
        print(f"resuming {out}: {len(planned) - len(todo)} of {len(planned)} runs already done", file=sys.stderr)
    started()
    bar = tqdm(total=len(todo), unit="run", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    for index, (cell, run_cfg) in enumerate(todo, 1):
        label = f"{cell.variant} x {cell.task} (seed {cell.seed})"
        bar.set_description(f"running {label}")
        run_dir = out / "runs" / cell.variant / cell.task / f"s{cell.seed}"
        row = train(run_cfg, run_dir, variant=cell.variant, ablation=ablation.name)
        append_run(out, row)
        bar.update(1)
        if not args.quiet:
            bar.write(_summary(index, len(todo), label, row), file=sys.stderr)
    bar.close()


def _run_sweep(args, out, ablation, sweep, tasks, seeds, started, *, wait: bool = True) -> bool:
    """A tuned sweep through the study storage (see ablations/sweep.py); returns whether it is finished."""
    from tqdm import tqdm

    from ablations.sweep import Worker, plan_cells, start_local_workers

    plans = plan_cells(ablation, args.overrides, tasks)
    worker = Worker(out, ablation, plans, sweep, list(seeds or range(sweep.seeds)))
    done, total = worker.units()
    if not args.quiet and done:
        print(f"resuming {out}: {done} of {total} units (tuning trials and final runs) already done",
              file=sys.stderr)
    started()
    bar = tqdm(total=total, initial=done, unit="unit", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

    def on_done(label, row):
        bar.n = worker.units()[0]
        bar.refresh()
        if not args.quiet:
            bar.write(_summary(bar.n, total, label, row), file=sys.stderr)

    worker.on_done = on_done
    processes = start_local_workers(worker, sweep.workers - 1) if sweep.workers > 1 else []
    try:
        worker.run(wait=wait)
    finally:
        for process in processes:
            process.join()
    bar.n = worker.units()[0]
    bar.close()
    worker.export()
    return worker.finished()


def cmd_worker(args) -> int:
    """Join the sweep of an existing results directory (from another process or machine)."""
    import json
    import os

    from omegaconf import OmegaConf

    from ablations.config import compose_config, dedupe_overrides, override_key
    from ablations.grid import Ablation
    from ablations.sweep import SweepConfig

    manifest_path = Path(args.directory) / "manifest.json"
    if not manifest_path.exists():
        raise ConfigError(f"{args.directory} has no manifest.json: start the sweep with `ablate run ... "
                          f"sweep=quick out={args.directory}` first")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"corrupted {manifest_path}: {error}") from None
    overrides = list(manifest["overrides"])
    storage = args.storage or os.environ.get("ABLATE_STORAGE")
    if storage:
        overrides.append(f"sweep.storage={storage}")
    elif any("***@" in o for o in overrides):
        raise ConfigError("the sweep's storage URL has a password, which is never stored: pass it with "
                          "--storage URL or the ABLATE_STORAGE environment variable")
    overrides = dedupe_overrides([*overrides, f"out={args.directory}"])
    cfg = compose_config(overrides)
    ablation = Ablation.from_dict(manifest["ablation"])
    sweep = SweepConfig.from_dict(OmegaConf.to_container(cfg.sweep, resolve=True))
    if not sweep.tunes:
        raise ConfigError(f"{args.directory} is not a tuned sweep (sweep={sweep.name}); workers join sweeps only")
    keys = {override_key(o) for o in overrides}
    tasks = (cfg.task.name,) if "task" in keys else None
    seeds = (cfg.seed,) if "seed" in keys else None
    args.overrides, out = overrides, Path(args.directory)
    finished = _run_sweep(args, out, ablation, sweep, tasks, seeds, lambda: None, wait=False)
    if finished:
        print(_report(out, ablation, manifest["command"]))
    elif not args.quiet:
        print(f"no work left to claim in {out}; other workers are finishing the rest", file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    from ablations.config import compose_config, group_options
    from models import REGISTRIES
    from tasks import TASKS

    print("Components (model.<kind>=<name>):")
    for kind, registry in REGISTRIES.items():
        print(f"  {kind:<15} {', '.join(registry.names())}")
    print("\nTasks (task=<name>):")
    for name in TASKS.names():
        task = TASKS.get(name)
        print(f"  {name:<15} {task.modality:<7} {task.input_kind:<10} -> {task.output_kind:<8} metric: "
              f"{task.metric}")
    print("\nAblations (ablation=<name>):")
    for name in group_options("ablation"):
        ablation = compose_config([f"ablation={name}"]).ablation
        print(f"  {name:<15} {ablation.description}")
    print("\nSweep profiles (sweep=<name>):")
    print("  " + ", ".join(group_options("sweep")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ablate", description="Architecture ablations of the Transformer.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, func, text in (("train", cmd_train, "train and test one configuration"),
                             ("run", cmd_run, "run an ablation grid and write its report")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="Hydra overrides, e.g. task=digits model.residual=none optim.lr=1e-3 out=DIR")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the output path")
        p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
        p.set_defaults(func=func)
    p = sub.add_parser("worker", help="join the tuned sweep of a results directory",
                       description="Join the sweep of an existing results directory: claim tuning trials and "
                                   "final runs from its study storage until none is left.")
    p.add_argument("directory", help="the results directory of a sweep started by `ablate run ... sweep=...`")
    p.add_argument("--storage", help="the storage URL, when it has a password (else ABLATE_STORAGE)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the output path")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("report", help="write the report of a results directory",
                       description="Write report.md, a self-contained report.html, figures/ and tables/ (CSV and "
                                   "LaTeX) for a results directory; --compare puts a second one beside it.")
    p.add_argument("directory", help="a results directory written by `ablate run`, e.g. results/default")
    p.add_argument("--compare", metavar="OTHER",
                   help="a second results directory to compare with (e.g. the same ablation at another depth)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("list", help="list components, tasks, ablations and sweep profiles")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        if args.debug:
            raise
        print(f"ablate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ablate: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
