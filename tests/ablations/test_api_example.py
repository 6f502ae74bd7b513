"""The README's notebook example of `ablations.api` runs as written and gives what it says."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("### From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    runs = namespace["runs"]
    assert len(runs) == 6 and set(runs["variant"]) == {"baseline", "post_norm", "no_residual"}
    assert namespace["row"]["variant"] and (tmp_path / "results" / "one" / "result.json").is_file()
    assert (tmp_path / "results" / "notebook" / "report.md").is_file()
    assert namespace["api"].load("results/notebook").equals(runs)
    printed = capsys.readouterr().out
    assert "mean" in printed and "report.md" in printed
