"""Every kind that `ablate list`, `ablate check` and `ablate new` know, one `Kind` object each (see `_base.py`).

Why a package: each kind's contract, its conformance harness and its `ablate new` template sit in one small file
(`models/kinds/attention.py` ...), so changing what an attention receives changes one file, and the conformance
suite, the command line and the templates find every kind here instead of in lists of their own.

The component kinds come in the order of `models.components.REGISTRIES` (the ModelConfig fields that select from
them), then `task`. A new component kind is a registry there plus a file here, named in `KINDS`.
"""

from __future__ import annotations

from models.errors import ConfigError
from models.kinds import attention, ffn, memory, norm, norm_placement, position, residual, task
from models.kinds._base import Kind, component_checks
from models.registry import closest

#: Kind name -> Kind, in the order above.
KINDS: dict[str, Kind] = {kind.name: kind for kind in (attention.KIND, ffn.KIND, norm.KIND, norm_placement.KIND,
                                                       residual.KIND, position.KIND, memory.KIND, task.KIND)}


def kind_named(name: str) -> Kind:
    """The kind called `name`; an unknown name is a ConfigError listing the valid ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown kind '{name}'{closest(name, KINDS)}; valid: {', '.join(KINDS)}") from None


__all__ = ["KINDS", "Kind", "component_checks", "kind_named"]
