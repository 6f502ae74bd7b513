"""ablations/store/export.py (`ablate export`): tidy runs, trials and diagnostics tables in parquet, csv and json
that read back to the same values, written atomically outside the results themselves."""

import pandas as pd
import pytest

from ablations.cli import main
from ablations.store.export import export, tables
from tests.reliability.helpers import TINY

GRID = ["task=copy", "~ablation.variants.no_residual", *TINY, "ablation.seeds=[0,1]"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    sweep = ["sweep=quick", "sweep.trials=2", "sweep.seeds=1", "trainer.diagnostics_every=10"]
    assert main(["run", "-q", *GRID, *sweep, f"out={folder / 'r'}"]) == 0
    return folder / "r"


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_every_format_reads_back_to_the_tables(results, tmp_path, fmt):
    written = export(results, fmt, tmp_path / fmt)
    assert sorted(p.name for p in written) == sorted(f"{n}.{fmt}" for n in ("runs", "trials", "diagnostics"))
    reader = {"parquet": pd.read_parquet, "csv": pd.read_csv, "json": lambda p: pd.read_json(p, orient="records")}[fmt]
    expected = tables(results)
    for name, frame in expected.items():
        back = reader(tmp_path / fmt / f"{name}.{fmt}")
        assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
        for column in ("variant", "task", "status", "score", "val_score", "value"):
            if column in frame:
                left, right = frame[column].reset_index(drop=True), back[column].reset_index(drop=True)
                if pd.api.types.is_numeric_dtype(left):
                    pd.testing.assert_series_equal(left.astype(float), right.astype(float), check_names=False)
                else:
                    assert list(left.astype(str)) == list(right.astype(str))


def test_the_diagnostics_table_is_one_row_per_observation_keyed_by_run(results):
    found = tables(results)
    diagnostics = found["diagnostics"]
    assert set(diagnostics["kind"]) == {"run", "trial"}
    runs = diagnostics[diagnostics["kind"] == "run"]
    assert set(map(tuple, runs[["variant", "seed"]].drop_duplicates().values)) == {("baseline", 0), ("post_norm", 0)}
    keys = ["kind", "variant", "task", "seed", "trial", "step", "layer", "branch", "head", "metric"]
    assert not diagnostics.duplicated(keys).any()
    assert len(found["trials"]) == 4 and len(found["runs"]) == 2


def test_export_writes_nothing_into_the_results_and_refuses_a_bad_format_in_one_line(results, capsys):
    before = sorted(p.relative_to(results) for p in results.rglob("*") if "export" not in p.parts)
    assert main(["export", str(results), "--to", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("export/runs.csv")
    assert sorted(p.relative_to(results) for p in results.rglob("*") if "export" not in p.parts) == before
    assert main(["export", str(results), "--to", "xlsx"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown export format 'xlsx'; valid: parquet, csv, json" in err and len(err.splitlines()) == 1
