"""`ablate report DIR --compare OTHER`: a comparison report of its own, with the setup's difference, that never
touches DIR's own report."""

import pandas as pd
import pytest

from ablations.report.ablation import build_report
from ablations.report.compare import flatten, labels, slug
from tests.ablations.fixtures.synthetic import make_results, standard_spec
from tests.ablations.report.extra import add_configs


def _snapshot(directory):
    """Every file of DIR's own report, byte for byte."""
    names = ["report.md", "report.html", *(f"figures/{p.name}" for p in (directory / "figures").glob("*.png")),
             *(f"tables/{p.name}" for p in (directory / "tables").iterdir())]
    return {name: (directory / name).read_bytes() for name in names}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    mine = make_results(root / "shallow" / "abl", standard_spec(3))
    add_configs(mine, model={"n_layers": 2})
    spec = standard_spec(3)
    spec[("no_residual", "copy")] = [0.85, 0.86, 0.87]  # deeper model: removing residuals hurts less on copy
    other = make_results(root / "deep" / "abl", spec, overrides=["trainer.max_steps=80"])
    add_configs(other, model={"n_layers": 6})
    before = build_report(mine)
    snapshot = _snapshot(mine)
    return mine, other, before, snapshot, build_report(mine, compare=other)


def test_compare_leaves_the_directorys_own_report_byte_identical(pair):
    mine, _, _, snapshot, report = pair
    assert {name: (mine / name).read_bytes() for name in snapshot} == snapshot
    assert report["report_md"] != mine / "report.md" and report["report_html"] != mine / "report.html"


def test_compare_writes_a_report_of_its_own(pair):
    mine, other, _, _, report = pair
    names = labels(mine, other)
    assert names == ("shallow/abl", "deep/abl")
    stem = f"compare-{slug(names[1])}"
    assert report["report_md"] == mine / f"{stem}.md" and report["report_html"] == mine / f"{stem}.html"
    assert report["figures"]["compare_resilience"] == mine / "figures" / f"{stem}.png"
    md = report["report_md"].read_text()
    assert "## What differs in the setup" in md and "## Resilience" in md and "[report.md](report.md)" in md
    html_text = report["report_html"].read_text()
    assert "data:image/png;base64," in html_text and "<table>" in html_text
    table = pd.read_csv(mine / "tables" / f"{stem}.csv").set_index("variant")
    mine_res = report["aggregate"].resilience.set_index("variant")["resilience"]
    theirs_res = report["compare"].resilience.set_index("variant")["resilience"]
    assert table.loc["no_residual", f"resilience {names[0]}"] == pytest.approx(mine_res["no_residual"])
    assert table.loc["no_residual", f"resilience {names[1]}"] == pytest.approx(theirs_res["no_residual"])
    cells = pd.read_csv(mine / "tables" / f"{stem}-cells.csv")
    assert len(cells) == 8 and {f"verdict {names[0]}", f"verdict {names[1]}"} <= set(cells.columns)
    line = [f for f in report["findings"] if f.startswith(f"**{names[0]} vs {names[1]}**")]
    assert len(line) == 1 and "no_residual" in line[0]


def test_the_config_difference_comes_from_the_manifests_and_the_runs(pair):
    _, _, _, _, report = pair
    names = report["labels"]
    setup = report["setup_difference"].set_index("setting")
    assert setup.loc["command line: trainer.max_steps", names[0]] == "(not set)"
    assert setup.loc["command line: trainer.max_steps", names[1]] == "80"
    assert "created" not in setup.index and "ablation.name" not in setup.index  # same, or not a setting
    runs = report["run_difference"].set_index("setting")
    assert runs.loc["model.n_layers", names[0]] == "2" and runs.loc["model.n_layers", names[1]] == "6"
    assert runs.loc["model.n_layers", "variants"] == "every shared variant"
    assert "model.d_model" not in runs.index  # the same in both
    md = report["report_md"].read_text()
    assert "| model.n_layers | every shared variant | 2 | 6 |" in md


def test_a_plain_report_after_a_compare_keeps_the_compare_report(tmp_path):
    mine = make_results(tmp_path / "a" / "abl", standard_spec(2))
    other = make_results(tmp_path / "b" / "abl", standard_spec(2))
    compared = build_report(mine, compare=other)
    assert not (mine / "report.md").exists()  # a comparison writes no report.md of its own
    rebuilt = build_report(mine)
    assert compared["report_md"].exists() and compared["figures"]["compare_resilience"].exists()
    assert "## Comparison" not in rebuilt["report_md"].read_text()


def test_a_plain_report_removes_what_older_versions_wrote_for_a_comparison(tmp_path):
    directory = make_results(tmp_path / "abl", standard_spec(2))
    for stale in ("figures/compare_resilience.png", "tables/compare.csv", "tables/compare_cells.tex"):
        (directory / stale).parent.mkdir(exist_ok=True)
        (directory / stale).write_bytes(b"old")
    build_report(directory)
    assert not (directory / "figures" / "compare_resilience.png").exists()
    assert not (directory / "tables" / "compare.csv").exists()


def test_flatten_and_slug():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}) == {"a.b": "1", "a.c": "1, 2", "d": "null",
                                                                        "e": "{}"}
    assert slug("deep/default") == "deep-default" and slug("///") == "other"


def test_runs_recorded_before_the_model_fields_moved_into_options_differ_only_where_the_runs_did(tmp_path):
    # result.json before #19 recorded `window`, `n_features` and `memory_size` at the model's top level
    import json

    from ablations.analyse.aggregate import load
    from ablations.report.compare import run_config_difference
    from models.config import ModelConfig

    old = make_results(tmp_path / "old" / "abl", standard_spec(2))
    new = make_results(tmp_path / "new" / "abl", standard_spec(2))
    add_configs(old, model={"attention": "local"})
    add_configs(new, model={"attention": "local"})
    for result_path in old.rglob("result.json"):
        result = json.loads(result_path.read_text())
        if "config" in result:
            model = {k: v for k, v in result["config"]["model"].items() if k != "options"}
            result["config"]["model"] = {**model, "window": 16, "n_features": 64, "memory_size": 8}
            result_path.write_text(json.dumps(result))
    models = [json.loads(p.read_text())["config"]["model"] for p in new.rglob("result.json")
              if "config" in json.loads(p.read_text())]
    assert models and all(m["options"] == {"local": {"window": 16}} for m in models)  # the new shape: its option
    assert ModelConfig.from_dict(models[0]).hash_form()["window"] == 16
    difference = run_config_difference(load(old), load(new), ("old", "new"))
    assert difference.empty, difference
