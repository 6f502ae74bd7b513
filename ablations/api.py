"""The public Python API: what `ablate` does, callable from a notebook or a script. The CLI is a thin client.

    from ablations import api
    outcome = api.run(["ablation=default", "trainer.max_steps=200", "out=/tmp/ab"])
    outcome.runs            # runs.csv as a DataFrame
    api.load("/tmp/ab")     # the same, later
    api.train(["task=copy", "model.residual=none"])   # one run's result row

Every function takes Hydra-grammar overrides (`key=value`) and raises `models.errors.ConfigError` (one line)
for input that cannot work, before any work is done.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ablations import require_own_packages

require_own_packages()  # a user's own `models` or `tasks` first on sys.path: one line saying so

from ablations.config.ablation import seed_keys  # noqa: E402
from models.errors import ConfigError  # noqa: E402


@dataclass
class Outcome:
    """What `run` and `worker` leave: the results directory, its report (None until every unit is done) and
    its runs."""

    directory: Path
    report: Path | None
    finished: bool = True

    @property
    def runs(self):
        return load(self.directory)


def command_line(argv: list[str]) -> str:
    from ablations.config.secrets import redact

    return "ablate " + " ".join(shlex.quote(redact(a)) for a in argv)


def summary_line(index: int, total: int, label: str, row: dict) -> str:
    """The one line printed per finished run."""
    score = row.get("score") if row.get("score") is not None else row.get("val_score")
    shown = f"{row['metric']}={score:.4f}" if isinstance(score, float) else f"{row['metric']}=n/a"
    extra = f" at step {row['diverged_step']}" if row["status"] == "diverged" else ""
    extra += f": {row['error']}" if row.get("error") else ""
    speed = (f" in {row['wall_seconds']:.1f}s ({row['tokens_per_second']:.0f} tok/s)"
             if row.get("tokens_per_second") else "")
    return f"[{index}/{total}] {label}: {row['status']}{extra} {shown}{speed}"


def _interruptible(function):
    """SIGINT and SIGTERM raise `ablations.execute.signals.Interrupted` while `function` runs (main thread): a
    running unit is released for its redo, not recorded (see ablations/execute/signals.py)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from ablations.execute.signals import handled

        with handled():
            return function(*args, **kwargs)

    return wrapper


# --- one run -------------------------------------------------------------------------------------------------

@_interruptible
def train(overrides: list[str] = (), *, out: str | Path | None = None) -> dict:
    """Train and test one configuration; returns its result row (result.json is in its run directory)."""
    from ablations.config import compose_config, override_key, to_run_config
    from ablations.execute.run import train as train_run
    from ablations.store.files import check_writable

    overrides = list(overrides)
    cfg = compose_config(overrides)
    run_cfg = to_run_config(cfg)
    model_overrides = [o for o in overrides if override_key(o).startswith("model.")]
    variant = ",".join(o.lstrip("+").removeprefix("model.") for o in model_overrides) or "baseline"
    run_dir = Path(out or cfg.out or Path("results") / "train" / run_cfg.task["name"] /
                   (variant.replace("/", "_") + f"-s{run_cfg.seed}"))
    check_writable(run_dir)
    return train_run(run_cfg, run_dir, variant=variant)


# --- grids and sweeps ----------------------------------------------------------------------------------------

@dataclass
class _Part:
    """One plain ablation to execute into one directory, with its sweep profile, resolved and validated."""

    directory: Path
    ablation: object
    overrides: list[str]
    sweep: object
    seeds: tuple[int, ...]  # with ablation.seeds=auto: every seed the design may add (each checked now)
    stack: int
    margin: float = 0.05    # report.margin: the equivalence margin of ablation.seeds=auto's looks


