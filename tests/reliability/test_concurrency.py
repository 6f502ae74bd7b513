"""Concurrency (issue #10): two `ablate run` on one results directory never run a cell twice or interleave
partial rows: grids and sweeps alike cooperate through the study storage (tests/ablations/execute/test_worker.py:
a run and workers share one grid exactly). Appends from several processes lose no row (tests/ablations/store/test_files.py)."""

from __future__ import annotations

import pytest

from ablations.store.files import unmade_on_error
from models.errors import ConfigError


def test_bad_input_leaves_no_folder_behind(tmp_path):
    with pytest.raises(ConfigError, match="storage"):
        with unmade_on_error(tmp_path / "new" / "res"):
            raise ConfigError("cannot open sweep storage")
    assert list(tmp_path.iterdir()) == []
