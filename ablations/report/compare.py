"""The comparison of two result sets (`ablate report DIR --compare OTHER`), as a report of its own.

Why a report of its own: DIR's report.md is the record of DIR's results, and `ablate report DIR` rebuilds it
from DIR's files alone. A comparison is another document, about two directories; written into report.md, it
made that record depend on which command ran last, and a later plain report silently dropped it. So the
comparison goes to `DIR/compare-<OTHER>.md` and `.html` (with `figures/compare-<OTHER>.png` and
`tables/compare-<OTHER>*.csv|.tex`), and never touches DIR's report.md, report.html or their figures and tables.

A difference in results means little without the difference in setup, so the comparison shows that first: every
setting in which the two manifest.json files differ (the ablation's spec, the command-line overrides, the code,
versions and hardware), and every effective run setting (from each run's result.json) in which the same variant
was configured differently. Then each variant's resilience and each cell's verdict side by side, each set's
statistics computed as in its own report (normalised to its own baseline).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ablations.analyse import aggregate as agg_mod
from ablations.analyse.aggregate import MARKS, Aggregate, ResultSet, aggregate, load
from ablations.report.toolkit import Document, draw, interval, num, signed, write_document, write_table

#: manifest.json keys that differ between any two runs of the same setup and say nothing about it
NOT_SETUP = ("created", "history", "command")
NOT_SET = "(not set)"


def labels(a: Path, b: Path) -> tuple[str, str]:
    """Short distinct names for two directories (their names, else their last two parts, else full paths)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    for depth in (1, 2, 3):
        la, lb = "/".join(a.parts[-depth:]), "/".join(b.parts[-depth:])
        if la != lb:
            return la, lb
    return str(a), str(b) + " (2)"


def slug(label: str) -> str:
    """A label as a file-name part: `deep/default` -> `deep-default`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "other"


def _text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) if value else "(none)"
    return str(value)


def flatten(value, prefix: str = "") -> dict[str, str]:
    """A nested dict as {dotted.key: text}; lists become one comma-separated value (a variant's overrides)."""
    if not isinstance(value, dict):
        return {prefix: _text(value)}
    out: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(item, name) if isinstance(item, dict) and item else {name: _text(item)})
    return out


def _setup(manifest: dict | None) -> dict[str, str]:
    manifest = dict(manifest or {})
    overrides = manifest.pop("overrides", None) or []
    flat = flatten({k: v for k, v in manifest.items() if k not in NOT_SETUP})
    for override in overrides:
        key, _, value = str(override).partition("=")
        flat[f"command line: {key}"] = value
    return flat


def manifest_difference(a: ResultSet, b: ResultSet, names: tuple[str, str]) -> pd.DataFrame:
    """Every setting in which the two manifest.json files differ: columns setting, <label a>, <label b>."""
    sa, sb = _setup(a.manifest), _setup(b.manifest)
    rows = [{"setting": key, names[0]: sa.get(key, NOT_SET), names[1]: sb.get(key, NOT_SET)}
            for key in dict.fromkeys([*sa, *sb]) if sa.get(key) != sb.get(key)]
    return pd.DataFrame(rows, columns=["setting", *names])


def _run_settings(results: ResultSet) -> dict[str, dict[str, set[str]]]:
    """variant -> setting -> the values its runs used (from each run's result.json `config`; the seed left out). A
    model config recorded before its former fields moved into options (models/config.py, MOVED_FIELDS) is read as
    it would be written now, so that two sets made before and after the move differ only where the runs did."""
    from ablations.report.cost import read_result
    from models.config import current_form

    out: dict[str, dict[str, set[str]]] = {}
    for run in results.runs.to_dict("records"):
        config = read_result(results.directory, run).get("config") or {}
        if isinstance(config.get("model"), dict):
            config = {**config, "model": current_form(config["model"])}
        settings = out.setdefault(run["variant"], {})
        for key, value in flatten({k: v for k, v in config.items() if k != "seed"}).items():
            settings.setdefault(key, set()).add(value)
    return out


