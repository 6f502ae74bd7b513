"""`ablate run ablation.seeds=auto` end to end on a tiny model: it terminates within max_seeds, records how many
seeds each cell got (and the runs agree), a second run of the same command replays to identical tables and record,
`ablate worker` on the finished directory changes nothing, and what cannot combine with `auto` is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablations.analyse import sequential
from ablations.cli import main
from ablations.store.files import read_runs
from models.errors import ConfigError
from tests.reliability.helpers import TABLE, TINY

#: the tests' own config directory, with the two-variant ablation `pair` (baseline, post_norm on copy)
CONF = Path(__file__).resolve().parent / "fixtures" / "conf"
TIMING = ["wall_seconds", "tokens_per_second"]
#: `post_norm` made the baseline's twin (the same runs under another name): every seed's difference is 0, but at
#: this budget the baseline is barely above chance, so its normalised spread is far wider than the margin and the
#: cell stays open at the first look; seeds are added to both sides, and at max_seeds it is inconclusive
AUTO = ["ablation=pair", *TINY, "ablation.variants.post_norm=[]", "ablation.seeds=auto", "ablation.max_seeds=4"]


@pytest.fixture(autouse=True)
def _pair(monkeypatch):
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(CONF))


def _table(directory: Path) -> list[dict]:
    return json.loads(read_runs(directory).drop(columns=TIMING).to_json(orient="records"))


@pytest.mark.slow
def test_auto_seeds_terminate_record_the_seeds_of_each_cell_and_resume_identically(tmp_path, capsys):
    out = tmp_path / "auto"
    assert main(["run", "-q", *AUTO, f"out={out}"]) == 0
    record = json.loads((out / sequential.RECORD).read_text())
    design = record["design"]
    assert (design["min_seeds"], design["step"], design["max_seeds"], design["looks"]) == (3, 2, 4, [3, 4])
    assert sum(design["alphas"]) == pytest.approx(0.05) and design["n_cells"] == 1
    (cell,) = record["cells"]
    assert (cell["variant"], cell["task"]) == ("post_norm", "copy")
    assert [look["seeds"] for look in record["looks"]] == [3, 4]
    assert [look["cells"][0]["verdict"] for look in record["looks"]] == ["open", "inconclusive"]
    assert record["looks"][0]["cells"][0]["norm_delta"] == 0.0  # the twin: no difference, only spread
    assert (cell["verdict"], cell["look"], cell["seeds"], cell["seeds_given"]) == ("inconclusive", 2, 4, 4)
    assert record["baseline_seeds"] == {"copy": 4}
    # the runs are exactly the seeds the record gave each side, no more
    runs = read_runs(out)
    for variant in ("baseline", "post_norm"):
        seeds = sorted(int(s) for s in runs.loc[runs["variant"] == variant, "seed"])
        assert seeds == list(range(cell["seeds"]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ablation"]["seeds"] == "auto" and manifest["ablation"]["max_seeds"] == 4
    # the sequence reads back from the runs alone: a replay gives the recorded one
    replayed = sequential.replay(runs, "baseline", sequential.Design.from_dict(design), [("post_norm", "copy")])
    assert replayed.to_dict() == record

    table, text = _table(out), (out / sequential.RECORD).read_text()
    capsys.readouterr()
    assert main(["run", *AUTO, f"out={out}"]) == 0  # the same command again: nothing to train, the same end
    err = capsys.readouterr().err
    assert "resuming" in err and "look 1 (3 seeds per side)" in err and "look 2 of 2: 1 cell(s) undecided" in err
    assert _table(out) == table and (out / sequential.RECORD).read_text() == text
    assert main(["worker", "-q", str(out)]) == 0  # a worker joining the finished sequence changes nothing
    assert _table(out) == table and (out / sequential.RECORD).read_text() == text

    # Stopped after its first look (here: the first look's units done by a plain grid of seeds 0-2), the same
    # command resumes the sequence and ends where an uninterrupted one did.
    other = tmp_path / "resumed"
    fixed = [o for o in AUTO if not o.startswith("ablation.seeds") and not o.startswith("ablation.max_seeds")]
    assert main(["run", "-q", *fixed, "ablation.seeds=[0,1,2]", f"out={other}"]) == 0
    assert not (other / sequential.RECORD).exists()
    assert main(["run", "-q", *AUTO, f"out={other}"]) == 0
    assert (other / sequential.RECORD).read_text() == text
    assert read_runs(other)[TABLE].equals(read_runs(out)[TABLE])


@pytest.mark.parametrize("extra, clash", [(["seed=1"], "seed="), (["sweep.seeds=2"], "sweep.seeds=")])
def test_auto_and_an_explicit_seed_count_cannot_combine(tmp_path, extra, clash):
    from ablations import api

    with pytest.raises(ConfigError) as info:
        api.run([*AUTO, *extra, f"out={tmp_path / 'x'}"])
    message = str(info.value)
    assert message.startswith(clash) and "ablation.seeds=auto" in message and "\n" not in message
    assert not (tmp_path / "x").exists()


def test_a_max_below_the_minimum_is_refused_before_any_work(tmp_path):
    from ablations import api

    with pytest.raises(ConfigError, match="max_seeds >= ablation.min_seeds.*max_seeds=2 and min_seeds=3"):
        api.run(["ablation=pair", "ablation.seeds=auto", "ablation.max_seeds=2", f"out={tmp_path / 'x'}"])
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("change", ["ablation.max_seeds=5", "ablation.min_seeds=2", "++ablation.seed_step=1"])
def test_a_rerun_with_another_sequential_plan_is_refused_before_any_work(tmp_path, change):
    from ablations import api
    from ablations.analyse.sequential import Design, Sequence
    from ablations.store.files import write_json_atomic

    out = tmp_path / "auto"
    out.mkdir()
    # the record `AUTO` leaves (min 3, step 2, max 4, one cell), before any look
    record = Sequence(Design(3, 4, 2, n_cells=1), "baseline", [("post_norm", "copy")]).to_dict()
    write_json_atomic(out / sequential.RECORD, record)
    with pytest.raises(ConfigError) as info:
        api.run([*AUTO, change, f"out={out}"])
    message = str(info.value)
    assert "min_seeds=3, seed_step=2, max_seeds=4, 1 cells" in message and "alpha" in message
    assert "\n" not in message and not (out / "runs.csv").exists()
    # a run stopped before its first look: the manifest's plan is the one held
    (out / sequential.RECORD).unlink()
    write_json_atomic(out / "manifest.json", {"ablation": {"name": "pair", "seeds": "auto", "max_seeds": 4}})
    with pytest.raises(ConfigError, match="max_seeds=4, 1 cells, this command asks for"):
        api._check_same_design(out, Design(3, 5, 2, n_cells=1))
    api._check_same_design(out, Design(3, 4, 2, n_cells=1))  # the same plan resumes
