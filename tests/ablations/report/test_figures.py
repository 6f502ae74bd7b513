"""Each figure is a PNG written atomically, and nothing is drawn where there is nothing to show."""

import numpy as np
import pytest

from ablations.analyse import stats
from ablations.analyse.aggregate import aggregate, load, read_curves
from ablations.report import figures
from tests.ablations.fixtures.synthetic import make_results, standard_spec, standard_trials

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def agg(tmp_path_factory):
    from tests.ablations.report.extra import add_configs, add_diagnostics

    directory = make_results(tmp_path_factory.mktemp("fig") / "abl", standard_spec(3), trials=standard_trials())
    add_diagnostics(directory)
    add_configs(directory)
    return aggregate(load(directory), n_boot=200)


@pytest.mark.parametrize("name", ["resilience_heatmap", "learning_curves", "lr_sensitivity", "cost_bars",
                                  "performance_profile", "layer_diagnostics"])
def test_each_figure_is_a_png(agg, name, tmp_path):
    path = getattr(figures, name)(agg, tmp_path / "out" / f"{name}.png")
    assert path == tmp_path / "out" / f"{name}.png"
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_compare_figure(agg, tmp_path):
    path = figures.compare_resilience(agg, agg, ("a", "b"), tmp_path / "c.png")
    assert path.read_bytes().startswith(PNG)


def test_nothing_to_draw_gives_none(tmp_path):
    directory = make_results(tmp_path / "abl", standard_spec(2), metrics=False)
    agg = aggregate(load(directory), n_boot=0)
    assert figures.lr_sensitivity(agg, tmp_path / "lr.png") is None
    assert figures.learning_curves(agg, tmp_path / "curves.png") is None
    assert figures.layer_diagnostics(agg, tmp_path / "diag.png") is None
    assert not [p.name for p in tmp_path.glob("*.png")]


