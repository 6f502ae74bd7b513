"""What the shared synthetic results directories (tests/ablations/fixtures/synthetic.py) leave out and the report
tests need: each run's diagnostics.csv and the `config` section of its result.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.analyse.diagnostics import COLUMNS

#: blocks of the synthetic model: diagnostics layers 0 (embedding) .. LAYERS (last block), LAYERS + 1 (head)
LAYERS = 2
STEPS = (0, 20, 40)


def _runs(directory: Path):
    for result in sorted(Path(directory).glob("runs/*/*/s*/result.json")):
        yield result.parent, json.loads(result.read_text())


def add_diagnostics(directory: Path, value=None) -> None:
    """A diagnostics.csv in every run directory: grad_norm (layers 0..L+1), branch_ratio (blocks 1..L, branches
    attn and ffn) and token_spread (layers 0..L) at STEPS. `value(variant, seed, metric, step, layer, branch)`
    gives each value (default: a smooth function of them)."""
    def default(variant, seed, metric, step, layer, branch):
        return 0.1 + 0.01 * layer + 0.001 * step + 0.0001 * seed + (0.05 if branch == "ffn" else 0.0)

    value = value or default
    for run_dir, result in _runs(directory):
        rows = []
        for step in STEPS:
            for layer in range(LAYERS + 2):
                rows.append((step, layer, "", -1, "grad_norm",
                             value(result["variant"], result["seed"], "grad_norm", step, layer, "")))
            for layer in range(1, LAYERS + 1):
                for branch in ("attn", "ffn"):
                    rows.append((step, layer, branch, -1, "branch_ratio",
                                 value(result["variant"], result["seed"], "branch_ratio", step, layer, branch)))
            for layer in range(LAYERS + 1):
                rows.append((step, layer, "", -1, "token_spread",
                             value(result["variant"], result["seed"], "token_spread", step, layer, "")))
        pd.DataFrame(rows, columns=COLUMNS).to_csv(run_dir / "diagnostics.csv", index=False)


def add_configs(directory: Path, *, batch_size: int = 8, model: dict | None = None, tasks=("copy",)) -> None:
    """The `config` section of result.json (model, optim, task, trainer) for every run of `tasks`, as
    `ablations.execute.run` writes it: the default model with `model` overriding it, and `world_size` 1."""
    from models.config import ModelConfig

    for run_dir, result in _runs(directory):
        if result["task"] not in tasks:
            continue
        cfg = ModelConfig.from_dict({**ModelConfig().to_dict(), **(model or {})})
        result["config"] = {"model": cfg.to_dict(), "optim": {"batch_size": batch_size, "lr": 0.003},
                            "task": {"name": result["task"]}, "trainer": {"max_steps": 40}, "seed": result["seed"]}
        result["world_size"] = 1
        (run_dir / "result.json").write_text(json.dumps(result, default=str))
