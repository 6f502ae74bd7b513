"""Each figure is a PNG written atomically, and nothing is drawn where there is nothing to show."""

import pytest

from ablations.report import figures
from ablations.analyse.aggregate import aggregate, load
from tests.ablations.fixtures.synthetic import make_results, standard_spec, standard_trials

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def agg(tmp_path_factory):
    directory = make_results(tmp_path_factory.mktemp("fig") / "abl", standard_spec(3), trials=standard_trials())
    return aggregate(load(directory), n_boot=200)


@pytest.mark.parametrize("name", ["resilience_heatmap", "learning_curves", "lr_sensitivity", "cost_bars",
                                  "performance_profile"])
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
    assert not (tmp_path / "lr.png").exists() and not (tmp_path / "curves.png").exists()


def test_figures_leave_pyplot_alone(agg, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    figures.resilience_heatmap(agg, tmp_path / "h.png")
    assert plt.get_fignums() == [] and matplotlib.get_backend() == backend
