# PYTHON_ARGCOMPLETE_OK (argcomplete: this command completes its arguments, see ablations/completion.py)
"""`ablate`: the command line.

    ablate train [OVERRIDES]     one run, e.g. `ablate train task=copy model.residual=none`
    ablate run [OVERRIDES]       an ablation grid (default: conf/ablation/default.yaml) and its report
    ablate worker DIR            join the grid or sweep of a results directory (another process or machine)
    ablate report DIR [--compare OTHER]   report.md, report.html, figures/ and tables/ of a results directory
    ablate config [OVERRIDES]    the resolved configuration those overrides give, as YAML (Hydra's --cfg job)
    ablate export DIR [--to parquet|csv|json]   its runs, trials and diagnostics as tidy tables
    ablate damage DIR            its trained models scored with layers, heads removed, noisy or int8 weights
    ablate list [-v]             every registered component, task, ablation and sweep profile (plugins too)
    ablate check KIND NAME       the conformance checks every built-in passes, on one component or task
    ablate new KIND NAME         write ./NAME.py, a working plugin of that kind to start from

Shell completion (subcommands, config keys, registered names): `eval "$(register-python-argcomplete ablate)"`.

Every command is a thin client of `ablations.api`, which does the work. Overrides use Hydra's grammar (`key=value`). Bad input is one line on stderr and exit status 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


def cmd_train(args) -> int:
    from ablations import api

    row = api.train(args.overrides)
    if not row:  # a non-zero rank of a distributed run: rank 0 reports
        return 0
    if not args.quiet:
        print(api.summary_line(1, 1, f"{row['variant']} x {row['task']} (seed {row['seed']})", row))
    print(Path(row["run_dir"]) / "result.json")
    return 0 if row["status"] != "failed" else 1


def cmd_run(args) -> int:
    from ablations import api

    print(api.run(args.overrides, quiet=args.quiet).report)
    return 0


def cmd_report(args) -> int:
    from ablations import api

    built = api.report(args.directory, compare=args.compare)
    print(built["report_md"])
    print(built["report_html"])
    return 0


def cmd_damage(args) -> int:
    from ablations import api

    built = api.damage(args.directory)
    for note in built["notes"]:  # runs without a checkpoint: skipped, said in one line
        print(f"ablate damage: {note}", file=sys.stderr)
    print(built["damage_csv"])
    print(built["report_md"])
    return 0


def cmd_config(args) -> int:
    from ablations.config import resolved_yaml

    sys.stdout.write(resolved_yaml(args.overrides))
    return 0


def cmd_export(args) -> int:
    from ablations.store.export import export

    for path in export(args.directory, args.to, args.out):
        print(path)
    return 0


def cmd_worker(args) -> int:
    """Join the grid or sweep of an existing results directory (from another process or machine)."""
    from ablations import api

    outcome = api.worker(args.directory, storage=args.storage, quiet=args.quiet)
    if outcome.report is not None:
        print(outcome.report)
    elif not args.quiet:
        print(f"no work left to claim in {outcome.directory}; other workers are finishing the rest", file=sys.stderr)
    return 0


def _named(registry, name: str) -> str:
    """A registered name, with the plugin that registered it (built-ins have none)."""
    plugin = registry.plugin_of(name)
    return f"{name} (plugin: {plugin})" if plugin else name


def cmd_list(args) -> int:
    from ablations.config import ablation_description, group_options
    from models import REGISTRIES
    from models.components import INIT
    from models.kinds import KINDS
    from tasks import TASKS

    print("Components (model.<kind>=<name>):")
    for kind, registry in REGISTRIES.items():
        print(f"  {kind:<15} {', '.join(_named(registry, n) for n in registry.names())}")
        if args.verbose:
            print(f"    interface: {KINDS[kind].interface}")
            for name in registry.names():
                print(f"    {name:<13} {KINDS[kind].capabilities(registry.get(name)) or '-'}")
    print(f"  {'init':<15} {', '.join(_named(INIT, n) for n in INIT.names())}")
    print("\nTasks (task=<name>):")
    for name in TASKS.names():
        task = TASKS.get(name)
        ladder = getattr(task, "difficulty", None)  # the levels `ablation.difficulty=ladder` runs
        print(f"  {name:<15} {task.modality:<7} {task.input_kind:<10} -> {task.output_kind:<8} metric: "
              f"{task.metric}" + (f" (plugin: {TASKS.plugin_of(name)})" if TASKS.plugin_of(name) else "")
              + (f" ladder: {ladder.key}={','.join(map(str, ladder.levels))}" if ladder else ""))
    print("\nAblations (ablation=<name>):")
    for name in group_options("ablation"):
        print(f"  {name:<15} {ablation_description(name)}")
    print("\nSweep profiles (sweep=<name>):")
    print("  " + ", ".join(group_options("sweep")))
    return 0


def _only_plugin_overrides(overrides: list[str]) -> None:
    """`check` and `new` take no config, only `plugins=[...]` (read by `main` before the command runs)."""
    from models.errors import ConfigError

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

    from ablations.templates import render
    from models.errors import ConfigError
    from models.kinds import kind_named

    kind = kind_named(args.kind)  # an unknown kind: one line listing the valid ones
    name = args.name
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise ConfigError(f"plugin name '{name}' must be a lower-case Python identifier (it names the module and "
                          f"the registered {args.kind}), e.g. my_{args.kind}")
    if name in kind.registry:
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
    from ablations.completion import complete_overrides

    parser = argparse.ArgumentParser(prog="ablate", description="Architecture ablations of the Transformer.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, func, text in (("train", cmd_train, "train and test one configuration"),
                             ("run", cmd_run, "run an ablation grid and write its report")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="Hydra overrides, e.g. task=digits model.residual=none optim.lr=1e-3 out=DIR"
                       ).completer = complete_overrides
        p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the output path")
        p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
        p.set_defaults(func=func)
    p = sub.add_parser("config", help="print the resolved configuration as YAML",
                       description="Print the configuration that these overrides compose to (model, task, optim, "
                                   "trainer, sweep, ablation, ...), resolved and validated, as YAML; secrets masked.")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides, as for `ablate run`"
                   ).completer = complete_overrides
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser("worker", help="join the grid or sweep of a results directory",
                       description="Join the grid or sweep of an existing results directory: claim its units "
                                   "(tuning trials and final seeded runs) from its study storage until none is left.")
    p.add_argument("directory", help="the results directory of a grid or sweep started by `ablate run`")
    p.add_argument("--storage", help="the storage URL, when it has a password (else ABLATE_STORAGE)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the output path")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("report", help="write the report of a results directory",
                       description="Write report.md, a self-contained report.html, figures/ and tables/ (CSV and "
                                   "LaTeX) for a results directory; --compare OTHER writes DIR/compare-<OTHER>.md/.html instead, "
                                   "leaving DIR's own report as it was.")
    p.add_argument("directory", help="a results directory written by `ablate run`, e.g. results/default")
    p.add_argument("--compare", metavar="OTHER",
                   help="a second results directory to compare with (e.g. the same ablation at another depth)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("damage", help="evaluate a results directory's trained models under damage",
                       description="Load the kept checkpoints (trainer.checkpoint=last) of every run in DIR, score "
                                   "each on its test split with each layer removed, each attention head removed, "
                                   "Gaussian weight noise and int8 weights; write DIR/damage.csv and rebuild the "
                                   "report with its Damage tolerance section.")
    p.add_argument("directory", help="a results directory written by `ablate run ... trainer.checkpoint=last`")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_damage)
    p = sub.add_parser("export", help="write a results directory's tables as parquet, csv or json",
                       description="Write the tidy tables of a results directory (runs, trials, diagnostics: one "
                                   "row per observation) as parquet (default), csv or json into DIR/export/.")
    p.add_argument("directory", help="a results directory written by `ablate run`")
    p.add_argument("--to", default="parquet", metavar="FORMAT", help="parquet (default), csv or json")
    p.add_argument("--out", metavar="FOLDER", help="where to write the files (default DIR/export/)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.set_defaults(func=cmd_export)
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


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error condition on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is not a file
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see ablations/completion.py); exits
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    # `ablate --debug run ...` as well as `ablate run --debug ...` (a subcommand's default would hide the first)
    args.debug = getattr(args, "debug", False) or "--debug" in argv
    from ablations import shadowed_packages

    problem = shadowed_packages()  # before anything imports them: a foreign `models` is one line, not a traceback
    if problem:
        print(f"ablate: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from ablations.execute.signals import Interrupted, handled
    from models.errors import ConfigError

    try:
        # SIGINT and SIGTERM raise `Interrupted` wherever the command is, training included (see signals.py).
        with handled():
            from ablations.plugins import load_plugins, plugins_in_overrides

            # Before anything is composed: plugins register the names that configs are validated against.
            load_plugins(plugins_in_overrides(getattr(args, "overrides", None) or []))
            status = args.func(args)
            sys.stdout.flush()  # here, not at exit: a reader that went away is a BrokenPipeError caught below
            return status
    except Interrupted as interrupted:  # nothing running was recorded: the same command resumes
        print(interrupted.message, file=sys.stderr)
        return interrupted.status
    except BrokenPipeError:
        if not _stdout_closed():  # another pipe (a worker process's, say) broke: a real error
            raise
        # The reader of stdout stopped early (`ablate list | head -1`): end quietly, as `cat` does, with the
        # status of a process ended by SIGPIPE (128 + 13). Output still buffered goes to /dev/null, so the
        # interpreter's own flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ConfigError as error:
        if args.debug:
            raise
        print(f"ablate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a Ctrl-C outside `handled()` (its handler was replaced by someone else's)
        print("ablate: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
