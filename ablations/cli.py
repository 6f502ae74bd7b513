"""`ablate`: the command line.

    ablate train [OVERRIDES]     one run, e.g. `ablate train task=copy model.residual=none`
    ablate run [OVERRIDES]       an ablation grid (default: conf/ablation/default.yaml) and its report
    ablate worker DIR            join the tuned sweep of a results directory (another process or machine)
    ablate report DIR [--compare OTHER]   report.md, report.html, figures/ and tables/ of a results directory
    ablate list [-v]             every registered component, task, ablation and sweep profile (plugins too)
    ablate check KIND NAME       the conformance checks every built-in passes, on one component or task
    ablate new KIND NAME         write ./NAME.py, a working plugin of that kind to start from

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
    from ablations.execute.run import train

    cfg = compose_config(args.overrides)
    run_cfg = to_run_config(cfg)
    model_overrides = [o for o in args.overrides if override_key(o).startswith("model.")]
    variant = ",".join(o.lstrip("+").removeprefix("model.") for o in model_overrides) or "baseline"
    run_dir = Path(cfg.out) if cfg.out else Path("results") / "train" / run_cfg.task["name"] / (
        variant.replace("/", "_") + f"-s{run_cfg.seed}")
    from ablations.store.files import check_writable

    check_writable(run_dir)
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
    from ablations.config.ablation import Suite, load_ablation
    from ablations.store.files import check_writable, write_manifest
    from ablations.config.secrets import redact

    cfg = compose_config(args.overrides)
    spec = load_ablation(OmegaConf.to_container(cfg.ablation, resolve=True))
    keys = {override_key(o) for o in args.overrides}
    tasks = (cfg.task.name,) if "task" in keys else None
    seeds = (cfg.seed,) if "seed" in keys else None
    out = Path(cfg.out) if cfg.out else Path("results") / spec.name
    command = _command_line(["run", *[redact(o) for o in args.overrides]])
    check_writable(out)
    manifest = lambda directory, ablation, overrides: write_manifest(  # noqa: E731
        directory, ablation=ablation, command=command, overrides=[redact(o) for o in overrides],
        config_hash=config_hash(cfg))
    if not isinstance(spec, Suite):
        part_args, sweep = _with_sweep(args, spec, keys)
        # The runner validates every cell before any work and calls `started` only then (bad input writes nothing).
        _runner(sweep)(part_args, out, spec, sweep, tasks, seeds, lambda: manifest(out, spec, part_args.overrides))
        print(_report(out, spec, command))
        return 0
    # A suite: every part's cells are validated before the first part starts, then each part runs into its own
    # directory as its own `ablate run` would (resumable, with its own report), then the combined report.
    parts = []
    for name, ablation in spec.parts.items():
        part_args, sweep = _with_sweep(args, ablation, keys)
        _validate_cells(part_args.overrides, ablation, tasks, seeds)
        parts.append((out / name, ablation, part_args, sweep))
    manifest(out, spec, args.overrides)
    for directory, ablation, part_args, sweep in parts:
        if not args.quiet:
            print(f"part {ablation.name}: {ablation.description}", file=sys.stderr)
        _runner(sweep)(part_args, directory, ablation, sweep, tasks, seeds,
                       lambda d=directory, a=ablation, o=part_args.overrides: manifest(d, a, o))
        _report(directory, ablation, command)
    print(_suite_report(out))
    return 0


def _with_sweep(args, ablation, keys):
    """The arguments of one ablation's run: its own sweep profile unless the command line names one."""
    import copy

    from omegaconf import OmegaConf

    from ablations.config import compose_config, override_key
    from ablations.config.sweep import SweepConfig

    part_args = copy.copy(args)
    if ablation.sweep and "sweep" not in keys:
        part_args.overrides = [*args.overrides, f"sweep={ablation.sweep}"]
        own = [o for o in part_args.overrides if not override_key(o).startswith("sweep.")]
        untuned = not SweepConfig.from_dict(OmegaConf.to_container(compose_config(own).sweep, resolve=True)).tunes
        dropped = [o for o in part_args.overrides if override_key(o).startswith("sweep.")] if untuned else []
        if dropped:  # e.g. sweep.trials=1 for a suite whose other parts tune: it cannot make this part tune
            print(f"note: {' '.join(dropped)} not applied to {ablation.name}, which is not tuned "
                  f"(sweep={ablation.sweep})", file=sys.stderr)
            part_args.overrides = own
    cfg = compose_config(part_args.overrides)
    return part_args, SweepConfig.from_dict(OmegaConf.to_container(cfg.sweep, resolve=True))


def _runner(sweep):
    return _run_sweep if sweep.tunes else _run_grid