def _resolve(overrides: list[str], ablation, keys: set[str]) -> tuple[list[str], object]:
    """The overrides and sweep profile of one ablation: its own profile unless the command line names one."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config, override_key
    from ablations.config.sweep import SweepConfig

    part = list(overrides)
    if ablation.sweep and "sweep" not in keys:
        part = [*overrides, f"sweep={ablation.sweep}"]
        own = [o for o in part if not override_key(o).startswith("sweep.")]
        untuned = not SweepConfig.from_dict(OmegaConf.to_container(compose_config(own).sweep, resolve=True)).tunes
        dropped = [o for o in part if override_key(o).startswith("sweep.")] if untuned else []
        if dropped:  # e.g. sweep.trials=1 for a suite whose other parts tune: it cannot make this part tune
            from ablations.config.secrets import redact

            # Printed even with -q: it changes what runs.
            print(f"note: {' '.join(redact(o) for o in dropped)} not applied to {ablation.name}, which is not "
                  f"tuned (sweep={ablation.sweep})", file=sys.stderr)
            part = own
    cfg = compose_config(part)
    return part, SweepConfig.from_dict(OmegaConf.to_container(cfg.sweep, resolve=True))


def _part(directory: Path, ablation, overrides: list[str], keys: set[str], *, quiet: bool) -> _Part:
    from ablations.config import check_seed, compose_config, to_run_config

    part_overrides, sweep = _resolve(overrides, ablation, keys)
    cfg = compose_config(part_overrides)
    if ablation.adaptive:
        # Seeds chosen by data: an explicit count of seeds cannot also hold. A sweep profile's own `seeds` (the
        # finals of `sweep=quick`) gives way to the design, and says so.
        clash = next((k for k in ("seed", "sweep.seeds") if k in keys), None)
        if clash:
            raise ConfigError(f"{clash}= sets the seeds itself and cannot be combined with ablation.seeds=auto (seeds "
                              f"chosen by data, up to ablation.max_seeds); drop one of the two")
        if sweep.tunes and sweep.seeds:
            print(f"note: ablation.seeds=auto chooses the final seeds of {ablation.name}; the sweep profile's "
                  f"seeds={sweep.seeds} is not used", file=sys.stderr)
        seeds = tuple(range(ablation.seed_plan[2]))
    elif "seed" in keys:
        seeds = (int(cfg.seed),)
    else:
        seeds = tuple(range(sweep.seeds)) if sweep.tunes and sweep.seeds else tuple(ablation.seeds)
    for seed in seeds:  # the ablation's own seeds too, not only seed=N: out of range is one line, now
        check_seed(seed, f"each seed of ablation {ablation.name}")
    stack = int(getattr(to_run_config(cfg).trainer, "stack", 1))
    return _Part(directory, ablation, part_overrides, sweep, seeds, stack, float(cfg.report.margin))


def _plans(part: _Part, tasks):
    from ablations.execute.plan import plan_cells

    return plan_cells(part.ablation, part.overrides, tasks, tuned=tuple(part.sweep.space) if part.sweep.tunes
                      else ())


def _manifest_writer(command: str, digest: str):
    """What `run` and `submit` write into each directory before its first unit: its manifest.json (the
    overrides with every secret masked)."""
    from ablations.config.secrets import redact
    from ablations.store.directory import ResultsDir

    def write(directory: Path, ablation, overrides: list[str]) -> None:
        ResultsDir(directory).write_manifest(ablation=ablation, command=command,
                                             overrides=[redact(o) for o in overrides], config_hash=digest)

    return write


def _check_same_ablation(directory: Path, name: str) -> None:
    """A different ablation into a directory that holds another is refused: its tables would mix the two."""
    from ablations.store.directory import ResultsDir

    manifest = ResultsDir(directory).manifest()
    held = ((manifest or {}).get("ablation") or {}).get("name")
    if held and held != name:
        raise ConfigError(f"{directory} holds the results of ablation {held}, not {name}; choose another out=DIR "
                          f"for {name}")


def _execute(part: _Part, tasks, started, *, quiet: bool, wait: bool = True, work: bool = True,
             plans=None) -> bool:
    """Claim and do the part's units (with sweep.workers-1 helper processes); True when all are done. Without
    `work`, only validate, write the manifest and open the storage (for workers elsewhere to claim from).
    `plans`: the part's `_plans`, where the caller has made them already (a suite validates every part first)."""
    plans = _plans(part, tasks) if plans is None else plans
    if part.ablation.adaptive:
        return _execute_adaptive(part, plans, started, quiet=quiet, wait=wait, work=work)
    return _execute_units(part, plans, list(part.seeds), started, quiet=quiet, wait=wait, work=work)