def test_figures_leave_pyplot_alone(agg, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    figures.resilience_heatmap(agg, tmp_path / "h.png")
    assert plt.get_fignums() == [] and matplotlib.get_backend() == backend


# ------------------------------------------------------------------------------------ what the figures show
def _capture(monkeypatch):
    """Keep the Figure objects that figures.py saves, to look at what they show."""
    drawn = []
    original = figures.save_figure

    def keep(figure, path):
        drawn.append(figure)
        return original(figure, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    return drawn


@pytest.fixture(scope="module")
def near_one(tmp_path_factory):
    """Accuracies close to 1 with a spread: an unclipped 95% t-band of the learning curves passes 1."""
    spec = {("baseline", "copy"): [1.0, 0.96, 0.995], ("v", "copy"): [0.99, 0.94, 1.0]}
    directory = make_results(tmp_path_factory.mktemp("one") / "abl", spec)
    return aggregate(load(directory), n_boot=0)


def test_learning_curve_bands_stay_inside_the_metrics_range(near_one):
    curves = read_curves(near_one.results)
    bands = figures.curve_bands(curves, "value", stats.metric_bounds("accuracy"))
    last = curves[curves["step"] == curves["step"].max()]
    unclipped = stats.t_interval(last[last["variant"] == "baseline"]["value"])
    assert unclipped[2] > 1.0  # the truth this test is about: without the clip the band would pass 1
    assert (bands["high"].dropna() <= 1.0).all() and (bands["low"].dropna() >= 0.0).all()
    assert (bands["high"] == 1.0).any()
    assert ((bands["low"] <= bands["mean"]) & (bands["mean"] <= bands["high"])).all()


def test_learning_curves_draw_the_training_loss_and_clipped_bands(near_one, tmp_path, monkeypatch):
    drawn = _capture(monkeypatch)
    assert figures.learning_curves(near_one, tmp_path / "c.png") is not None
    axes = drawn[0].axes
    labels = [ax.get_ylabel() for ax in axes]
    assert any(label.startswith("validation accuracy") for label in labels)
    assert any(label.startswith("training loss") for label in labels)
    top = next(ax for ax in axes if ax.get_ylabel().startswith("validation accuracy"))
    bands = [c for c in top.collections if len(c.get_paths())]
    assert bands  # one band per variant
    for band in bands:
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert ys.max() <= 1.0 + 1e-12 and ys.min() >= 0.0
    loss = next(ax for ax in axes if ax.get_ylabel().startswith("training loss"))
    assert loss.get_yscale() == "log" and len(loss.get_lines()) == 2  # both variants' training loss
    logged = np.concatenate([line.get_ydata() for line in loss.get_lines()])
    low, high = loss.get_ylim()  # the axis follows what was logged (x2 either side), however wide a band is
    assert low == pytest.approx(logged.min() / 2, rel=0.5) and high <= logged.max() * 2 * (1 + 1e-9)


def test_lr_ticks_are_few_and_compact(tmp_path, monkeypatch):
    from tests.ablations.fixtures.synthetic import trials_frame

    lrs = [4e-3, 6e-3, 9e-3, 2.7e-2]  # under a decade: matplotlib's default labels every minor tick
    trials = trials_frame({("baseline", "copy"): list(zip(lrs, [0.9, 0.91, 0.8, 0.5])),
                           ("v", "copy"): list(zip(lrs, [0.7, 0.8, 0.85, 0.86]))})
    spec = {("baseline", "copy"): [0.9, 0.91], ("v", "copy"): [0.85, 0.86]}
    agg = aggregate(load(make_results(tmp_path / "abl", spec, trials=trials)), n_boot=0)
    drawn = _capture(monkeypatch)
    assert figures.lr_sensitivity(agg, tmp_path / "lr.png") is not None
    panels = [ax for ax in drawn[0].axes if ax.get_visible() and ax.get_xscale() == "log"]
    assert len(panels) == 2  # one panel per variant: variants are kept apart
    drawn[0].canvas.draw()
    for ax in panels:
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(labels) <= 6 and all(len(text) <= 6 for text in labels)
        assert not [t for t in ax.get_xticklabels(minor=True) if t.get_text()]
    titles = [ax.get_title() for ax in panels]
    assert titles == ["baseline", "v"]


def test_layer_diagnostics_take_the_median_over_seeds(tmp_path, monkeypatch):
    from tests.ablations.report.extra import LAYERS, add_diagnostics

    spec = {("baseline", "copy"): [0.9, 0.91, 0.92], ("v", "copy"): [0.8, 0.81, 0.82]}
    directory = make_results(tmp_path / "abl", spec)
    spread = {0: 1.0, 1: 2.0, 2: 10.0}  # one seed far off: the median is 2, not the mean 4.33
    add_diagnostics(directory, lambda variant, seed, metric, step, layer, branch: spread[seed] * (layer + 1))
    agg = aggregate(load(directory), n_boot=0)
    drawn = _capture(monkeypatch)
    assert figures.layer_diagnostics(agg, tmp_path / "d.png") is not None
    axes = drawn[0].axes
    assert [ax.get_ylabel().split("\n")[0] for ax in axes] == ["branch contribution", "gradient norm of",
                                                              "token spread"]
    spread_axes = axes[2]
    solid = [line for line in spread_axes.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata())]
    assert len(solid) == 2
    for line in solid:
        assert list(line.get_xdata()) == list(range(LAYERS + 1))
        assert list(line.get_ydata()) == [2.0 * (layer + 1) for layer in range(LAYERS + 1)]


def test_trials_that_varied_more_than_the_rate_are_points_not_a_curve(tmp_path, monkeypatch):
    from tests.ablations.fixtures.synthetic import trials_frame

    lrs = [1e-4, 1e-3, 1e-2]
    trials = trials_frame({("baseline", "copy"): list(zip(lrs, [0.8, 0.9, 0.7]))})
    spec = {("baseline", "copy"): [0.9, 0.91]}
    for varied, expected in ((False, "-"), (True, "None")):
        if varied:
            trials = trials.assign(warmup_frac=[0.0, 0.1, 0.2])
        directory = make_results(tmp_path / str(varied) / "abl", spec, trials=trials)
        drawn = _capture(monkeypatch)
        figures.lr_sensitivity(aggregate(load(directory), n_boot=0), tmp_path / f"{varied}.png")
        ax = next(ax for ax in drawn[-1].axes if ax.get_visible())
        trial_line = next(line for line in ax.get_lines() if line.get_label() == "trial (ok)")
        assert trial_line.get_linestyle() == expected
        assert ("warmup" in drawn[-1].get_suptitle()) == varied
