"""ablations/store/directory.py: the results directory's layout and its one policy for damaged files."""

import json

import pytest

from ablations.store.directory import TRIAL_COLUMNS, ResultsDir
from models.errors import ConfigError


def test_the_layout_is_built_in_one_place(tmp_path):
    results = ResultsDir(tmp_path / "res")
    assert results.run_dir("baseline", "copy", 3) == tmp_path / "res" / "runs" / "baseline" / "copy" / "s3"
    assert results.trial_dir("post_norm", "sort", 0) == tmp_path / "res" / "trials" / "post_norm" / "sort" / "t0"
    assert results.relative(results.run_dir("baseline", "copy", 3)) == "runs/baseline/copy/s3"
    assert results.relative(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")  # outside: kept as given
    assert results.part("depth").path == tmp_path / "res" / "depth"


def test_a_missing_manifest_is_none_and_a_corrupted_one_is_one_line_naming_its_line(tmp_path):
    results = ResultsDir(tmp_path)
    assert results.manifest() is None and not results.is_suite()
    results.manifest_json.write_text('{"ablation": {"name": "x",\n "parts": ')
    with pytest.raises(ConfigError, match=r"corrupted manifest .*manifest\.json, line 2"):
        results.manifest()
    results.manifest_json.write_text(json.dumps({"ablation": {"name": "claims", "parts": {"depth": {}}}}))
    assert results.is_suite()


def test_tables_round_trip_with_their_schemas(tmp_path):
    results = ResultsDir(tmp_path)
    assert results.read_trials_raw() is None
    results.write_trials([{"ablation": "a", "variant": "v", "task": "copy", "trial": 0, "status": "ok",
                           "lr": 1e-3, "val_score": 0.5}])
    trials = results.read_trials_raw()
    assert list(trials.columns) == TRIAL_COLUMNS and trials["trial"].tolist() == [0]
    results.trials_csv.write_text(results.trials_csv.read_text() + "a,b\n")
    with pytest.raises(ConfigError, match=r"trials\.csv, line 3: expected"):
        results.read_trials_raw()