def _execute_adaptive(part: _Part, plans, started, *, quiet: bool, wait: bool, work: bool) -> bool:
    """ablation.seeds=auto: look after look of the sequential design (ablations/analyse/sequential.py), each look
    the units of the cells still open and of their task's baseline at the look's seeds, then the analysis that
    closes the decided cells. Everything is read back from the storage and runs.csv, so the same command run again
    (or an `ablate worker`) replays the finished looks to the same decisions, resumes the open one, and ends with
    the same tables and the same `sequential.json`. A look is analysed only once all its units are done: a worker
    that does not wait (`ablate worker`) returns when others still run units of its look, and whoever finishes
    the look's last unit goes on to the next."""
    from ablations.analyse import sequential
    from ablations.analyse.stats import ALPHA
    from ablations.execute.worker import Worker
    from ablations.store.files import read_runs, write_json_atomic

    baseline = part.ablation.baseline
    low, step, high = part.ablation.seed_plan
    cells = [(p.variant, p.task) for p in plans if p.variant != baseline]
    design = sequential.Design(low, high, step, n_cells=len(cells), alpha=ALPHA, margin=part.margin)
    _check_same_design(part.directory, design)
    sequence = sequential.Sequence(design, baseline, cells)
    while not sequence.done():
        first = sequence.look == 0
        pending = sequence.pending()
        open_tasks = {t for _, t in pending}
        look_plans = plans if first else [p for p in plans if (p.variant, p.task) in pending
                                          or (p.variant == baseline and p.task in open_tasks)]
        n = sequence.next_seeds()
        if not quiet and not first:
            names = ", ".join(f"{v} x {t}" for v, t in pending)
            print(f"look {sequence.look + 1} of {len(design.looks)}: {len(pending)} cell(s) undecided ({names}); "
                  f"seeds {sequence.history[-1]['seeds']}..{n - 1} added to them and their task's baseline",
                  file=sys.stderr)
        finished = _execute_units(part, look_plans, list(range(n)), started if first else (lambda: None),
                                  quiet=quiet, wait=wait, work=work, resuming=first)
        if not work or not finished:
            return False
        runs = read_runs(part.directory)
        sequence.observe(runs[runs["ablation"].astype(str) == part.ablation.name])
        write_json_atomic(part.directory / sequential.RECORD, sequence.to_dict())
        if not quiet:
            print(f"look {sequence.look} ({n} seeds per side): {sequence.outcome()}", file=sys.stderr)
    # The tables in the plan's order (each look's export ordered only its own cells first).
    Worker(part.directory, part.ablation, plans, part.sweep, [0], stack=part.stack).export()
    return True


def _check_same_design(directory: Path, design) -> None:
    """A rerun of `seeds: auto` into a directory that ran another sequential plan is refused: each look's alpha is
    fixed by the whole plan (min_seeds, seed_step, max_seeds, the cells), so looks already made under one plan
    cannot be continued under another without breaking the error spending (ablations/analyse/sequential.py)."""
    from ablations.analyse import sequential
    from ablations.store.directory import ResultsDir

    record = sequential.read(directory)
    if record is not None:
        held = record.design
        old = (held.min_seeds, held.step, held.max_seeds, held.n_cells)
    else:  # stopped before its first look was recorded: the manifest holds the plan it started with
        ablation = ((ResultsDir(directory).manifest() or {}).get("ablation") or {})
        if ablation.get("seeds") != "auto":
            return
        from ablations.config.ablation import SEED_DEFAULTS

        old = tuple(SEED_DEFAULTS[k] if ablation.get(k) is None else int(ablation[k])
                    for k in ("min_seeds", "seed_step", "max_seeds")) + (design.n_cells,)
    new = (design.min_seeds, design.step, design.max_seeds, design.n_cells)
    if old != new:
        def plan(values):
            return f"min_seeds={values[0]}, seed_step={values[1]}, max_seeds={values[2]}, {values[3]} cells"

        raise ConfigError(f"{directory} ran ablation.seeds=auto with {plan(old)}, this command asks for {plan(new)}: "
                          f"the alpha of each look depends on the whole plan; rerun with the same values or choose "
                          f"another out=DIR")


