"""Shared pieces of the reliability tests (issue #10): a tiny grid, the console script, directory snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ABLATE = str(Path(sys.executable).parent / "ablate")

#: A model and budget small enough that a run takes a fraction of a second on one CPU thread.
TINY = ["trainer.max_steps=30", "trainer.val_every=10", "trainer.log_every=3", "model.d_model=16", "model.d_ff=32",
        "model.n_heads=2", "model.n_layers=1", "task.n_train=256", "task.n_eval=64",
        "ablation.seeds=[0]"]  # one seed: the default ablation's own three (conf/ablation/default.yaml) cost 3x
#: The default ablation on `copy` with two seeds, its post-norm variant pushed to a learning rate at which it
#: diverges within a few steps: 3 variants x 1 task x 2 seeds, one of the variants a failure that is data.
GRID = ["task=copy", *TINY, "ablation.seeds=[0,1]",
        "ablation.variants.post_norm=['model.norm_placement=post','optim.lr=1e4','optim.warmup_steps=0']"]
#: The columns of runs.csv that must not depend on when or how often a run was interrupted.
TABLE = ["variant", "task", "seed", "status", "score", "val_score", "test_loss", "steps", "diverged_step"]


def snapshot(directory: Path) -> dict[str, str]:
    """Every path under `directory` with a digest of its content (folders: 'dir'): equal snapshots mean
    nothing was created, removed or changed."""
    directory = Path(directory)
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*"))}


def env(**extra) -> dict[str, str]:
    """The environment for a console-script run: one torch thread (the tests share a 2-core machine)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def ablate(*argv: str, cwd: Path, timeout: float = 300, **extra_env) -> subprocess.CompletedProcess:
    """Run the installed `ablate` console script (the real exit status and stderr a user sees)."""
    return subprocess.run([ABLATE, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env(**extra_env))


def table(directory: Path):
    """runs.csv's run-defining columns, sorted by cell, as plain Python values (NaN as None)."""
    from ablations.store.files import read_runs

    frame = read_runs(directory)[TABLE].sort_values(["variant", "task", "seed"]).reset_index(drop=True)
    return [{k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict("records")]
