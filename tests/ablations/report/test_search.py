"""The searched range of a sweep, and the warning for a best learning rate at its edge."""

import json

import pytest
import yaml

from ablations.analyse.aggregate import aggregate, load
from ablations.config import conf_dir
from ablations.report.ablation import build_report
from ablations.report.search import EDGE_FRACTION, Range, edge_cells, edge_warnings, search_space
from tests.ablations.fixtures.synthetic import make_results, trials_frame

LOW, HIGH = 1e-4, 1e-2


def _at(position: float) -> float:
    """The learning rate at `position` of the log range [LOW, HIGH]."""
    return LOW * (HIGH / LOW) ** position


def _directory(tmp_path, best_positions: dict, *, sweep_section=True):
    """Each variant's trials peak at the learning rate at its position in [LOW, HIGH] (log scale)."""
    curves, spec = {}, {}
    for variant, position in best_positions.items():
        lrs = sorted({_at(p) for p in (0.0, 0.5, 1.0, position)})
        curves[(variant, "copy")] = [(lr, 0.9 if lr == _at(position) else 0.6) for lr in lrs]
        spec[(variant, "copy")] = [0.9, 0.91]
    directory = make_results(tmp_path / "abl", spec, trials=trials_frame(curves))
    if sweep_section:
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["sweep"] = {"name": "test", "space": {"lr": {"low": LOW, "high": HIGH, "log": True}}}
        (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_the_edge_warning_fires_at_the_edge_and_not_in_the_middle(tmp_path):
    positions = {"baseline": 0.5, "low_edge": 0.0, "high_edge": 1.0, "inside_low": EDGE_FRACTION / 2,
                 "just_out": EDGE_FRACTION + 0.05, "middle": 0.45}
    agg = aggregate(load(_directory(tmp_path, positions)), n_boot=0)
    space = search_space(agg.results)
    assert space["lr"] == Range(LOW, HIGH, True, "manifest.json")
    edges = edge_cells(agg.optimisability, space["lr"]).set_index("variant")
    assert set(edges.index) == {"low_edge", "high_edge", "inside_low"}
    assert edges.loc["low_edge", "edge"] == "low" and edges.loc["high_edge", "edge"] == "high"
    assert edges.loc["inside_low", "position"] == pytest.approx(EDGE_FRACTION / 2)
    lines = edge_warnings(edges.reset_index(), space["lr"])
    assert len(lines) == 3 and all(line.startswith("⚠ **") for line in lines)
    assert any("**high_edge** on copy" in line and "upper edge" in line and "sweep.space.lr.high" in line
               for line in lines)


def test_the_report_says_it_one_line_per_cell(tmp_path):
    report = build_report(_directory(tmp_path, {"baseline": 0.5, "v": 1.0}))
    md = report["report_md"].read_text()
    assert md.count("⚠ **v** on copy: the best learning rate") == 1
    assert "⚠ **baseline** on copy" not in md
    assert "In 1 of 2 tuned cells the best learning rate sits at the edge" in md
    assert "(read from manifest.json)" in md


def test_the_range_comes_from_the_named_sweep_profile(tmp_path):
    directory = _directory(tmp_path, {"baseline": 0.5}, sweep_section=False)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["ablation"]["sweep"] = "claims"
    manifest["overrides"] = ["sweep.space.lr.high=0.05"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    lr = search_space(load(directory))["lr"]
    profile = yaml.safe_load((conf_dir() / "sweep" / "claims.yaml").read_text())["space"]["lr"]
    assert (lr.low, lr.high, lr.log) == (profile["low"], 0.05, profile["log"]) and "`claims`" in lr.source


def test_without_a_recorded_space_the_range_tried_stands_in(tmp_path):
    lr = search_space(load(_directory(tmp_path, {"baseline": 0.5}, sweep_section=False)))["lr"]
    assert (lr.low, lr.high) == pytest.approx((LOW, HIGH)) and "tried" in lr.source
