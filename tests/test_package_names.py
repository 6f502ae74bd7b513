"""The suite's top-level `models` and `tasks` packages keep their short names (every plugin imports them); a
user's own package of the same name that shadows one is one line, from the CLI and from the Python API."""

import subprocess
import sys
from pathlib import Path

from ablations import shadowed_packages

ROOT = Path(__file__).resolve().parents[1]


def test_the_suites_own_packages_are_found_here():
    assert shadowed_packages() is None


def test_a_users_own_models_package_is_named_in_one_line(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("X = 1  # the user's own\n")
    cli = subprocess.run([sys.executable, "-m", "ablations.cli", "list"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 2 and cli.stdout == ""
    assert len(cli.stderr.strip().splitlines()) == 1 and "Traceback" not in cli.stderr
    assert f"finds the one in {tmp_path / 'models'}" in cli.stderr and "rename yours" in cli.stderr
    api = subprocess.run([sys.executable, "-c", "import ablations.api"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert api.returncode == 1 and api.stderr.strip().splitlines()[-1].startswith("ImportError: `import models`")
    mine = subprocess.run([sys.executable, "-c", "from models import X; print(X)"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert mine.stdout.strip() == "1"  # their own package is theirs
