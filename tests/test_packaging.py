"""The wheel must ship every package and the whole config tree (a forgotten folder only fails once installed)."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parent.parent


def test_every_package_and_config_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert config["package-dir"] == {"ablations.conf": "conf"}
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for top in ("ablations", "models", "tasks")
               for p in (ROOT / top).rglob("__init__.py")}
    on_disk |= {"ablations.conf"} | {f"ablations.conf.{d.name}" for d in (ROOT / "conf").iterdir() if d.is_dir()}
    assert on_disk == listed
    assert set(config["package-data"]["ablations.conf"]) >= {"*.yaml", "*/*.yaml"}
