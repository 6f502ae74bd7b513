"""The reporting toolkit: one document rendered to markdown and HTML, tables in every format, and the one
public module every report builds on."""

import ast
from pathlib import Path

import pandas as pd

import ablations.report
from ablations.report import toolkit
from ablations.report.toolkit import Document, markdown_table, num, signed, write_document, write_table

REPORT = Path(ablations.report.__file__).parent
#: the reports built on the toolkit (tuning.py, written alongside, still uses figures.py's older names)
REPORTS = ("ablation.py", "claim_figures.py", "claims.py", "compare.py", "cost.py", "figures.py", "search.py",
           "suite.py", "toolkit.py")


def test_reports_share_public_names_only():
    """No report module imports another one's private (underscore) names: what they share is public, most of
    it in the toolkit."""
    offenders = []
    for path in (REPORT / name for name in REPORTS):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ablations.report"):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_the_reports_build_on_the_toolkit():
    for name in ("ablation.py", "claim_figures.py", "compare.py", "figures.py", "suite.py"):
        imports = [node.module for node in ast.walk(ast.parse((REPORT / name).read_text()))
                   if isinstance(node, ast.ImportFrom)]
        assert "ablations.report.toolkit" in imports, name
    for name in toolkit.__all__:
        assert getattr(toolkit, name).__doc__ or name in ("CSS", "DPI"), name


def test_a_document_says_the_same_in_markdown_and_html(tmp_path):
    figure = tmp_path / "figures" / "f.png"
    figure.parent.mkdir()
    figure.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    doc = Document()
    doc.heading(1, "Title with `code`")
    doc.para("Some **bold** text.")
    doc.items(["one", "two *em*"])
    doc.table(pd.DataFrame({"a": ["x|y"], "b": [1]}).set_index("a"))
    doc.figure(figure, "A caption")
    md_path, html_path = write_document(doc, tmp_path, "doc", "T")
    md, html_text = md_path.read_text(), html_path.read_text()
    assert md.startswith("# Title with `code`") and "- two *em*" in md and "| x\\|y | 1 |" in md
    assert "![A caption](figures/f.png)" in md
    assert "<code>code</code>" in html_text and "<strong>bold</strong>" in html_text and "<em>em</em>" in html_text
    assert 'src="data:image/png;base64,' in html_text and "**" not in html_text


def test_tables_are_written_as_csv_and_tex(tmp_path):
    written = {}
    numeric = pd.DataFrame({"variant": ["a_b"], "value": [0.5]})
    write_table(tmp_path, "t", numeric, numeric.set_index("variant"), "caption & more", written)
    assert set(written) == {"t.csv", "t.tex"}
    assert pd.read_csv(tmp_path / "tables" / "t.csv").equals(numeric)
    tex = (tmp_path / "tables" / "t.tex").read_text()
    assert "a\\_b" in tex and "caption \\& more" in tex and "\\toprule" in tex


def test_numbers_as_text():
    assert num(-0.5) == "−0.500" and num(float("nan")) == "—" and num(None) == "—"
    assert num(-0.004, 2) == "0.00" and num(-0.005001, 2) == "−0.01"  # no sign that the shown digits cannot back
    assert signed(0.25, 2) == "+0.25" and signed(float("inf")) == "—"
    assert markdown_table(pd.DataFrame({"c": ["a\nb"]})).splitlines()[-1] == "| a b |"
