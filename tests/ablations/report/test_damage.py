"""The report's "Damage tolerance" section and figure, from a synthetic damage.csv (fast: no model is built)."""

import pandas as pd
import pytest

from ablations.analyse import damage as analysis
from ablations.analyse.aggregate import normalise
from ablations.report import damage as section
from ablations.report.ablation import build_report
from ablations.report.toolkit import Document
from tests.ablations.fixtures.synthetic import make_results, scores


def _rows(variant, task, seed, *, chance, intact, higher, layer_scores, head_scores, noise, int8):
    base = {"variant": variant, "task": task, "seed": seed, "metric": "accuracy" if higher else "bits_per_char",
            "higher_is_better": higher, "chance": chance, "intact": intact,
            "run_dir": f"runs/{variant}/{task}/s{seed}"}
    rows = []
    for layer, value in enumerate(layer_scores):
        rows.append({**base, "damage": "layer", "target": f"layer {layer}", "layer": layer, "score": value})
    for layer, heads in enumerate(head_scores):
        for head, value in enumerate(heads):
            rows.append({**base, "damage": "head", "target": f"layer {layer} head {head}", "layer": layer,
                         "head": head, "score": value})
    for scale, values in noise.items():
        for draw, value in enumerate(values):
            rows.append({**base, "damage": "noise", "target": f"noise {scale:g}", "scale": scale, "draw": draw,
                         "score": value})
    rows.append({**base, "damage": "int8", "target": "int8", "score": int8})
    for row in rows:
        row["retained"] = normalise(row["score"], chance, intact, higher)
    return rows


def _frame():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        rows += _rows("baseline", "copy", seed, chance=0.1, intact=0.9, higher=True,
                      layer_scores=[0.1 + shift, 0.8], head_scores=[[0.9, 0.5], [0.7, 0.9]],
                      noise={0.01: [0.9, 0.9], 0.3: [0.3, 0.5]}, int8=0.9)
        rows += _rows("no_residual", "copy", seed, chance=0.1, intact=0.7, higher=True,
                      layer_scores=[0.1, 0.1], head_scores=[[0.7, 0.1], [0.4, 0.7]],
                      noise={0.01: [0.7, 0.7], 0.3: [0.1, 0.1]}, int8=0.7)
        rows += _rows("baseline", "char_lm", seed, chance=6.0, intact=2.0, higher=False,
                      layer_scores=[4.0, 2.0], head_scores=[[2.0, 3.0], [2.0, 2.0]],
                      noise={0.01: [2.0, 2.0], 0.3: [5.0, 6.0]}, int8=2.0)
    # a run that did not learn (intact barely above chance): its ratios are noise and are left out
    rows += _rows("no_residual", "char_lm", 0, chance=6.0, intact=5.95, higher=False,
                  layer_scores=[5.9, 6.0], head_scores=[[5.9, 6.0], [6.0, 6.0]],
                  noise={0.01: [6.0, 5.9], 0.3: [6.0, 6.0]}, int8=6.0)
    frame = pd.DataFrame(rows).reindex(columns=analysis.COLUMNS)
    for column in ("layer", "head", "draw"):
        frame[column] = frame[column].astype("Int64")
    return frame


def test_summary_averages_seeds_and_draws_and_keeps_the_worst_head():
    table = section.summary(_frame()).set_index(["variant", "task", "label"])["retained"]
    assert table[("baseline", "copy", "layer 0")] == pytest.approx(((0.0) + (0.02 / 0.8)) / 2)
    assert table[("baseline", "copy", "layer 1")] == pytest.approx(0.7 / 0.8)
    assert table[("baseline", "copy", "head (worst)")] == pytest.approx(0.4 / 0.8)
    assert table[("baseline", "copy", "head (mean)")] == pytest.approx((1 + 0.5 + 0.75 + 1) / 4)
    assert table[("baseline", "copy", "noise 0.3")] == pytest.approx((0.2 / 0.8 + 0.4 / 0.8) / 2)
    assert table[("baseline", "char_lm", "layer 0")] == pytest.approx(0.5)  # lower is better: (6-4)/(6-2)
    assert table[("baseline", "char_lm", "noise 0.3")] == pytest.approx((0.25 + 0.0) / 2)
    assert ("no_residual", "char_lm", "layer 0") not in table.index  # did not learn


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    spec = {("baseline", "copy"): scores(0.9, 0.01, 2, 1), ("no_residual", "copy"): scores(0.7, 0.01, 2, 2),
            ("baseline", "char_lm"): scores(2.0, 0.03, 2, 3), ("no_residual", "char_lm"): scores(2.6, 0.03, 2, 4)}
    directory = make_results(tmp_path_factory.mktemp("dmg") / "abl", spec)
    analysis.write(directory, _frame())
    return directory, build_report(directory)


def test_the_report_gains_a_damage_tolerance_section_per_variant(reported):
    directory, built = reported
    assert built["errors"] == []
    text = built["report_md"].read_text()
    part = text[text.index("## Damage tolerance"):text.index("## Methods")]
    assert "### `baseline`" in part and "### `no_residual`" in part
    assert part.index("### `baseline`") < part.index("### `no_residual`")
    assert "arXiv:2403.17887" in part and "arXiv:2407.09298" in part and "arXiv:1905.10650" in part
    assert "1 of 7 runs are left out" in part
    baseline = part[part.index("### `baseline`"):part.index("### `no_residual`")]
    assert "| layer 1 | 0.88 |" in baseline.replace("  ", " ")  # copy column: 0.7 / 0.8
    assert "Least tolerated: layer 0 on copy" in baseline
    assert (directory / "figures" / "damage.png").read_bytes().startswith(b"\x89PNG")
    assert built["figures"]["damage"] == directory / "figures" / "damage.png"
    assert "Damage tolerance" in built["report_html"].read_text()
    assert (directory / "tables" / "damage.csv").is_file()


def test_without_damage_csv_there_is_no_section_and_no_stale_figure(reported):
    directory, _ = reported
    (directory / analysis.FILE).unlink()
    doc = Document()
    assert section.section(doc, directory, "baseline", {}) is None
    assert doc.blocks == []
    assert not (directory / "figures" / "damage.png").exists()
    assert not (directory / "tables" / "damage.csv").exists()


def test_a_damaged_damage_csv_is_one_line_naming_it(tmp_path):
    from models.errors import ConfigError

    (tmp_path / analysis.FILE).write_text("variant,task\nbaseline\n")
    with pytest.raises(ConfigError, match="damage.csv is not a damage table"):
        analysis.read(tmp_path)
    (tmp_path / analysis.FILE).write_bytes(b"variant,task\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match="damage.csv is corrupted"):
        analysis.read(tmp_path)
