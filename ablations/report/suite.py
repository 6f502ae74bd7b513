"""The combined report of an ablation with parts (see `grid.Suite`): the claims report, or an index of the parts.

Each part keeps its own report in `<out>/<part>/report.md`; this page sits above them in `<out>/` (claims.md and
claims.html for `report: claims`, else report.md and report.html listing the parts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ablations.report.ablation import build_report
from ablations.report.toolkit import Document, duration, num, write_document
from ablations.store.directory import ResultsDir

VERDICT_MARKS = {"supported": "✔ supported", "not supported": "✘ not supported", "inconclusive": "? inconclusive"}


def is_suite(directory: Path) -> bool:
    """Whether a results directory holds an ablation with parts (its manifest's ablation has `parts`)."""
    return ResultsDir(directory).is_suite()


def _format(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [num(v) if np.isfinite(v) else "n/a" for v in out[column]]
    return out.astype(str)


def _part_rows(directory: Path, spec: dict) -> pd.DataFrame:
    rows = []
    for name, part in spec["parts"].items():
        runs_csv = directory / name / "runs.csv"
        runs = pd.read_csv(runs_csv) if runs_csv.is_file() else pd.DataFrame(columns=["status", "wall_seconds"])
        rows.append({"part": f"[{name}]({name}/report.md)", "variants": len(part["variants"]),
                     "tasks": ", ".join(part["tasks"]), "runs": len(runs),
                     "diverged or failed": int(runs["status"].isin(["diverged", "failed"]).sum()),
                     "run time": duration(float(pd.to_numeric(runs["wall_seconds"], errors="coerce").sum()))
                     if len(runs) else "n/a",
                     "sweep": part.get("sweep") or "none", "what it varies": part.get("description", "")})
    return pd.DataFrame(rows)


def build_suite_report(directory: Path, *, rebuild_parts: bool = False) -> dict:
    """Write the page above the parts (claims.md/.html for `report: claims`, else report.md/.html listing the
    parts), after rebuilding each part's own report when `rebuild_parts`; returns report_md, report_html and
    errors (figures of the parts that could not be drawn)."""
    directory = Path(directory)
    manifest = ResultsDir(directory).manifest() or {}
    spec = manifest.get("ablation") or {}
    errors: list[str] = []
    if rebuild_parts:
        for name in spec.get("parts", {}):
            if (directory / name / "runs.csv").is_file():
                errors += build_report(directory / name)["errors"]
    doc = Document()
    if spec.get("report") == "claims":
        title = f"Claims report: {spec.get('name', directory.name)}"
        _claims(doc, directory, title, manifest, errors)
        stem = "claims"
    else:
        title = f"Ablation {spec.get('name', directory.name)}"
        doc.heading(1, title)
        doc.para(spec.get("description", ""))
        doc.table(_part_rows(directory, spec))
        stem = "report"
    md_path, html_path = write_document(doc, directory, stem, title)
    return {"report_md": md_path, "report_html": html_path, "errors": errors}


def _claims(doc: Document, directory: Path, title: str, manifest: dict, errors: list[str]) -> None:
    from ablations.report.claims import evaluate

    results = evaluate(directory)
    spec = manifest.get("ablation") or {}
    doc.heading(1, title)
    description = str(spec.get("description", "")).strip()
    description += "" if not description or description.endswith(".") else "."
    doc.para(f"{description} Made by `{manifest.get('command', 'ablate run ablation=claims')}`; "
             f"every number below comes from the runs in this directory, and every verdict from the rule printed "
             f"beside it (`ablations/report/claims.py`).")
    from ablations.report.claims import run_time

    took = run_time(directory)
    wall = (f"{duration(took['wall'])} of wall-clock time" if took["wall"] else
            "an unknown wall-clock time (the run directories no longer carry their own timestamps)")
    if (took.get("commands") or 1) > 1:
        wall += f" over {took['commands']} `ablate run` commands (each later one resumed it)"
    doc.para(f"The run took {wall}; its runs and tuning trials together ran for {duration(took['compute'])}.")
    doc.heading(2, "Verdicts")
    doc.table(pd.DataFrame([{"claim": f"{c.number}. {c.title}", "verdict": VERDICT_MARKS[v.verdict],
                             "evidence": v.summary} for c, v in results]))
    for item, verdict in results:
        doc.heading(2, f"Claim {item.number}: {item.title}")
        doc.para(f"*Claim:* {item.statement}")
        if getattr(item, "source", ""):
            doc.para(f"*Source:* {item.source}")
        doc.para(f"*Rule:* {item.rule}")
        doc.para(f"*Verdict:* **{verdict.verdict}**. {verdict.summary}")
        for path, caption in verdict.figures:
            doc.figure(path, caption)
        for caption, table in verdict.tables:
            doc.para(f"*{caption}*")
            doc.table(_format(table))
        if verdict.caveats:
            doc.para("*Caveats:*")
            doc.items(verdict.caveats)
    doc.heading(2, "The parts")
    doc.para("Each part is an ablation of its own, with its own report (per-cell statistics, figures, every run).")
    doc.table(_part_rows(directory, spec))
    hardware = manifest.get("hardware") or {}
    versions = manifest.get("versions") or {}
    doc.heading(2, "Scale and caveats common to every claim")
    doc.items([
        "Models are tiny (width 64, at most 8 layers) and budgets short (hundreds of steps), so that the whole "
        "ablation runs on a laptop CPU; the papers behind the claims train far larger models for far longer.",
        "Two to five seeds per cell: a verdict of `supported` rests on effects large enough to show at that "
        "count; `inconclusive` often means 'needs more seeds or steps'. `trainer.max_steps=N` on the command "
        "line replaces every part's budget; for more seeds, copy conf/ablation/claims.yaml under another name "
        "into your `ABLATE_CONFIG_DIR` and raise its `seeds` (the claims report reads parts, not the name).",
        f"Hardware: {hardware.get('processor') or 'unknown'}"
        f"{', GPU ' + hardware['gpu'] if hardware.get('gpu') else ''}; suite {versions.get('suite', '?')}, "
        f"torch {versions.get('torch', '?')}.",
    ])
    if errors:
        doc.items([f"⚠ {e}" for e in errors])