def _execute_units(part: _Part, plans, seeds: list[int], started, *, quiet: bool, wait: bool = True,
                   work: bool = True, resuming: bool = True) -> bool:
    """Claim and do the units of `plans` at `seeds` (see `_execute`)."""
    from ablations.execute.worker import Worker, start_local_workers, stop_local_workers
    from ablations.store.directory import ResultsDir

    results = ResultsDir(part.directory)
    if results.exists():
        results.check()  # read only: a corrupted file is one line naming it, and nothing is written
    with results.unmade_on_error():  # every process of a grid or sweep cooperates through the storage
        worker = Worker(results.path, part.ablation, plans, part.sweep, seeds, stack=part.stack)
        worker.check_conflicts()
        done, total = worker.units()
        if not quiet and done and resuming:
            print(f"resuming {results.path}: {done} of {total} units already done", file=sys.stderr)
        started()
        if not work:
            return worker.finished()
        from ablations.progress import Progress

        with Progress(total=total, initial=done, quiet=quiet, unit="unit" if part.sweep.tunes else "run") as progress:
            def on_done(label, row):
                finished = worker.units()[0]  # other workers finish units too: the storage's count
                progress.done(summary_line(finished, total, label, row), at=finished)

            worker.on_done = on_done
            processes = start_local_workers(worker, part.sweep.workers - 1) if part.sweep.workers > 1 else []
            try:
                worker.run(wait=wait)
            except BaseException:  # interrupted or crashed: the helpers stop with this process
                stop_local_workers(processes)
                raise
            finally:
                for process in processes:
                    process.join()
        worker.export()
        return worker.finished()


