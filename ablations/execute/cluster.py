"""Workers on a cluster through submitit (https://github.com/facebookincubator/submitit): no scheduler of ours.

Each array task is `ablate worker DIR`: it claims units from the study storage until none is left, exactly as
a worker on this machine does, so a SLURM job array of N tasks is N more workers of the same grid or sweep.
Across machines the storage must be PostgreSQL (`sweep.storage=postgresql://...`); its password travels in the
ABLATE_STORAGE environment variable, which SLURM passes to the tasks, never in a file. A task that is
pre-empted or killed loses nothing: its unit goes stale and is redone by the next worker that asks.
"""

from __future__ import annotations

from pathlib import Path


def submit_workers(task, directory: str | Path, jobs: int, *, cluster: str | None = None,
                   folder: str | Path | None = None, **parameters) -> list:
    """Submit `jobs` array tasks `task(directory)` (the API's worker entry) as one submitit job array; returns the
    submitit jobs.
    `cluster`: None lets submitit choose (SLURM where `sbatch` exists), "slurm", or "local" (local processes:
    the tests, and a machine without a scheduler). Logs go to `folder` (default: DIR/submitit)."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder or Path(directory) / "submitit"), cluster=cluster)
    executor.update_parameters(name=f"ablate-{Path(directory).name}", **parameters)
    return executor.map_array(task, [str(directory)] * jobs)