def _validate_cells(overrides, ablation, tasks, seeds) -> None:
    from ablations.config import compose_config, to_run_config
    from ablations.config.ablation import cell_overrides

    for cell in ablation.cells(tasks, seeds):
        _single_device(to_run_config(compose_config(cell_overrides(ablation, overrides, cell))))


def _suite_report(out: Path) -> Path:
    from ablations.report.suite import build_suite_report

    report = build_suite_report(out)
    for error in report["errors"]:
        print(f"ablate: warning: {error}", file=sys.stderr)
    return report["report_md"]


def _report(out: Path, ablation, command: str) -> Path:
    """The report of a results directory (its manifest.json, written before any run, says how it was made)."""
    from ablations.report.ablation import build_report

    report = build_report(out)
    for error in report["errors"]:
        print(f"ablate: warning: {error}", file=sys.stderr)
    return report["report_md"]


def cmd_report(args) -> int:
    from ablations.report.ablation import build_report

    directories = [Path(args.directory)] + ([Path(args.compare)] if args.compare else [])
    from ablations.store.files import check_results_dir
    from ablations.report.suite import build_suite_report, is_suite

    if directories[0].is_dir():
        check_results_dir(directories[0])  # before anything reads it: a corrupted file is one line, named
    if is_suite(directories[0]) and not args.compare:  # an ablation with parts: each part, then the whole
        report = build_suite_report(directories[0], rebuild_parts=True)
        for error in report["errors"]:
            print(f"ablate: warning: {error}", file=sys.stderr)
        print(report["report_md"])
        print(report["report_html"])
        return 0

    for directory in directories:
        if not (directory / "runs.csv").is_file():
            raise ConfigError(f"{directory} is not a results directory (no runs.csv); give the out= directory "
                              f"of an `ablate run`, e.g. results/default")
        check_results_dir(directory)  # a corrupted file is one line naming it and its line
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
    from ablations.config import compose_config, to_run_config
    from ablations.config.ablation import cell_overrides
    from ablations.store.files import check_results_dir, run_lock

    planned = []
    for cell in ablation.cells(tasks, seeds):
        overrides = cell_overrides(ablation, args.overrides, cell)
        planned.append((cell, to_run_config(compose_config(overrides))))
        _single_device(planned[-1][1])
    if out.exists():
        check_results_dir(out)  # read only: a corrupted file is one line naming it, and nothing is written
    # Held until the grid is done: a second `ablate run` on this directory would run the same missing cells.
    with run_lock(out, exclusive=True):
        _run_grid_locked(args, out, ablation, planned, started)


def _run_grid_locked(args, out, ablation, planned, started) -> None:
    from tqdm import tqdm

    from ablations.store.files import append_run, read_runs
    from ablations.execute.run import train

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
    from ablations.store.files import check_results_dir, run_lock
    from ablations.execute.plan import plan_cells

    plans = plan_cells(ablation, args.overrides, tasks)
    if out.exists():
        check_results_dir(out)
    # Shared: sweeps and workers cooperate through the study storage, but a grid never runs beside them.
    with run_lock(out, exclusive=False):
        return _run_sweep_locked(args, out, ablation, plans, sweep, seeds, started, wait=wait)


def _run_sweep_locked(args, out, ablation, plans, sweep, seeds, started, *, wait: bool) -> bool:
    from tqdm import tqdm

    from ablations.execute.worker import Worker, start_local_workers

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
    from ablations.config.ablation import Ablation
    from ablations.config.sweep import SweepConfig

    manifest_path = Path(args.directory) / "manifest.json"
    if not manifest_path.exists():
        raise ConfigError(f"{args.directory} has no manifest.json: start the sweep with `ablate run ... "
                          f"sweep=quick out={args.directory}` first")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"corrupted {manifest_path}: {error}") from None
    if "parts" in (manifest.get("ablation") or {}):
        parts = ", ".join(f"{args.directory}/{part}" for part in manifest["ablation"]["parts"])
        raise ConfigError(f"{args.directory} holds an ablation with parts; join the sweep of one part: {parts}")
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


def _named(registry, name: str) -> str:
    """A registered name, with the plugin that registered it (built-ins have none)."""
    plugin = registry.plugin_of(name)
    return f"{name} (plugin: {plugin})" if plugin else name