@_interruptible
def run(overrides: list[str] = (), *, quiet: bool = True) -> Outcome:
    """Run an ablation (default: conf/ablation/default.yaml) into its results directory and write its report.
    Resumes and accumulates: what the directory already holds is kept, and only missing units run."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config, config_hash, override_key
    from ablations.config.ablation import Suite, load_ablation
    from ablations.store.directory import ResultsDir

    command = command_line(["run", *overrides])
    overrides = seed_keys(list(overrides))
    cfg = compose_config(overrides)
    spec = load_ablation(OmegaConf.to_container(cfg.ablation, resolve=True))
    keys = {override_key(o) for o in overrides}
    tasks = (cfg.task.name,) if "task" in keys else None
    out = Path(cfg.out) if cfg.out else Path("results") / spec.name
    ResultsDir(out).check_writable()
    _check_same_ablation(out, spec.name)

    manifest = _manifest_writer(command, config_hash(cfg))
    began = time.monotonic()

    if not isinstance(spec, Suite):
        part = _part(out, spec, overrides, keys, quiet=quiet)
        _execute(part, tasks, lambda: manifest(out, spec, part.overrides), quiet=quiet)
        report = _report(out)
        _record_seconds(out, began)
        return Outcome(out, report)
    # A suite: every part's cells are validated before the first part starts, then each part runs into its own
    # directory as its own `ablate run` would (resumable, with its own report), then the combined report.
    parts = []
    for name, ablation in spec.parts.items():
        part = _part(out / name, ablation, overrides, keys, quiet=quiet)
        plans = _plans(part, tasks)  # kept: planning composes every cell again (a large part of a second each)
        _check_same_ablation(part.directory, ablation.name)
        parts.append((part, plans))
    manifest(out, spec, overrides)
    for part, plans in parts:
        if not quiet:
            print(f"part {part.ablation.name}: {part.ablation.description}", file=sys.stderr)
        part_began = time.monotonic()
        _execute(part, tasks, lambda p=part: manifest(p.directory, p.ablation, p.overrides), quiet=quiet,
                 plans=plans)
        _report(part.directory)
        _record_seconds(part.directory, part_began)
    _record_seconds(out, began)  # before the suite report, which states it
    return Outcome(out, _suite_report(out))


def _record_seconds(directory: Path, began: float) -> None:
    """The command's wall-clock time since `began` into the directory's manifest.json (`files.record_seconds`)."""
    from ablations.store import files

    if (Path(directory) / "manifest.json").exists():
        files.record_seconds(directory, time.monotonic() - began)


@_interruptible
def _check_worker_manifest(path: Path, manifest: dict) -> None:
    """What `ablate worker` reads from manifest.json, checked before it is used: a missing key or a value of the
    wrong type is one line naming the file and the key (a manifest is written by `ablate run`; one that is not
    what it writes was damaged or written by hand)."""
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"corrupted manifest {path}: {reason}; run the grid or sweep's `ablate run ...` again "
                           f"to rewrite it")

    ablation, overrides = manifest.get("ablation"), manifest.get("overrides")
    if not isinstance(ablation, dict):
        raise bad("'ablation' must be the ablation (an object)" if "ablation" in manifest
                  else "it has no 'ablation'")
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise bad("'overrides' must be a list of overrides (strings)" if "overrides" in manifest
                  else "it has no 'overrides'")
    if "parts" in ablation:
        if not isinstance(ablation["parts"], dict):
            raise bad("'ablation.parts' must map each part to its ablation")
        return
    for key, kind, check in (("name", "a string", lambda v: isinstance(v, str)),
                             ("baseline", "a string", lambda v: isinstance(v, str)),
                             ("tasks", "a list of task names", lambda v: isinstance(v, list)
                              and all(isinstance(t, str) for t in v)),
                             ("seeds", "a list of integers or auto", lambda v: v == "auto" or isinstance(v, list)
                              and all(isinstance(t, int) and not isinstance(t, bool) for t in v)),
                             ("variants", "an object of variant: [overrides]", lambda v: isinstance(v, dict)
                              and all(isinstance(o, list) and all(isinstance(x, str) for x in o)
                                      for o in v.values())),
                             ("overrides", "a list of overrides", lambda v: v is None or isinstance(v, list))):
        if key not in ablation:
            if key == "overrides":
                continue
            raise bad(f"'ablation.{key}' is missing")
        if not check(ablation[key]):
            raise bad(f"'ablation.{key}' must be {kind}, got {type(ablation[key]).__name__}")


def _unmasked_ablation(recorded: dict, overrides: list[str], directory) -> dict:
    """The manifest's ablation, or, when a secret in it was masked on writing (a password interpolated from the
    environment into its file), the same ablation composed again here, with the secret from this environment."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config
    from ablations.config.secrets import has_redacted, redact_data

    if not has_redacted(recorded):
        return recorded
    import dataclasses

    from ablations.config.ablation import Ablation

    composed = OmegaConf.to_container(compose_config(overrides).ablation, resolve=True)
    if "parts" in composed or redact_data(_jsonable(dataclasses.asdict(Ablation.from_dict(composed)))) \
            != _jsonable(recorded):
        raise ConfigError(f"the ablation of {directory} held a secret, which is never written down, and its file "
                          f"no longer composes to the same ablation here; run `ablate run` with the same overrides")
    return composed


def _jsonable(data):
    import json

    return json.loads(json.dumps(data, sort_keys=True, default=str))


