"""`ablate damage DIR` end to end on a tiny results directory made by `ablations.api.run` with kept checkpoints:
it writes damage.csv (every run x every damage, the intact score the run's own test score) and the report's
"Damage tolerance" section; runs without a checkpoint are skipped and counted; none at all is one line, exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablations import api
from ablations.analyse import damage as analysis
from ablations.cli import main

#: the tests' own config directory, with the two-variant ablation `pair` (baseline, post_norm on copy)
CONF = Path(__file__).resolve().parent / "fixtures" / "conf"
TINY = ["ablation=pair", "trainer.max_steps=4", "trainer.val_every=4", "trainer.log_every=2", "model.n_layers=2",
        "model.d_model=16", "model.d_ff=32", "model.n_heads=2", "task.n_train=128", "task.n_eval=64",
        "trainer.checkpoint=last"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABLATE_CONFIG_DIR", str(CONF))
        out = tmp_path_factory.mktemp("damage") / "pair"
        api.run([*TINY, f"out={out}"])
    return out


@pytest.mark.slow
def test_damage_writes_the_table_and_the_report_section(tiny, capsys):
    assert main(["damage", str(tiny)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tiny / "damage.csv"), str(tiny / "report.md")]
    table = pd.read_csv(tiny / "damage.csv")
    runs = pd.read_csv(tiny / "runs.csv")
    assert list(table.columns) == analysis.COLUMNS
    # per run: 2 layers, 2 x 2 heads, 4 scales x 3 draws of noise, int8
    assert len(table) == len(runs) * (2 + 4 + len(analysis.SCALES) * len(analysis.DRAWS) + 1)
    for run in runs.itertuples():
        own = table[(table["variant"] == run.variant) & (table["seed"] == run.seed)]
        assert own["intact"].unique() == pytest.approx([run.score])  # the run's own test score, reproduced
    assert set(table["damage"]) == {"layer", "head", "noise", "int8"}
    report = (tiny / "report.md").read_text()
    assert "## Damage tolerance" in report


@pytest.mark.slow
def test_runs_without_a_checkpoint_are_skipped_and_none_is_one_line(tiny, capsys):
    first, second = sorted((tiny / "runs").glob("*/copy/s0"))
    shutil.rmtree(first / "checkpoints")
    frame, notes = analysis.damage(tiny)
    assert set(frame["run_dir"]) == {str(second.relative_to(tiny))}
    assert notes == ["1 of 2 runs skipped: no last checkpoint (run with trainer.checkpoint=last)"]
    shutil.rmtree(second / "checkpoints")
    assert main(["damage", str(tiny)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trainer.checkpoint=last" in err[0]