def cmd_list(args) -> int:
    from ablations.config import compose_config, group_options
    from models import REGISTRIES
    from models.components import INTERFACES, capabilities
    from tasks import TASKS

    print("Components (model.<kind>=<name>):")
    for kind, registry in REGISTRIES.items():
        print(f"  {kind:<15} {', '.join(_named(registry, n) for n in registry.names())}")
        if args.verbose:
            print(f"    interface: {INTERFACES[kind]}")
            for name in registry.names():
                print(f"    {name:<13} {capabilities(kind, registry.get(name)) or '-'}")
    print("\nTasks (task=<name>):")
    for name in TASKS.names():
        task = TASKS.get(name)
        print(f"  {name:<15} {task.modality:<7} {task.input_kind:<10} -> {task.output_kind:<8} metric: "
              f"{task.metric}" + (f" (plugin: {TASKS.plugin_of(name)})" if TASKS.plugin_of(name) else ""))
    print("\nAblations (ablation=<name>):")
    for name in group_options("ablation"):
        ablation = compose_config([f"ablation={name}"]).ablation
        print(f"  {name:<15} {ablation.description}")
    print("\nSweep profiles (sweep=<name>):")
    print("  " + ", ".join(group_options("sweep")))
    return 0


def _only_plugin_overrides(overrides: list[str]) -> None:
    """`check` and `new` take no config, only `plugins=[...]` (read by `main` before the command runs)."""
    for text in overrides:
        if not text.lstrip("+").startswith("plugins="):
            raise ConfigError(f"unexpected argument '{text}': only plugins=[module,...] may follow the kind and name")


def cmd_check(args) -> int:
    """Run the conformance checks of one registered component or task; exit 1 if any fails."""
    from models.conformance import check, registry_of

    _only_plugin_overrides(args.overrides)
    registry = registry_of(args.kind)
    registry.get(args.name)  # unknown name: one line listing the valid ones, exit 2
    outcomes = check(args.kind, args.name)
    for outcome in outcomes:
        print(outcome.line())
    failed = sum(o.status == "FAIL" for o in outcomes)
    passed = sum(o.status == "PASS" for o in outcomes)
    print(f"{args.kind} {_named(registry, args.name)}: {passed} passed, {failed} failed, "
          f"{len(outcomes) - passed - failed} skipped")
    return 1 if failed else 0


def cmd_new(args) -> int:
    """Write ./<name>.py, a commented, working plugin of the kind, registered as <name>."""
    import importlib.util
    import keyword

    from ablations.templates import TEMPLATES, render
    from models.conformance import registry_of
    from models.registry import closest

    if args.kind not in TEMPLATES:
        raise ConfigError(f"unknown kind '{args.kind}'{closest(args.kind, TEMPLATES)}; valid: {', '.join(TEMPLATES)}")
    name = args.name
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise ConfigError(f"plugin name '{name}' must be a lower-case Python identifier (it names the module and "
                          f"the registered {args.kind}), e.g. my_{args.kind}")
    if name in registry_of(args.kind):
        raise ConfigError(f"{args.kind} '{name}' is already registered; choose another name")
    path = Path(f"{name}.py")
    if path.exists():
        raise ConfigError(f"{path} already exists; not overwriting it (remove it or choose another name)")
    if importlib.util.find_spec(name) is not None:
        raise ConfigError(f"a module named '{name}' already exists ({importlib.util.find_spec(name).origin}); "
                          f"choose another name, or plugins=[{name}] would import that one")
    path.write_text(render(args.kind, name))
    print(path)
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
    p.add_argument("overrides", nargs="*", metavar="plugins=[MODULE,...]", help="plugin modules to load first")
    p.add_argument("-v", "--verbose", action="store_true", help="each kind's interface and each component's "
                   "declared capabilities")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="run the conformance checks of a component or task (plugins included)",
                       description="Run the semantic checks every built-in passes (shapes, causality, dtypes, "
                                   "devices, gradients, determinism) on one registered name: one line per check, "
                                   "exit status 1 if any fails.")
    p.add_argument("kind", help="attention, ffn, norm, norm_placement, residual, position, memory or task")
    p.add_argument("name", help="the registered name, e.g. softmax")
    p.add_argument("overrides", nargs="*", metavar="plugins=[MODULE,...]", help="plugin modules to load first")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("new", help="write a starting plugin file for a kind into the current directory",
                       description="Write ./NAME.py: a commented, working plugin of the kind that registers itself "
                                   "as NAME (it passes `ablate check KIND NAME plugins=[NAME]` as written).")
    p.add_argument("kind", help="attention, ffn, norm, norm_placement, residual, position, memory or task")
    p.add_argument("name", help="the module and registered name, a lower-case Python identifier")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_new, overrides=[])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # `ablate --debug run ...` as well as `ablate run --debug ...` (a subcommand's default would hide the first)
    args.debug = getattr(args, "debug", False) or "--debug" in argv
    try:
        from ablations.plugins import load_plugins, plugins_in_overrides

        # Before anything is composed: plugins register the names that configs are validated against.
        load_plugins(plugins_in_overrides(getattr(args, "overrides", None) or []))
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
