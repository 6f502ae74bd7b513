"""Plugins: a researcher's own component or task, in one file, picked up like a built-in.

A plugin is a Python module that registers classes with the same decorators the built-ins use
(`@ATTENTION.register("name")`, `@TASKS.register("name")`, ...). Importing it is all it takes; this module only
decides which modules to import, and when:
- every entry point of the group `ablate.plugins` of the installed packages (`pip install` a plugin package);
- the modules named by the `plugins=[a.b,c]` config key or the `ABLATE_PLUGINS` environment variable
  (comma-separated), importable from the working directory or the installed packages. Only the named modules
  (their top-level package) are found in the working directory: it is not put on `sys.path`, so a stray file
  there (a `seaborn.py`, say) can never replace an installed module for the rest of the process, and a named
  plugin whose file would shadow an installed module of the same name is refused.

Why two rules for failures: an installed plugin that breaks must not take the suite down with it (it may be
unrelated to what you are doing), so it is one warning line naming it and its error; a module you named on the
command line is what you asked for, so failing to import it is an error (one line, exit status 2).
Each module is imported once per process; the registries remember which plugin registered which name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from importlib import metadata
from pathlib import Path

import models.registry
from models.errors import ConfigError

GROUP = "ablate.plugins"
ENV = "ABLATE_PLUGINS"

_entry_points_loaded = False
_loaded: dict[str, str] = {}  # module name -> plugin label, for every plugin imported in this process


class _NamedInDirectory(importlib.abc.MetaPathFinder):
    """Finds the named top-level modules, and only those, in one directory (the working directory when they were
    named): what `sys.path.insert(0, cwd)` would do for them, without it doing so for every other module."""

    def __init__(self, directory: str):
        self.directory = directory
        self.names: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or fullname not in self.names:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.directory])


_finders: dict[str, _NamedInDirectory] = {}


def _local_spec(top: str, directory: str):
    return importlib.machinery.PathFinder.find_spec(top, [directory])


def _installed_spec(top: str, directory: str):
    """The spec an import of `top` finds outside `directory` (built-in, frozen or on sys.path), or None."""
    for finder in (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter):
        spec = finder.find_spec(top)
        if spec is not None:
            return spec
    here = Path(directory).resolve()
    paths = [p for p in sys.path if Path(p or ".").resolve() != here]
    return importlib.machinery.PathFinder.find_spec(top, paths)


def _allow_from_directory(module: str, directory: str) -> None:
    """Let `module`'s top-level package be imported from `directory` when it is there, and only it."""
    top = module.split(".", 1)[0]
    if top in sys.modules or _local_spec(top, directory) is None:
        return
    installed = _installed_spec(top, directory)
    if installed is not None:
        where = installed.origin or (list(installed.submodule_search_locations or []) or ["?"])[0]
        raise ConfigError(f"plugin '{module}': {Path(directory) / top} would shadow the installed module '{top}' "
                          f"({where}); rename your file, since the suite imports the installed one")
    finder = _finders.get(directory)
    if finder is None:
        finder = _finders[directory] = _NamedInDirectory(directory)
        sys.meta_path.insert(0, finder)
    finder.names.add(top)


def loaded() -> dict[str, str]:
    """The plugin modules imported so far, module name -> label."""
    return dict(_loaded)


def _import(module: str, label: str) -> None:
    """Import `module` with its registrations attributed to `label`."""
    if module in _loaded:
        return
    # The built-ins first: they register on their first import, which must not happen inside the plugin's
    # import (its `from models.components import ...` would attribute every built-in to the plugin).
    importlib.import_module("models.components")
    importlib.import_module("tasks")
    previous, models.registry.loading_plugin = models.registry.loading_plugin, label
    try:
        importlib.import_module(module)
    finally:
        models.registry.loading_plugin = previous
    _loaded[module] = label


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}".rstrip(": ")


def load_entry_points() -> None:
    """Import every installed `ablate.plugins` entry point once; a broken one is one warning line on stderr."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            _import(entry.module, entry.module)
        except Exception as error:  # noqa: BLE001  (any failure of someone else's package is reported, not fatal)
            dist = getattr(getattr(entry, "dist", None), "name", None) or entry.module
            print(f"ablate: warning: plugin '{entry.name}' ({dist}) failed to load, skipped: {_error_text(error)}",
                  file=sys.stderr)


def named_plugins(value) -> list[str]:
    """The module names of a `plugins` config value (a list, or one name) plus those of `ABLATE_PLUGINS`."""
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    names = [str(v).strip() for v in value] + [v.strip() for v in os.environ.get(ENV, "").split(",")]
    return list(dict.fromkeys(n for n in names if n))


def load_plugins(named=None) -> None:
    """Load the installed entry points, then the named modules (see the module docstring for the rules)."""
    load_entry_points()
    names = named_plugins(named)
    for module in names:
        if module.endswith(".py"):
            raise ConfigError(f"plugin '{module}': name the module, not the file (plugins=[{module[:-3]}])")
        if module in _loaded:
            continue
        if not all(part.isidentifier() for part in module.split(".")):
            raise ConfigError(f"plugin '{module}' is not a module name; name a module such as my_attention or "
                              f"package.module")
        _allow_from_directory(module, os.getcwd())
        try:
            _import(module, module)
        except ConfigError as error:
            raise ConfigError(f"plugin '{module}' failed to load: {error}") from None
        except Exception as error:  # noqa: BLE001  (the one-line report is the point; --debug re-raises)
            raise ConfigError(f"plugin '{module}' failed to load: {_error_text(error)} (modules are imported "
                              f"from the working directory {os.getcwd()} and the installed packages)") from error


def plugins_in_overrides(overrides: list[str]) -> list[str]:
    """The modules named by a `plugins=` override among command-line overrides (read before composing, because
    composing validates component names that only the plugins register)."""
    from ablations.config import parse_overrides

    names: list[str] = []
    for text in overrides:
        if text.lstrip("+~").startswith("plugins="):
            for override in parse_overrides([text]):
                if override.key_or_group == "plugins" and not override.is_delete():
                    value = override.value()
                    names += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return names
