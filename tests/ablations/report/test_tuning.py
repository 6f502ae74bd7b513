"""The tuning-budget figure, findings and Methods text: drawn and worded from trials.csv, nothing without it."""

import pandas as pd
import pytest

from ablations.analyse import tuning as analyse
from ablations.analyse.aggregate import aggregate, load
from ablations.analyse.tuning import TaskInfo
from ablations.report import tuning
from tests.ablations.fixtures.synthetic import make_results, standard_spec, standard_trials

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def agg(tmp_path_factory):
    directory = make_results(tmp_path_factory.mktemp("tuning") / "abl", standard_spec(3), trials=standard_trials())
    return aggregate(load(directory), n_boot=0)


def _trials(curves: dict, task: str = "copy") -> pd.DataFrame:
    """trials.csv rows from {variant: [val_score or status, ...]}."""
    rows = []
    for variant, values in curves.items():
        for i, value in enumerate(values):
            status = value if isinstance(value, str) else "ok"
            rows.append({"ablation": "abl", "variant": variant, "task": task, "trial": i, "status": status,
                         "val_score": None if isinstance(value, str) else value, "study": f"abl.{variant}"})
    return pd.DataFrame(rows)


def test_the_figure_is_a_png_and_leaves_pyplot_alone(agg, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    path = tuning.tuning_figure(agg, tmp_path / "out" / "tuning_curves.png")
    assert path == tmp_path / "out" / "tuning_curves.png"
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically
    assert plt.get_fignums() == [] and matplotlib.get_backend() == backend


def test_nothing_without_trials(tmp_path):
    directory = make_results(tmp_path / "abl", standard_spec(2))
    agg = aggregate(load(directory), n_boot=0)
    assert tuning.tuning_figure(agg, tmp_path / "t.png") is None and not (tmp_path / "t.png").exists()
    assert tuning.tuning_findings(agg) == [] and tuning.tuning_methods(agg) == []


def test_findings_of_the_synthetic_ablation(agg):
    lines = tuning.tuning_findings(agg)
    copy = next(line for line in lines if "**copy**" in line)
    # no_residual's best trial (0.6) stays below the baseline's mean trial (0.5+0.87+0.90+0.89+0.70+chance)/6
    assert "**no_residual** never reaches **baseline**'s expected best of 1 trial" in copy
    assert "diverged/failed (as chance)" in copy
    lm = next(line for line in lines if "**char_lm**" in line)
    assert "bits per char" in lm and "1 pruned" in lm


def test_findings_name_trials_to_reach_and_a_flip():
    trials = _trials({"baseline": [0.8] * 4, "rare_good": [0.2, 0.4, 0.6, 1.0], "same": [0.8] * 4})
    curves = analyse.budget_curves(trials, {"copy": TaskInfo("accuracy", True, 0.1)})
    (line,) = tuning.findings_from(curves, "baseline")
    assert ("**rare_good** needs about 3 trials to reach **baseline**'s expected best of 1 trial (0.800, its own "
            "0.550), but the ranking flips with budget: ahead of **baseline** from 3 trials on (1.00 vs 0.800 at 4 "
            "trials);") in line
    assert "**same** is level with **baseline** at 1 trial (0.800), and is level at 4 trials (0.800)." in line
    assert "Trials counted" not in line  # every trial was a plain score


def test_a_trial_without_a_score_is_shown_as_an_error():
    trials = _trials({"baseline": [0.9, 0.8, "ok"], "other": [0.7, 0.9, 0.95]})
    curves = analyse.budget_curves(trials, {"copy": TaskInfo("accuracy", True, 0.1)})
    lines = tuning.findings_from(curves, "baseline")
    assert any(line.startswith("⚠") and "baseline on copy (1 of 3)" in line for line in lines)
    # the baseline's best of 2 of (0.9, 0.8, chance 0.1) is 0.867 on average: above other's mean trial, 0.85
    assert ("**other** is ahead at 1 trial (0.850 vs 0.600, **baseline** needs about 2 trials to match it), and is "
            "ahead of **baseline** at 3 trials (0.950 vs 0.900).") in lines[0]


def test_from_a_trials_csv_with_a_log_axis_and_lower_is_better(tmp_path):
    values = [3.0 - 0.05 * i for i in range(20)]
    trials = pd.concat([_trials({"baseline": values, "post_norm": values[::-1][:-2] + ["diverged"] * 2},
                                task="char_lm")])
    path = tmp_path / "trials.csv"
    trials.to_csv(path, index=False)
    out = tuning.tuning_curves(path, "baseline", tmp_path / "fig.png", higher_is_better=False, chance=5.0,
                               metric="bits_per_char")
    assert out.read_bytes().startswith(PNG)
    assert tuning.tuning_curves(trials.iloc[:0], "baseline", tmp_path / "none.png") is None


def test_methods_state_the_rules():
    trials = _trials({"baseline": [0.8, "pruned"]})
    for pruned, phrase in (("last", "when the median pruner stopped them"), ("worst", "as the worst")):
        text = " ".join(tuning.methods_from(analyse.budget_curves(trials, {}, pruned=pruned)))
        assert phrase in text and "Tang et al." in text and "chance level" in text
    text = " ".join(tuning.methods_from(analyse.budget_curves(trials, {}, replacement=True)))
    assert "Dodge et al. (2019), n draws with replacement" in text
