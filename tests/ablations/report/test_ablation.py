"""report.md, the self-contained report.html, figures/ and tables/ from a results directory."""

import re

import pandas as pd
import pytest

from ablations.report.ablation import build_report, write_report
from ablations.report.toolkit import latex_escape
from tests.ablations.fixtures.synthetic import make_results, standard_spec, standard_trials
from tests.ablations.report.extra import add_configs, add_diagnostics

FIGURES = ["resilience_heatmap", "learning_curves", "layer_diagnostics", "lr_sensitivity", "tuning_curves", "cost",
           "performance_profile"]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    directory = make_results(tmp_path_factory.mktemp("rep") / "abl", standard_spec(4), trials=standard_trials())
    add_diagnostics(directory)
    add_configs(directory)
    return directory, build_report(directory)


def _img_sources(text: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", text)


def test_every_figure_and_table_is_written(full):
    directory, report = full
    assert report["errors"] == []
    for name in FIGURES:
        assert (directory / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert report["figures"][name] == directory / "figures" / f"{name}.png"
    for name in ("summary", "resilience", "cost", "aggregates", "optimisability"):
        assert (directory / "tables" / f"{name}.csv").exists() and (directory / "tables" / f"{name}.tex").exists()
    summary = pd.read_csv(directory / "tables" / "summary.csv")
    assert {"n_ok", "n_diverged", "n_pruned", "n_failed", "mean", "ci_low", "ci_high", "delta", "p_value",
            "p_holm", "norm_mean", "verdict"} <= set(summary.columns)
    assert len(summary) == 8
    resilience = pd.read_csv(directory / "tables" / "resilience.csv")
    assert {"variant", "resilience", "ci_low", "ci_high", "norm_copy", "verdict_char_lm"} <= set(resilience.columns)
    tex = (directory / "tables" / "summary.tex").read_text()
    assert "\\begin{tabular}" in tex and "no\\_residual" in tex and "\\bottomrule" in tex
    assert not any(ch in tex for ch in "▲▼✗±−")
    assert not list(directory.rglob("*.tmp"))


def test_html_is_self_contained(full):
    directory, report = full
    text = report["report_html"].read_text()
    sources = _img_sources(text)
    assert len(sources) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert "<link" not in text and "<script" not in text and "http://" not in text and "https://" not in text
    assert "no_residual" in text and "<table>" in text


def test_findings_are_computed_from_the_data(full):
    directory, report = full
    found = "\n".join(report["findings"])
    assert re.search(r"\*\*no_residual\*\*: worse on copy \(−0\.300 accuracy, p[=<][0-9.]+ Holm\), "
                     r"char_lm \(\+0\.600 bits per char, p[=<][0-9.]+ Holm\)", found)
    assert "**dead**: broken on copy" in found and "char_lm (normalised 0.00, 4/4 runs diverged/failed)" in found
    assert re.search(r"\*\*same\*\*: equivalent within ±0\.05 on copy \(Δ \+0\.000 normalised, 90% CI "
                     r"\[−0\.0\d\d, \+0\.0\d\d\]\)", found)
    assert "no significant change" not in found
    assert "Decisive cells (better, worse, equivalent or broken): 6 of 6 non-baseline cells (100%)" in found
    assert re.search(r"\*\*no_residual\*\*.*resilience 0\.\d\d \[0\.\d\d, 0\.\d\d\]", found)
    # most affected first
    assert found.index("**dead**") < found.index("**no_residual**") < found.index("**same**")
    md = report["report_md"].read_text()
    assert md.index("## Findings") < md.index("## Resilience") < md.index("## Methods")
    for statement in ("Welch", "Holm", "Student-t", "bootstrap", "counts as the task's chance level", "TOST",
                      "90% Welch interval", "margin ±0.05", "Not significant is not no effect", "rliable",
                      "interquartile mean", "noncentral t", "feasible range"):
        assert statement in md
    assert md.index("## Aggregates across tasks") < md.index("## Methods")
    assert "(figures/performance_profile.png)" in md
    assert "![" in md and "(figures/resilience_heatmap.png)" in md


def test_provenance_comes_from_the_manifest(full):
    directory, report = full
    md = report["report_md"].read_text()
    assert "`ablate run ablation=abl`" in md and "`cafe1234`" in md and "Test CPU" in md
    assert "Seeds: 0, 1, 2, 3" in md
    assert "Total compute: 1 min 20 s (80 s) over 32 runs" in md


def test_without_trials_or_manifest(tmp_path):
    directory = make_results(tmp_path / "abl", standard_spec(2), manifest=False)
    report = build_report(directory)
    assert report["errors"] == [] and "lr_sensitivity" not in report["figures"]
    assert set(report["figures"]) == {"resilience_heatmap", "learning_curves", "cost", "performance_profile"}
    assert "No per-layer diagnostics" in report["report_md"].read_text()  # said, not silently left out
    md = report["report_md"].read_text()
    assert "Optimisability" not in md and "not recorded (no manifest.json)" in md
    assert "versions" not in md.lower() or "suite 0.1.0" in md  # versions fall back to a run's result.json


def test_a_directory_of_only_diverged_runs_still_gets_a_report(tmp_path):
    spec = {("baseline", "copy"): ["diverged"] * 2, ("v", "copy"): ["diverged", "failed"]}
    directory = make_results(tmp_path / "abl", spec)
    report = build_report(directory)
    assert report["errors"] == []
    cells = report["aggregate"].cells.set_index("variant")
    assert set(cells["verdict"]) == {"broken"}
    assert all(src.startswith("data:") for src in _img_sources(report["report_html"].read_text()))
    assert "no better than chance" in report["report_md"].read_text()


def test_an_empty_directory_gets_a_report(tmp_path):
    report = build_report(tmp_path)
    assert report["report_html"].exists() and "No runs" in report["report_md"].read_text()


def test_every_report_has_the_per_layer_diagnostics(full):
    directory, report = full
    assert "layer_diagnostics" in report["figures"]
    md = report["report_md"].read_text()
    assert "### Inside the layers" in md and "(figures/layer_diagnostics.png)" in md


def test_cost_is_flops_and_parameters_and_throughput_only_with_its_spread(full):
    directory, report = full
    md = report["report_md"].read_text()
    section = md[md.index("### Cost"):md.index("## Methods")]
    assert "training FLOPs per run" in section and "parameters" in section
    assert re.search(r"\| 915 \[900–930\] over 4 runs \|", section)  # tokens/s: the median [range] over runs
    assert not re.search(r"\d×", section)  # and never a ratio
    cost = pd.read_csv(directory / "tables" / "cost.csv")
    copy = cost[cost["task"] == "copy"]
    assert copy["flops"].notna().all() and (copy["flops"] > 0).all()
    assert {"tps_median", "tps_min", "tps_max"} <= set(cost.columns)


def test_a_cell_whose_best_rate_sits_at_the_edge_is_flagged_in_the_text(full):
    _, report = full
    md = report["report_md"].read_text()
    # standard_trials: no search space recorded, so the range tried (1e-4 .. 3e-2); every best trial is at 1e-3
    assert "No cell's best learning rate sits at the edge of the searched range." in md
    assert "the range the trials tried" in md
    assert report["lr_edges"].empty


def test_write_report_keeps_the_old_entry_point(tmp_path):
    directory = make_results(tmp_path / "abl", {("baseline", "copy"): [0.9], ("no_residual", "copy"): [0.5]},
                             manifest=False)
    path = write_report(directory, ablation="abl", description="desc", baseline="baseline", command="ablate run x")
    assert path == directory / "report.md"
    text = path.read_text()
    assert "| baseline |" in text and "| no_residual |" in text and "copy (accuracy)" in text
    assert "· untested" in text and "every cell is `untested`" in text
    assert "`ablate run x`" in text and "desc" in text


def test_latex_escaping():
    assert latex_escape("a_b & 50% ▼") == r"a\_b \& 50\% $\blacktriangledown$"


def test_the_margin_is_stated_and_follows_report_margin(tmp_path):
    base = [0.9, 0.91, 0.89, 0.9]
    spec = {("baseline", "copy"): base, ("v", "copy"): [x - 0.04 for x in base]}
    plain = build_report(make_results(tmp_path / "a", spec))
    assert "margin of **±0.05**" in plain["report_md"].read_text()
    assert plain["aggregate"].cells.set_index("variant").loc["v", "verdict"] == "worse"
    wide = build_report(make_results(tmp_path / "b", spec, overrides=["report.margin=0.1"]))
    md = wide["report_md"].read_text()
    assert "margin of **±0.1**" in md and "margin ±0.1 in normalised units" in md
    assert "**v**: equivalent within ±0.1 on copy" in md and "significant difference" in md


def test_inconclusive_cells_say_how_many_seeds_would_decide_them(tmp_path):
    spec = {("baseline", "copy"): [0.9, 0.8, 0.85], ("v", "copy"): [0.8, 0.9, 0.7]}
    report = build_report(make_results(tmp_path / "a", spec))
    cell = report["aggregate"].cells.set_index("variant").loc["v"]
    assert cell["verdict"] == "inconclusive" and cell["seeds_to_decide"] > 3
    assert f"about {cell['seeds_to_decide']} seeds per side would decide it" in "\n".join(report["findings"])
    assert f"| ? inconclusive | ≈ {cell['seeds_to_decide']} |" in report["report_md"].read_text()


def test_html_renders_the_markdown_through_one_parser(full):
    _, report = full
    text = report["report_html"].read_text()
    assert "<strong>no_residual</strong>" in text and "<code>baseline</code>" in text
    assert "**" not in text and "`" not in text


def test_tuning_trials_that_ended_in_errors_and_finals_on_defaults_are_named():
    from types import SimpleNamespace

    import pandas as pd

    from ablations.report.ablation import trial_error_lines

    trials = pd.DataFrame({"variant": ["a", "a", "b"], "task": ["copy"] * 3, "trial": [0, 1, 0],
                           "status": ["failed", "failed", "ok"], "val_score": [None, None, 0.9],
                           "error": ["no validation score was recorded (val/accuracy ...)", "boom", ""]})
    runs = pd.DataFrame({"variant": ["a", "b"], "task": ["copy", "copy"], "tuned_params": ["", '{"lr": 0.01}']})
    lines = trial_error_lines(SimpleNamespace(results=SimpleNamespace(trials=trials), runs=runs))
    assert len(lines) == 2
    assert lines[0].startswith("⚠ 2/2 tuning trials of a × copy ended failed with an error") and "trial 0" in lines[0]
    assert "a × copy had a validation score" in lines[1] and "default hyper-parameters" in lines[1]
    assert trial_error_lines(SimpleNamespace(results=SimpleNamespace(trials=None), runs=runs)) == []


def test_a_sequential_verdict_names_its_look_and_the_alpha_it_was_tested_at():
    import pandas as pd

    from ablations.report.ablation import _norm_interval

    row = pd.Series({"norm_delta": 0.01, "norm_delta_low": -0.02, "norm_delta_high": 0.03, "sequential_look": 2,
                     "sequential_seeds": 5, "sequential_alpha": 0.0116, "norm_delta_level": 1 - 2 * 0.0116})
    # the interval is the look's: 1 - 2 alpha_k = 97.7%, the one TOST at the look's alpha read
    assert _norm_interval(row) == ("Δ +0.010 normalised, 97.7% CI [−0.020, +0.030]; look 2, 5 seeds per side, "
                                   "tested at α = 0.0116 (Methods)")
    fixed = row.drop(["sequential_look", "sequential_seeds", "sequential_alpha", "norm_delta_level"])
    assert _norm_interval(fixed) == "Δ +0.010 normalised, 90% CI [−0.020, +0.030]"
