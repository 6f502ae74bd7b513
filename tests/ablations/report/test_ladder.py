"""The report's "Difficulty" section (runs over a task's difficulty ladder) and its out-of-distribution marks,
from synthetic results directories (fast: no model is built)."""

import json
from types import SimpleNamespace

import pytest

from ablations.analyse.aggregate import load
from ablations.report import ladder
from ablations.report.ablation import build_report
from ablations.report.toolkit import Document
from tests.ablations.fixtures import synthetic
from tests.ablations.fixtures.synthetic import make_results

#: base copy runs over three levels of its ladder; `no_residual` falls off with length, `baseline` holds on
LEVELS = (8, 16, 24)  # 16 is off copy's registered ladder: it still falls in place
BASE = {8: [0.99, 0.97], 16: [0.91, 0.89], 24: [0.55, 0.45]}
WORSE = {8: [0.82, 0.78], 16: [0.37, 0.33], 24: [0.1, "diverged"]}


@pytest.fixture
def laddered(tmp_path, monkeypatch):
    for level in LEVELS:
        monkeypatch.setitem(synthetic.TASKS, f"copy@length={level}", ("accuracy", True, 0.1))
    spec = {}
    for level in LEVELS:
        spec[("baseline", f"copy@length={level}")] = BASE[level]
        spec[("no_residual", f"copy@length={level}")] = WORSE[level]
    spec[("baseline", "digits")] = [0.9, 0.91]
    spec[("no_residual", "digits")] = [0.8, 0.82]
    return make_results(tmp_path / "res", spec, metrics=False)  # no learning curves: a faster report


def runs_of(directory):
    """What the section reads of an Aggregate (its runs, effective scores included, and the baseline), without
    the bootstrap that a full aggregate runs."""
    return SimpleNamespace(runs=load(directory).runs, baseline="baseline")


def norm(value):
    return 0.0 if value == "diverged" else (value - 0.1) / 0.9


def test_the_section_gives_a_curve_per_variant_and_the_mean_over_levels(laddered):
    frame = ladder.ladder_runs(runs_of(laddered).runs)
    assert set(frame["base"]) == {"copy"} and set(frame["level"]) == set(LEVELS)  # digits has no level
    table = ladder.curves(frame).set_index(["variant", "level"])
    for level in LEVELS:
        assert table.at[("baseline", level), "mean"] == pytest.approx(sum(map(norm, BASE[level])) / 2)
        assert table.at[("no_residual", level), "mean"] == pytest.approx(sum(map(norm, WORSE[level])) / 2)
        assert table.at[("baseline", level), "rank"] == LEVELS.index(level)
    scores = ladder.mad_scores(ladder.curves(frame))
    expected = {v: sum(sum(map(norm, s[lv])) / 2 for lv in LEVELS) / 3
                for v, s in (("baseline", BASE), ("no_residual", WORSE))}
    for variant, value in expected.items():
        assert scores.at[variant, "copy"] == pytest.approx(value)
        assert scores.at[variant, "overall"] == pytest.approx(value)
    assert expected["baseline"] > expected["no_residual"]


def test_levels_follow_the_registered_ladder_not_the_order_of_the_rows():
    assert ladder.level_order("copy", "length", [24, 8, 16]) == [8, 16, 24]
    assert ladder.level_order("modular_add", "train_fraction", [0.3, 0.9, 0.6]) == [0.9, 0.6, 0.3]  # harder down
    assert ladder.level_order("permutation", "group", ["S5", "S3", "A5"]) == ["S3", "A5", "S5"]
    assert ladder.level_order("mine", "width", [3, 1, 2]) == [1, 2, 3]  # an unregistered task: numeric order


def test_the_report_has_the_difficulty_section_and_marks_longer_tests_out_of_distribution(laddered):
    """One full report (the hook in ablation.py): the section, its table and figure, and the [OOD] marks."""
    for level in LEVELS:
        _set_task_config(laddered, f"copy@length={level}", {"length": level, "test_length": 2 * level})
    out = build_report(laddered)
    text = out["report_md"].read_text()
    assert "## Difficulty" in text and "arXiv:2403.17844" in text
    assert "copy@length=8" in text and "overall MAD score" in text
    assert "Highest overall MAD-style score: `baseline`" in text
    figure = out["figures"]["difficulty"]
    assert figure.is_file() and figure.stat().st_size > 5000
    assert (laddered / "tables" / "difficulty.csv").is_file()
    assert "copy@length=24 (accuracy) [OOD]" in text and "digits (accuracy) [OOD]" not in text
    assert "test split is longer than their training split" in text and "`copy@length=8`" in text


def test_without_levels_there_is_no_section_and_a_stale_figure_goes(tmp_path):
    res = make_results(tmp_path / "plain", {("baseline", "copy"): [0.9, 0.92], ("other", "copy"): [0.5, 0.6]})
    (res / "figures").mkdir(exist_ok=True)
    (res / "figures" / "difficulty.png").write_bytes(b"old")
    doc = Document()
    assert ladder.section(doc, res, runs_of(res)) is None
    assert not (res / "figures" / "difficulty.png").exists() and "Difficulty" not in doc.markdown(res)


def _set_task_config(directory, task, params):
    for result in directory.glob(f"runs/*/{task}/s*/result.json"):
        data = json.loads(result.read_text())
        data["config"] = {"task": {"name": task, **params}}
        result.write_text(json.dumps(data))


def test_only_runs_tested_on_longer_sequences_mark_their_task(tmp_path):
    res = make_results(tmp_path / "ood", {("baseline", "copy"): [0.9, 0.92], ("baseline", "digits"): [0.9, 0.9]})
    _set_task_config(res, "copy", {"length": 12, "test_length": 20})
    _set_task_config(res, "digits", {"patch": 2})
    assert ladder.ood_tasks(res, runs_of(res).runs) == {"copy"}
    _set_task_config(res, "copy", {"length": 12, "test_length": 0})
    assert ladder.ood_tasks(res, runs_of(res).runs) == set()


@pytest.mark.parametrize("task,expected", [
    ({"name": "copy", "length": 12, "test_length": 0}, False),
    ({"name": "copy", "length": 12, "test_length": 12}, False),
    ({"name": "copy", "length": 12, "test_length": 16}, True),
    ({"name": "copy@length=24", "length": 24, "test_length": 30}, True),
    ({"name": "addition", "n_digits": 3, "test_length": 5}, True),  # its training length is n_digits
    ({"name": "addition", "n_digits": 6, "test_length": 6}, False),
    ({"name": "parity", "length": 16, "test_length": 20}, True),
    ({"name": "digits", "patch": 2}, False),
])
def test_which_runs_are_out_of_distribution(task, expected):
    assert ladder.run_is_ood(task) is expected
