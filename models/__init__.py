"""The configurable transformer: `ModelConfig` (plain values), `build_model`, and one registry per component.

The names below are imported on first use, so that `models.errors` and `models.registry` (which need no torch)
can be imported without torch, as the command line's `--help` does. Importing `models.components` (the
registries) imports every built-in variant, so a registry reached by any import path holds all of them.
"""

import importlib

__all__ = ["REGISTRIES", "Block", "ConfigError", "ModelConfig", "Transformer", "build_model"]

_HOMES = {"REGISTRIES": "models.components", "ModelConfig": "models.config", "ConfigError": "models.errors",
          "Block": "models.transformer", "Transformer": "models.transformer", "build_model": "models.transformer"}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'models' has no attribute '{name}'")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