def run_config_difference(a: ResultSet, b: ResultSet, names: tuple[str, str]) -> pd.DataFrame:
    """Every effective run setting in which a variant of both sets was configured differently: columns setting,
    variants (`every shared variant` when the difference is the same for all), <label a>, <label b>."""
    ra, rb = _run_settings(a), _run_settings(b)
    shared = [v for v in ra if v in rb]
    found: dict[tuple[str, str, str], list[str]] = {}
    for variant in shared:
        for key in dict.fromkeys([*ra[variant], *rb[variant]]):
            va, vb = ra[variant].get(key, set()), rb[variant].get(key, set())
            if va != vb:
                entry = (key, ", ".join(sorted(va)) or NOT_SET, ", ".join(sorted(vb)) or NOT_SET)
                found.setdefault(entry, []).append(variant)
    rows = [{"setting": key, "variants": "every shared variant" if len(found_in) == len(shared) > 1
             else ", ".join(found_in), names[0]: va, names[1]: vb}
            for (key, va, vb), found_in in found.items()]
    return pd.DataFrame(rows, columns=["setting", "variants", *names])


def compare_findings(variants: pd.DataFrame, cells: pd.DataFrame, names: tuple[str, str], baseline: str) -> str:
    """One line: each variant's resilience here and in the other result set, and the cells whose verdicts
    differ."""
    la, lb = names
    parts = []
    both = variants[f"resilience {la}"].notna() & variants[f"resilience {lb}"].notna()
    for _, r in variants[(variants["variant"] != baseline) & both].iterrows():
        text = (f"{r['variant']} {num(r[f'resilience {la}'], 2)} vs {num(r[f'resilience {lb}'], 2)} "
                f"({signed(r['difference'], 2)}")
        intervals = [r[f"ci_low {la}"], r[f"ci_high {la}"], r[f"ci_low {lb}"], r[f"ci_high {lb}"]]
        if all(pd.notna(v) for v in intervals):
            apart = intervals[1] < intervals[2] or intervals[3] < intervals[0]
            text += ", intervals do not overlap" if apart else ", intervals overlap"
        parts.append(text + ")")
    present = cells[f"verdict {la}"].notna() & cells[f"verdict {lb}"].notna()  # cells of only one set: listed apart
    changed = cells[(cells["variant"] != baseline) & present & (cells[f"verdict {la}"] != cells[f"verdict {lb}"])]
    line = f"**{la} vs {lb}** (resilience): " + ("; ".join(parts) or "no variant has a score in both") + "."
    if len(changed):
        line += " Verdicts differ on " + ", ".join(
            f"{r['variant']}/{r['task']} ({r[f'verdict {la}']} vs {r[f'verdict {lb}']})"
            for _, r in changed.iterrows()) + "."
    return line


