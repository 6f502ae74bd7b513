"""The task grid: every task registers itself in `TASKS` on import (one file per task)."""

import importlib
import pkgutil

from tasks.base import IGNORE, TASKS, Split, Task

# Every task file, imported for its registration. `datamodule` holds no task, only the Lightning data module
# that training imports itself; importing it here would pull in Lightning (seconds) for `ablate list`.
_NOT_TASKS = {"datamodule"}


def _import_tasks() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name not in _NOT_TASKS:
            importlib.import_module(f"{__name__}.{info.name}")


_import_tasks()

__all__ = ["IGNORE", "TASKS", "Split", "Task"]
