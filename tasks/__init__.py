"""The task grid: every task registers itself in `TASKS` on import (one file per task)."""

from models.registry import import_submodules
from tasks.base import IGNORE, TASKS, Split, Task

import_submodules(__name__)

__all__ = ["IGNORE", "TASKS", "Split", "Task"]
