"""The committed reference directories (results/reference/...) stay resumable by the current code.

Why: a run's identity is a hash of its configuration. The study names in a directory's journal carry one hash per
cell, and runs.csv carries one per run. A change to how a config is written (a field moved into a component's
options, a setting added) must leave both unchanged, or `ablate run` into an existing directory would start every
cell again (or refuse it as a different configuration), and `ablate worker` could no longer join it. These
directories were made by earlier versions of the code, so they are the real test of that promise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from ablations import api
from ablations.config import compose_config, dedupe_overrides, override_key
from ablations.config.ablation import Ablation, Suite, load_ablation
from ablations.execute.checkpoint import run_config

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
DIRECTORIES = sorted(p.parent for p in REFERENCE.rglob("studies.journal"))


def _studies(directory: Path) -> set[str]:
    lines = (directory / "studies.journal").read_text().splitlines()
    return {name for name in (json.loads(line).get("study_name") for line in lines) if name}


def _held(study: str, names: set[str]) -> bool:
    return any(name == study or name.startswith(study + ".") for name in names)  # a cell's studies: <cell>[.final]


def _plans(directory: Path, ablation: Ablation, overrides: list[str]):
    overrides = dedupe_overrides([*overrides, f"out={directory}"])
    part = api._part(directory, ablation, overrides, {override_key(o) for o in overrides}, quiet=True)
    return api._plans(part, None)


def test_there_are_reference_directories_to_check():
    assert len(DIRECTORIES) >= 4, DIRECTORIES


@pytest.mark.slow
@pytest.mark.parametrize("directory", DIRECTORIES, ids=lambda p: str(p.relative_to(REFERENCE)) or "default")
def test_a_reference_directory_resumes_its_studies_and_runs(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    names = _studies(directory)

    # `ablate worker DIR`: the ablation and overrides recorded in its manifest, as they were written then
    recorded = _plans(directory, Ablation.from_dict(manifest["ablation"]), manifest["overrides"])
    assert [p.study for p in recorded if not _held(p.study, names)] == []

    # `ablate run` with the same command again: the ablation as conf/ablation/ defines it now. Cells it did not
    # have then (a variant added since) would simply run; every cell it had must keep its name.
    spec = load_ablation(OmegaConf.to_container(compose_config(manifest["overrides"]).ablation, resolve=True))
    current = spec.parts[directory.name] if isinstance(spec, Suite) else spec
    held = {tuple(name.split(".")[1:3]): name for name in names}  # (variant, task) -> a study of that cell
    now = _plans(directory, current, manifest["overrides"])
    changed = [p.study for p in now if (p.variant, p.task) in held and not _held(p.study, names)]
    assert changed == []
    assert len([p for p in now if (p.variant, p.task) in held]) == len(recorded)

    # every finished run's recorded config hashes to the config_hash its row carries
    runs = pd.read_csv(directory / "runs.csv")
    assert len(runs) > 0
    mismatched = [run["run_dir"] for run in runs.to_dict("records")
                  if run_config(directory / run["run_dir"]).hash() != run["config_hash"]]
    assert mismatched == []