def worker(directory: str | Path, *, storage: str | None = None, quiet: bool = True) -> Outcome:
    """Join the grid or sweep of an existing results directory (another process, machine or array task): claim
    its units until none is left. The report is written by whichever worker finishes the last unit."""
    import os

    from ablations.config import compose_config, dedupe_overrides, override_key
    from ablations.config.ablation import Ablation
    from ablations.config.secrets import MASK
    from ablations.store.directory import ResultsDir

    results = ResultsDir(directory)
    manifest = results.manifest()
    if manifest is None:
        raise ConfigError(f"{directory} has no manifest.json: start the grid or sweep with `ablate run ... "
                          f"out={directory}` first")
    _check_worker_manifest(results.manifest_json, manifest)
    if "parts" in manifest["ablation"]:
        parts = ", ".join(f"{directory}/{part}" for part in manifest["ablation"]["parts"])
        raise ConfigError(f"{directory} holds an ablation with parts; join one part: {parts}")
    overrides = list(manifest["overrides"])
    storage = storage or os.environ.get("ABLATE_STORAGE")
    masked = [o for o in overrides if MASK in o]
    if storage:
        overrides.append(f"sweep.storage={storage}")
    elif any(override_key(o) == "sweep.storage" for o in masked):
        raise ConfigError("the sweep's storage URL has a password, which is never stored: pass it with "
                          "--storage URL or the ABLATE_STORAGE environment variable")
    others = [o for o in masked if override_key(o) != "sweep.storage"]
    if others:
        raise ConfigError(f"the override {others[0]} of {directory} held a secret, which is never written down; "
                          f"run `ablate run` with the same overrides and out={directory} instead of `ablate worker`")
    overrides = dedupe_overrides([*overrides, f"out={directory}"])
    ablation = Ablation.from_dict(_unmasked_ablation(manifest["ablation"], overrides, directory))
    keys = {override_key(o) for o in overrides}
    tasks = (compose_config(overrides).task.name,) if "task" in keys else None
    part = _part(results.path, ablation, overrides, keys, quiet=quiet)
    _one_process_storage(part.sweep.storage, "ablate worker")
    finished = _execute(part, tasks, lambda: None, quiet=quiet, wait=False)
    return Outcome(results.path, _report(results.path) if finished else None, finished)


def _one_process_storage(storage: str | None, joining: str) -> None:
    """A sqlite storage serves one process (SweepConfig refuses sweep.workers > 1 with it); a worker joining
    from elsewhere, or array tasks, would be several."""
    if storage and storage.startswith("sqlite:"):
        raise ConfigError(f"{joining} cannot share a sqlite storage ({storage}): it is for one process; start the "
                          f"sweep with the default journal file or postgresql:// to share it")


