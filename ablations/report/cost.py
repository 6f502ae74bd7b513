"""What every run cost: parameters, training FLOPs and throughput, read from each run's result.json.

Why FLOPs: a variant's compute is a property of its architecture and its budget, the same on every machine, so
it can be compared and reproduced; wall-clock throughput is not. On the suite's shared 2-core CPU a torch step
went from 6 ms to 800 ms when another process was busy (../shared/DESIGN.md), so a ratio of two tokens/s figures
is mostly a measurement of the machine. Throughput is therefore only ever shown as a median over runs with its
spread (the range over runs), never as a single ratio.

FLOPs per run = training FLOPs per token x tokens trained, where

* training FLOPs per token is `models.flops.training_flops_per_token` (6 N + 12 L T d; Kaplan et al. 2020,
  https://arxiv.org/abs/2001.08361, as written in PaLM, https://arxiv.org/abs/2204.02311, Appendix B), from the
  run's own model config (result.json `config.model`) and its task's training sequence length T, with the
  output head counted per token only for a per-token head (a pooled head runs once per sequence);
* tokens trained = steps x batch size x world size x T: the optimizer steps the run really took (a run that
  diverged at step 15 trained 15 steps), as `tokens_per_second` in result.json counts them.

T is the run's recorded `seq_len` when result.json has one, else the length of one example of the task's
training split (the task's data are deterministic in their parameters), else `task.max_len()` (then an upper
bound: a length-generalisation task's test split is longer), and `seq_len_source` says which.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ablations.analyse.aggregate import ResultSet, resolve_run_dir

COLUMNS = ["variant", "task", "seed", "status", "n_params", "steps", "batch_size", "world_size", "seq_len",
           "seq_len_source", "flops_per_token", "tokens", "flops", "tokens_per_second"]
SUMMARY_COLUMNS = ["variant", "task", "runs", "n_params", "flops_per_token", "tokens", "flops", "tps_runs",
                   "tps_median", "tps_min", "tps_max", "seq_len_source"]


def read_result(directory, run: dict) -> dict:
    """A run's result.json as a dict ({} when it cannot be found or read)."""
    run_dir = resolve_run_dir(directory, run)
    if run_dir is None:
        return {}
    try:
        return json.loads((run_dir / "result.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _task(config: dict, cache: dict):
    """The task a run's config names, built once per distinct set of parameters (None if it cannot be)."""
    task_config = dict(config.get("task") or {})
    key = json.dumps(task_config, sort_keys=True, default=str)
    if key not in cache:
        try:
            from tasks import TASKS

            name = task_config.pop("name")
            cache[key] = TASKS.get(name)(**task_config)
        except Exception:  # noqa: BLE001  (a task of a plugin not loaded, or renamed since the run)
            cache[key] = None
    return cache[key]


def _train_length(task, seed: int, cache: dict) -> tuple[float, str]:
    """(T, where it came from) for a task: one training example's length, else its max_len()."""
    key = id(task)
    if key not in cache:
        try:
            cache[key] = (float(task.make_split("train", 1, int(seed)).inputs.shape[1]), "training split")
        except Exception:  # noqa: BLE001  (data that cannot be made here: fall back to the declared bound)
            try:
                cache[key] = (float(task.max_len()), "task.max_len() (an upper bound)")
            except Exception:  # noqa: BLE001
                cache[key] = (math.nan, "unknown")
    return cache[key]


def _flops_per_token(result: dict, task, seq_len: float) -> float:
    from models.config import ModelConfig
    from models.flops import training_flops_per_token

    model = (result.get("config") or {}).get("model")
    if not model or task is None or not math.isfinite(seq_len):
        return math.nan
    try:
        cfg = ModelConfig.from_dict(dict(model))
        out_dim = task.n_classes if task.output_kind == "token" else None  # a pooled head: once per sequence
        return float(training_flops_per_token(cfg, int(seq_len), out_dim))
    except Exception:  # noqa: BLE001  (a component with no FLOPs count, e.g. an ffn of a plugin)
        return math.nan


def run_costs(results: ResultSet) -> pd.DataFrame:
    """One row per run (COLUMNS): its parameters, FLOPs per token, tokens trained, FLOPs and tokens/s."""
    tasks: dict = {}
    lengths: dict = {}
    rows = []
    for run in results.runs.to_dict("records"):
        result = read_result(results.directory, run)
        config = result.get("config") or {}
        optim = config.get("optim") or {}
        task = _task(config, tasks) if config else None
        if result.get("seq_len"):
            seq_len, source = float(result["seq_len"]), "result.json"
        elif task is not None:
            seed = run["seed"] if not pd.isna(run["seed"]) else 0
            seq_len, source = _train_length(task, seed, lengths)
        else:
            seq_len, source = math.nan, "unknown"
        steps = pd.to_numeric(run.get("steps"), errors="coerce")
        batch = pd.to_numeric(optim.get("batch_size"), errors="coerce")
        world = pd.to_numeric(result.get("world_size", 1), errors="coerce")
        tokens = float(steps * batch * world * seq_len) if all(
            pd.notna(v) for v in (steps, batch, world)) and math.isfinite(seq_len) else math.nan
        per_token = _flops_per_token(result, task, seq_len)
        rows.append({"variant": run["variant"], "task": run["task"], "seed": run["seed"], "status": run["status"],
                     "n_params": run.get("n_params"), "steps": steps, "batch_size": batch, "world_size": world,
                     "seq_len": seq_len, "seq_len_source": source, "flops_per_token": per_token,
                     "tokens": tokens, "flops": per_token * tokens, "tokens_per_second": run.get("tokens_per_second")})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("n_params", "steps", "batch_size", "world_size", "seq_len", "flops_per_token", "tokens", "flops",
                   "tokens_per_second"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def cost_summary(costs: pd.DataFrame) -> pd.DataFrame:
    """Per variant and task (SUMMARY_COLUMNS): the median over runs of parameters, FLOPs per token, tokens and
    FLOPs per run, and tokens/s as its median and range over the runs that finished (`ok`), with their count."""
    rows = []
    for (variant, task), cell in costs.groupby(["variant", "task"], sort=False):
        speed = cell.loc[cell["status"] == "ok", "tokens_per_second"].dropna()
        rows.append({"variant": variant, "task": task, "runs": len(cell),
                     "n_params": cell["n_params"].median(), "flops_per_token": cell["flops_per_token"].median(),
                     "tokens": cell["tokens"].median(), "flops": cell["flops"].median(), "tps_runs": len(speed),
                     "tps_median": float(speed.median()) if len(speed) else math.nan,
                     "tps_min": float(speed.min()) if len(speed) else math.nan,
                     "tps_max": float(speed.max()) if len(speed) else math.nan,
                     "seq_len_source": ", ".join(dict.fromkeys(cell["seq_len_source"]))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def human(value: float, unit: str = "") -> str:
    """`1.23M`, `4.5G`, `830k`, `12`; `—` for a missing value (SI prefixes up to peta)."""
    if value is None or not np.isfinite(value):
        return "—"
    for prefix, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{prefix}{unit}"
    return f"{value:.3g}{unit}"
