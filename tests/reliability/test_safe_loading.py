"""Safety (issue #10): nothing the suite reads back can run code. Checkpoints and cached tensors are loaded with
`torch.load(weights_only=True)`, configs with OmegaConf's safe YAML loader, results as JSON and CSV; no pickle."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for package in ("ablations", "models", "tasks") for p in (ROOT / package).rglob("*.py"))

UNSAFE = [
    (r"torch\.load\((?![^)]*weights_only\s*=\s*True)", "torch.load without weights_only=True"),
    (r"\byaml\.(load|unsafe_load|full_load|load_all)\(", "a YAML loader that builds arbitrary objects"),
    (r"\b(pickle|dill|cloudpickle|marshal|shelve)\.loads?\(", "unpickling"),
    (r"\bpd\.read_pickle\(", "unpickling"),
    (r"(?<![\w.])(eval|exec)\(", "code from data"),
]


@pytest.mark.parametrize("pattern, what", UNSAFE, ids=[w for _, w in UNSAFE])
def test_no_unsafe_loader_in_the_suite(pattern, what):
    assert SOURCES
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in SOURCES for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(pattern, line) and not line.lstrip().startswith("#")]
    assert not found, f"{what}:\n" + "\n".join(found)


def test_the_checks_would_catch_an_unsafe_call():
    """The control: each pattern matches the call it forbids and not its safe form."""
    assert re.search(UNSAFE[0][0], "x = torch.load(path)")
    assert not re.search(UNSAFE[0][0], "x = torch.load(path, weights_only=True)")
    assert re.search(UNSAFE[1][0], "yaml.load(text, Loader=yaml.Loader)") and not re.search(UNSAFE[1][0],
                                                                                            "yaml.safe_load(t)")
    assert re.search(UNSAFE[2][0], "pickle.loads(blob)")
    assert re.search(UNSAFE[4][0], "eval(text)") and not re.search(UNSAFE[4][0], "model.eval()")