@_interruptible
def submit(overrides: list[str] = (), *, jobs: int, cluster: str | None = None, folder: str | Path | None = None,
           wait: bool = False, quiet: bool = True, **parameters) -> Outcome:
    """Prepare a grid or sweep (validate it, write its manifest, open its storage) without running anything
    here, then submit `jobs` array tasks, each an `ablate worker DIR`, through submitit (SLURM by default;
    `cluster="local"` runs them as local processes, as the tests do). `parameters` are submitit's executor
    parameters (timeout_min, slurm_partition, gpus_per_node, cpus_per_task, slurm_array_parallelism, ...).
    With `wait`, waits for the tasks and returns with the report. See README, "Sweeps on a SLURM cluster"."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config, config_hash, hardware_elsewhere, override_key
    from ablations.config.ablation import Suite, load_ablation
    from ablations.execute.cluster import submit_workers
    from ablations.store.directory import ResultsDir

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"the number of worker tasks must be a positive integer, got {jobs!r}")
    command = command_line(["run", *overrides])
    overrides = seed_keys(list(overrides))
    cfg = compose_config(overrides)
    spec = load_ablation(OmegaConf.to_container(cfg.ablation, resolve=True))
    if isinstance(spec, Suite):
        raise ConfigError(f"ablation {spec.name} has parts ({', '.join(spec.parts)}); submit workers for one "
                          f"part at a time (its own ablation file)")
    keys = {override_key(o) for o in overrides}
    tasks = (cfg.task.name,) if "task" in keys else None
    out = Path(cfg.out) if cfg.out else Path("results") / spec.name
    results = ResultsDir(out)
    results.check_writable()
    _check_same_ablation(out, spec.name)
    with hardware_elsewhere():  # the tasks run elsewhere: a GPU the login node lacks is not an error here
        part = _part(out, spec, overrides, keys, quiet=quiet)
        _one_process_storage(part.sweep.storage, "SLURM array tasks")
        manifest = _manifest_writer(command, config_hash(cfg))
        _execute(part, tasks, lambda: manifest(out, spec, part.overrides), quiet=quiet, work=False)
    submitted = submit_workers(_array_task, out, jobs, cluster=cluster, folder=folder, **parameters)
    if not quiet:
        print(f"submitted {len(submitted)} worker tasks for {out}: {', '.join(j.job_id for j in submitted)}",
              file=sys.stderr)
    if not wait:
        return Outcome(out, None, finished=False)
    outcomes = [job.result() for job in submitted]
    finished = any(o.finished for o in outcomes)
    return Outcome(out, _report(out) if finished else None, finished)


def _array_task(directory: str) -> Outcome:
    """One array task of `submit`: a worker on `directory`, one CPU thread per allotted core (SLURM_CPUS_PER_TASK;
    one where the scheduler says nothing, so that tasks sharing a node never oversubscribe it)."""
    import os

    import torch

    torch.set_num_threads(max(1, int(os.environ.get("SLURM_CPUS_PER_TASK") or 1)))
    return worker(directory, quiet=True)


# --- reports and results ------------------------------------------------------------------------------------

def _warn(errors) -> None:
    for error in errors:
        print(f"ablate: warning: {error}", file=sys.stderr)


def _report(directory: Path) -> Path:
    from ablations.report.ablation import build_report

    report = build_report(directory)
    _warn(report["errors"])
    return report["report_md"]


def _suite_report(directory: Path) -> Path:
    from ablations.report.suite import build_suite_report

    report = build_suite_report(directory)
    _warn(report["errors"])
    return report["report_md"]


def report(directory: str | Path, *, compare: str | Path | None = None) -> dict:
    """Rebuild report.md, report.html, figures/ and tables/ of a results directory (each part's and the combined
    report for an ablation with parts); returns the paths written."""
    from ablations.report.ablation import build_report
    from ablations.report.suite import build_suite_report
    from ablations.store.directory import ResultsDir

    results = ResultsDir(directory)
    if results.exists():
        results.check()  # before anything reads it: a corrupted file is one line, named
    if results.exists() and results.is_suite() and not compare:
        built = build_suite_report(results.path, rebuild_parts=True)
        _warn(built["errors"])
        return built
    for other in [results] + ([ResultsDir(compare)] if compare else []):
        if not other.has_runs():
            raise ConfigError(f"{other.path} is not a results directory (no runs.csv); give the out= directory "
                              f"of an `ablate run`, e.g. results/default")
        other.check()
    built = build_report(results.path, compare=Path(compare) if compare else None)
    _warn(built["errors"])
    return built


def damage(directory: str | Path) -> dict:
    """Evaluate the kept checkpoints (`trainer.checkpoint=last`) of a results directory under damage (each layer
    removed, each head removed, weight noise, int8 weights: ablations/analyse/damage.py), write DIR/damage.csv,
    and rebuild the report, which gains its "Damage tolerance" section. Returns the report's paths (as `report`
    does) with `damage_csv`, `damage` (the table) and `notes` (runs skipped for having no checkpoint)."""
    from ablations.analyse.damage import FILE, damage as evaluate_damage
    from ablations.store.directory import ResultsDir

    results = ResultsDir(directory)
    if results.exists() and results.is_suite():  # each part is a results directory of its own
        parts = list(results.manifest()["ablation"]["parts"])
        raise ConfigError(f"{results.path} holds an ablation with parts ({', '.join(parts)}): give one part's "
                          f"directory, e.g. `ablate damage {results.part(parts[0]).path}`")
    if results.exists():
        results.check()  # a corrupted runs.csv is one line, named, before any checkpoint is loaded
    frame, notes = evaluate_damage(results.path)
    built = report(results.path)
    return {**built, "damage_csv": results.path / FILE, "damage": frame, "notes": notes}


def load(directory: str | Path):
    """runs.csv of a results directory as a DataFrame (one row per final seeded run)."""
    from ablations.store.directory import ResultsDir

    results = ResultsDir(directory)
    if not results.has_runs():
        raise ConfigError(f"{results.path} is not a results directory (no runs.csv)")
    return results.read_runs()


__all__ = ["Outcome", "damage", "load", "report", "run", "submit", "train", "worker"]
