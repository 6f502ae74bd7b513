"""Name -> class registries, one per component kind.

Why: a variant must be one file. The file registers itself with `@ATTENTION.register("name")`; configs refer to
it by that string; `ablate list`, the tests and the reports iterate over `names()`. No list anywhere else needs
editing when a variant is added.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from models.errors import ConfigError

T = TypeVar("T")

#: The plugin whose module is being imported (set by `ablations.plugins`), so that each registration records
#: where it came from and `ablate list` can say so.
loading_plugin: str | None = None


def closest(word: str, choices) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Registry(Generic[T]):
    """Maps names to classes for one kind of component (or task)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._plugins: dict[str, str] = {}  # name -> the plugin that registered it (built-ins are absent)

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: `@REGISTRY.register("name")`. Duplicate names are an error, never a silent replace."""

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ConfigError(f"duplicate {self.kind} name '{name}' (already registered by "
                                  f"{self._entries[name].__module__})")
            obj.registered_name = name
            self._entries[name] = obj
            if loading_plugin is not None:
                self._plugins[name] = loading_plugin
            return obj

        return decorate

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise ConfigError(f"{self.kind} must be a name, got {name!r}; valid: {', '.join(self.names())}")
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} '{name}'{closest(str(name), self._entries)}; "
                              f"valid: {', '.join(self.names())}") from None

    def plugin_of(self, name: str) -> str | None:
        """The plugin that registered `name`, or None for a built-in."""
        return self._plugins.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def import_submodules(package_name: str) -> None:
    """Import every module of a package so that each variant file registers itself on import."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