def resilience_formatted(variants: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    rows = []
    for _, r in variants.iterrows():
        row = {"variant": r["variant"]}
        for label in names:
            row[f"resilience {label}"] = (f"{num(r[f'resilience {label}'], 2)} "
                                          f"{interval(r[f'ci_low {label}'], r[f'ci_high {label}'])}").strip()
        row[f"difference ({names[0]} − {names[1]})"] = signed(r["difference"], 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def cells_formatted(cells: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    rows = []
    for _, r in cells.iterrows():
        row = {"variant": r["variant"], "task": f"{r['task']} ({r['metric']})"}
        for label in names:
            verdict = r[f"verdict {label}"]
            row[f"normalised {label}"] = ("" if pd.isna(verdict) else
                                          f"{num(r[f'norm_mean {label}'], 2)} {MARKS.get(verdict, '')}".strip())
            row[f"verdict {label}"] = "" if pd.isna(verdict) else verdict
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def _presence(a: Aggregate, b: Aggregate, names: tuple[str, str]) -> list[str]:
    lines = []
    for kind in ("variant", "task"):
        in_a, in_b = list(dict.fromkeys(a.cells[kind])), list(dict.fromkeys(b.cells[kind]))
        for here, there, label in ((in_a, in_b, names[0]), (in_b, in_a, names[1])):
            only = [x for x in here if x not in there]
            if only:
                lines.append(f"Only in {label}: {kind}{'s' * (len(only) != 1)} "
                             + ", ".join(f"`{x}`" for x in only) + ".")
    if a.baseline != b.baseline:
        lines.append(f"The baselines differ (`{a.baseline}` in {names[0]}, `{b.baseline}` in {names[1]}): each set "
                     f"is normalised to its own.")
    if a.margin != b.margin:
        lines.append(f"The equivalence margins differ (±{a.margin:g} in {names[0]}, ±{b.margin:g} in {names[1]}): "
                     f"verdicts are each set's own.")
    return lines


def build_compare_report(directory: Path, other: Path) -> dict:
    """Write `<directory>/compare-<other>.md` and `.html` (see the module docstring) and return a dict: report_md,
    report_html, figures and tables (name -> path), findings, errors, aggregate (directory's statistics), compare
    (other's), setup_difference and run_difference (the two tables of what differs)."""
    from ablations.report import figures
    from ablations.report.ablation import provenance

    directory, other = Path(directory), Path(other)
    agg, theirs = aggregate(load(directory)), aggregate(load(other))
    names = labels(directory, other)
    stem = f"compare-{slug(names[1])}"
    errors: list[str] = []
    written_figures: dict[str, Path] = {}
    path, error = draw("compare_resilience", figures.compare_resilience, agg, theirs, names,
                       directory / "figures" / f"{stem}.png")
    if path is not None:
        written_figures["compare_resilience"] = path
    if error:
        errors.append(error)
    variants, cells = agg_mod.compare(agg, theirs, names)
    setup = manifest_difference(agg.results, theirs.results, names)
    runs = run_config_difference(agg.results, theirs.results, names)
    tables: dict[str, Path] = {}
    write_table(directory, stem, variants, resilience_formatted(variants, names),
                f"Resilience: {names[0]} vs {names[1]}", tables)
    write_table(directory, f"{stem}-cells", cells, cells_formatted(cells, names),
                f"Normalised score per cell: {names[0]} vs {names[1]}", tables)
    write_table(directory, f"{stem}-setup", pd.concat([setup.assign(source="manifest.json"),
                                                       runs.assign(source="result.json")], ignore_index=True),
                pd.concat([setup, runs], ignore_index=True).fillna("").set_index("setting"),
                f"Setup: {names[0]} vs {names[1]}", tables)

    found = [compare_findings(variants, cells, names, agg.baseline), *_presence(agg, theirs, names)]
    doc = Document()
    title = f"Comparison: `{names[0]}` vs `{names[1]}`"
    doc.heading(1, title)
    own = ("[report.md](report.md) here" if (directory / "report.md").exists()
           else f"`ablate report {directory}` writes the one here")
    doc.para(f"The results in `{directory}` ({names[0]}) beside those in `{other}` ({names[1]}). Each directory "
             f"keeps its own report ({own}), which this comparison leaves as it is. "
             f"Differences are {names[0]} − {names[1]}; each set's statistics are computed as in its own report, "
             "normalised to its own baseline.")
    doc.heading(2, "Findings")
    doc.items(found + [f"⚠ {e}" for e in errors])
    doc.heading(2, "What differs in the setup")
    if agg.results.manifest is None or theirs.results.manifest is None:
        missing = [n for n, r in zip(names, (agg.results, theirs.results)) if r.manifest is None]
        doc.para(f"No manifest.json in {' and '.join(missing)}: the recorded setup cannot be compared; the run "
                 "settings below come from each run's result.json.")
    doc.para("From the two manifest.json files: the ablation (its variants, tasks, seeds, sweep), the command-line "
             "overrides, the code, versions and hardware. Settings not listed are the same.")
    if len(setup):
        doc.table(setup.set_index("setting"))
    else:
        doc.para("The two manifests record the same setup.")
    doc.heading(3, "Effective run settings")
    doc.para("From each run's result.json: the model, task, optimiser and trainer settings its runs used, per "
             "variant present in both (values over the variant's runs; the seed left out). A tuned setting such as "
             "the learning rate differs whenever the tuning chose differently.")
    if len(runs):
        doc.table(runs.set_index("setting"))
    elif set(agg.runs["variant"]) & set(theirs.runs["variant"]):
        doc.para("Every variant present in both sets ran with the same settings.")
    else:
        doc.para("No variant is in both sets, so no run settings are compared.")
    doc.heading(2, "Resilience")
    doc.table(resilience_formatted(variants, names))
    if "compare_resilience" in written_figures:
        doc.figure(written_figures["compare_resilience"], "Resilience in the two result sets")
    doc.heading(2, "Per cell")
    doc.table(cells_formatted(cells, names))
    doc.heading(2, "How these results were produced")
    for label, result in ((names[0], agg), (names[1], theirs)):
        doc.para(f"**{label}** (`{result.results.directory}`):")
        doc.items([f"{k}: {v}" for k, v in provenance(result)])
    doc.para("Tables: " + ", ".join(f"`tables/{name}`" for name in tables) + ".")
    md_path, html_path = write_document(doc, directory, stem, f"Comparison {names[0]} vs {names[1]}")
    return {"report_md": md_path, "report_html": html_path, "figures": written_figures, "tables": tables,
            "findings": found, "errors": errors, "aggregate": agg, "compare": theirs, "labels": names,
            "setup_difference": setup, "run_difference": runs}
