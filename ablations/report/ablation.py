"""The report of an ablation: what removing each component did, on which tasks, and how sure we are.

`build_report(directory)` reads `runs.csv` (and `trials.csv` and `manifest.json` when present) and writes, all
atomically, into the results directory:

    report.md                    findings, tables and methods; figures linked from figures/
    report.html                  the same, self-contained: figures embedded as data: URIs, inline CSS
    figures/*.png                resilience heatmap, performance profile, learning curves, cost, LR sensitivity
                                 (with trials.csv),
                                 resilience in two result sets (with compare=)
    tables/*.csv, tables/*.tex   summary (per variant x task), resilience (per variant), optimisability and
                                 compare when they apply; LaTeX tables need booktabs and amssymb

The statistics are in ablations/analyse/aggregate.py and ablations/analyse/stats.py, whose docstrings state every
rule; the report's Methods section repeats them. Markdown becomes HTML through ablations/report/markup.py.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path

import pandas as pd

from ablations import __version__
from ablations.analyse import aggregate as agg_mod
from ablations.analyse import stats
from ablations.analyse.aggregate import MARKS, Aggregate, aggregate, load
from ablations.report.markup import inline_html, to_html
from ablations.store.files import write_text_atomic

FIGURES = {
    "resilience_heatmap": "Normalised score per variant and task, and resilience over all tasks",
    "learning_curves": "Validation metric during training: mean ± 1 sd over the seeds still training at each step; "
                       "✗ marks where a run diverged or failed",
    "lr_sensitivity": "Validation metric of each tuning trial against its learning rate",
    "cost": "Training throughput and parameter count",
    "compare_resilience": "Resilience in the two result sets",
    "performance_profile": "Performance profile: the fraction of runs (averaged over tasks) whose normalised score "
                           "exceeds τ, with 95% stratified-bootstrap bands",
}


# ------------------------------------------------------------------------------------------- formatting
def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "—"
    return f"{value:.{digits}f}".replace("-", "−")


def _signed(value, digits: int = 3) -> str:
    if value is None or pd.isna(value) or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}".replace("-", "−")


def _p(value) -> str:
    if value is None or pd.isna(value):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _p_eq(value) -> str:
    """`p=0.012` or `p<0.001`."""
    text = _p(value)
    return "p" + (text if text.startswith("<") else "=" + text)


def _interval(low, high, digits: int = 2) -> str:
    if pd.isna(low) or pd.isna(high):
        return ""
    return f"[{_num(low, digits)}, {_num(high, digits)}]"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")
    return f"{text} ({seconds} s)"


def _status_counts(row) -> str:
    parts = [f"{row['n_ok']} ok"]
    for status in ("diverged", "pruned", "failed"):
        if row[f"n_{status}"]:
            parts.append(f"{row[f'n_{status}']} {status}")
    return ", ".join(parts)


def _mark(verdict: str) -> str:
    mark = MARKS.get(verdict, "")
    return f"{mark} {verdict}" if mark else verdict


# --------------------------------------------------------------------------------------------- findings
def _cell_phrase(row, *, with_p: bool = True) -> str:
    metric = row["metric"].replace("_", " ")
    text = f"{row['task']} ({_signed(row['delta'])} {metric}"
    if with_p:
        text += f", {_p_eq(row['p_holm'])} Holm"
    bad = row["n_diverged"] + row["n_failed"]
    if bad:
        text += f", {bad}/{row['n_runs'] - row['n_pruned']} runs diverged/failed"
    return text + ")"


def _norm_interval(row) -> str:
    """`Δ −0.012 [90% −0.041, 0.017]` in normalised units (the equivalence test's interval)."""
    text = f"Δ {_signed(row['norm_delta'], 3)} normalised"
    if pd.notna(row["norm_delta_low"]):
        text += f", 90% CI [{_signed(row['norm_delta_low'], 3)}, {_signed(row['norm_delta_high'], 3)}]"
    return text


def _seeds_phrase(row) -> str:
    n = row["seeds_to_decide"]
    if pd.notna(n):
        return f"about {int(n)} seeds per side would decide it at this spread"
    if row["test_note"] == "zero variance":
        return "every seed gave the same score: more seeds of the same runs would not decide it"
    return f"more than {stats.MAX_SEEDS} seeds per side would be needed at this spread"


def findings(agg: Aggregate) -> list[str]:
    """Short statements computed from the data, most affected variant first (markdown inline syntax)."""
    cells, res, baseline, margin = agg.cells, agg.resilience, agg.baseline, agg.margin
    lines: list[str] = []
    if cells.empty:
        return ["No runs in this directory yet."]
    base = cells[cells["variant"] == baseline]
    if len(base):
        parts = [f"{r['task']} {r['metric'].replace('_', ' ')} {_num(r['mean'])}"
                 + (f" ({_status_counts(r)})" if r["n_ok"] < r["n_runs"] else "")
                 for _, r in base.iterrows()]
        n = int(base["n_runs"].max())
        lines.append(f"Baseline **{baseline}**: {'; '.join(parts)} (mean over {n} seed{'s' * (n != 1)}).")
    order = res[res["variant"] != baseline].sort_values("resilience", na_position="last", kind="stable")
    for variant in order["variant"]:
        own = cells[cells["variant"] == variant]
        r = res[res["variant"] == variant].iloc[0]
        clauses = []
        for verdict in ("worse", "broken", "better"):
            rows = own[own["verdict"] == verdict]
            if len(rows):
                phrases = []
                for _, row in rows.iterrows():
                    if verdict == "broken":
                        bad = row["n_diverged"] + row["n_failed"]
                        detail = f"normalised {_num(row['norm_mean'], 2)}"
                        if bad:
                            detail += f", {bad}/{row['n_runs'] - row['n_pruned']} runs diverged/failed"
                        phrases.append(f"{row['task']} ({detail})")
                    else:
                        phrases.append(_cell_phrase(row))
                clauses.append(f"{verdict} on {', '.join(phrases)}")
        rows = own[own["verdict"] == "equivalent"]
        if len(rows):
            clauses.append(f"equivalent within ±{margin:g} on " + ", ".join(
                f"{row['task']} ({_norm_interval(row)}"
                + (f"; a significant difference ({_p_eq(row['p_holm'])} Holm), but inside the margin"
                   if pd.notna(row["p_holm"]) and row["p_holm"] < agg_mod.ALPHA else "") + ")"
                for _, row in rows.iterrows()))
        rows = own[own["verdict"] == "inconclusive"]
        if len(rows):
            clauses.append("inconclusive on " + ", ".join(
                f"{row['task']} ({_norm_interval(row)}, {_p_eq(row['p_holm'])} Holm; {_seeds_phrase(row)})"
                for _, row in rows.iterrows()))
        rows = own[own["verdict"] == "untested"]
        if len(rows):
            clauses.append("untested on " + ", ".join(
                f"{row['task']} ({_signed(row['delta'])} {row['metric'].replace('_', ' ')}; fewer than 2 runs on a "
                f"side)" for _, row in rows.iterrows()))
        if pd.isna(r["resilience"]):
            score = f"resilience {r['ci_note']}"
        else:
            score = f"resilience {_num(r['resilience'], 2)}"
            score += (f" {_interval(r['ci_low'], r['ci_high'])}" if pd.notna(r["ci_low"])
                      else f" (no interval: {r['ci_note']})")
        judged = len(own)
        score += f"; resilient (equivalent or better) on {int(r['n_resilient'])} of {judged} task{'s' * (judged != 1)}"
        lines.append(f"**{variant}**: {'; '.join(clauses) or 'no runs'}; {score}.")
    if agg.optimisability is not None and len(agg.optimisability):
        medians = agg.optimisability.groupby("variant", sort=False)["decades"].median()
        lines.append("Learning-rate tolerance (decades of LR within 5% of the best trial, median over tasks): "
                     + ", ".join(f"{v} {_num(d, 2)}" for v, d in medians.items()) + ".")
    n_max = int((cells["n_runs"] - cells["n_pruned"]).max())
    if n_max < 2:
        lines.append("Every cell has a single run, so every cell is `untested`: nothing can be `better`, `worse` or "
                     "`equivalent`; add seeds (`ablate run seed=1` appends) to test.")
    others = cells[cells["variant"] != baseline]
    if len(others):
        decisive = int(others["verdict"].isin(("better", "worse", "equivalent", "broken")).sum())
        lines.append(f"Decisive cells (better, worse, equivalent or broken): {decisive} of {len(others)} "
                     f"non-baseline cells ({decisive / len(others):.0%}); equivalence margin ±{margin:g} of the "
                     f"chance-to-baseline range.")
    lines.extend(agg.notes)
    return lines


def compare_findings(variants: pd.DataFrame, cells: pd.DataFrame, labels: tuple[str, str], baseline: str) -> str:
    """One line: each variant's resilience here and in the other result set, and the cells whose verdicts
    differ."""
    la, lb = labels
    parts = []
    for _, r in variants[variants["variant"] != baseline].iterrows():
        text = (f"{r['variant']} {_num(r[f'resilience {la}'], 2)} vs {_num(r[f'resilience {lb}'], 2)} "
                f"({_signed(r['difference'], 2)}")
        intervals = [r[f"ci_low {la}"], r[f"ci_high {la}"], r[f"ci_low {lb}"], r[f"ci_high {lb}"]]
        if all(pd.notna(v) for v in intervals):
            apart = intervals[1] < intervals[2] or intervals[3] < intervals[0]
            text += ", intervals do not overlap" if apart else ", intervals overlap"
        parts.append(text + ")")
    changed = cells[(cells["variant"] != baseline) & (cells[f"verdict {la}"] != cells[f"verdict {lb}"])]
    line = f"**{la} vs {lb}** (resilience): " + ("; ".join(parts) or "no variants") + "."
    if len(changed):
        line += " Verdicts differ on " + ", ".join(
            f"{r['variant']}/{r['task']} ({r[f'verdict {la}']} vs {r[f'verdict {lb}']})"
            for _, r in changed.iterrows()) + "."
    return line


# -------------------------------------------------------------------------------------------- tables
def resilience_table(agg: Aggregate) -> pd.DataFrame:
    """Formatted: variants x tasks of normalised score and verdict mark, then the resilience score."""
    cells, tasks = agg.cells, list(dict.fromkeys(agg.cells["task"]))
    metric = cells.drop_duplicates("task").set_index("task")["metric"]
    rows = {}
    for _, r in agg.resilience.iterrows():
        row = {}
        for task in tasks:
            cell = cells[(cells["variant"] == r["variant"]) & (cells["task"] == task)]
            if cell.empty:
                row[f"{task} ({metric[task]})"] = ""
                continue
            cell = cell.iloc[0]
            row[f"{task} ({metric[task]})"] = f"{_num(cell['norm_mean'], 2)} {MARKS.get(cell['verdict'], '')}".strip()
        row["resilience [95% CI]"] = f"{_num(r['resilience'], 2)} {_interval(r['ci_low'], r['ci_high'])}".strip()
        row["resilient tasks (≈ or ▲)"] = ("" if r["variant"] == agg.baseline else
                                           f"{r['n_resilient']}/{int((cells['variant'] == r['variant']).sum())}")
        row["diverged/failed runs"] = f"{r['n_diverged'] + r['n_failed']}/{r['n_runs'] - r['n_pruned']}"
        rows[r["variant"]] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


def resilience_export(agg: Aggregate) -> pd.DataFrame:
    """Numeric resilience table for CSV: one row per variant, per-task normalised means and verdicts."""
    frame = agg.resilience.copy()
    for task in dict.fromkeys(agg.cells["task"]):
        own = agg.cells[agg.cells["task"] == task].set_index("variant")
        frame[f"norm_{task}"] = frame["variant"].map(own["norm_mean"])
        frame[f"verdict_{task}"] = frame["variant"].map(own["verdict"])
    return frame


def summary_table(agg: Aggregate) -> pd.DataFrame:
    """Formatted per-cell statistics (one row per variant x task)."""
    rows = []
    for _, r in agg.cells.iterrows():
        rows.append({
            "variant": r["variant"], "task": r["task"],
            "metric": f"{r['metric']} ({'↑' if r['higher_is_better'] else '↓'})",
            "runs": _status_counts(r),
            "mean ± sd": _num(r["mean"]) + (f" ± {_num(r['std'])}" if pd.notna(r["std"]) else ""),
            "95% CI": _interval(r["ci_low"], r["ci_high"], 3),
            "Δ vs baseline": "" if r["variant"] == agg.baseline else _signed(r["delta"]),
            "p (Welch)": "" if r["variant"] == agg.baseline else (_p(r["p_value"]) if pd.notna(r["p_value"])
                                                                   else f"— ({r['test_note']})"),
            "p (Holm)": "" if r["variant"] == agg.baseline else _p(r["p_holm"]),
            "normalised [95% CI]": (f"{_num(r['norm_mean'], 2)} "
                                    f"{_interval(r['norm_ci_low'], r['norm_ci_high'])}").strip(),
            "Δ normalised [90% CI]": "" if r["variant"] == agg.baseline else (
                f"{_signed(r['norm_delta'])} {_interval(r['norm_delta_low'], r['norm_delta_high'], 3)}").strip(),
            "verdict": _mark(r["verdict"]),
            "seeds to decide": "" if r["verdict"] != "inconclusive" else (
                f"≈ {int(r['seeds_to_decide'])}" if pd.notna(r["seeds_to_decide"]) else f"> {stats.MAX_SEEDS}"
                if r["test_note"] != "zero variance" else "—"),
        })
    return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()


def robust_table(agg: Aggregate) -> pd.DataFrame | None:
    """Formatted rliable aggregates: per variant the IQM and the probability of improvement over the baseline."""
    table = agg.robust
    if table is None or table.empty:
        return None
    rows = []
    for _, r in table.iterrows():
        base = r["variant"] == agg.baseline
        rows.append({
            "variant": r["variant"], "tasks": r["n_tasks"], "runs": r["n_runs"],
            "IQM [95% CI]": f"{_num(r['iqm'], 2)} {_interval(r['iqm_low'], r['iqm_high'])}".strip(),
            f"P(improvement over {agg.baseline}) [95% CI]": "" if base else (
                f"{_num(r['p_improvement'], 2)} "
                f"{_interval(r['p_improvement_low'], r['p_improvement_high'])}").strip(),
            "note": r["note"],
        })
    return pd.DataFrame(rows).set_index("variant")


def optimisability_table(agg: Aggregate) -> pd.DataFrame | None:
    table = agg.optimisability
    if table is None or table.empty:
        return None
    rows = []
    for _, r in table.iterrows():
        rows.append({
            "variant": r["variant"], "task": r["task"],
            "trials": f"{r['n_ok']} ok" + "".join(f", {r[f'n_{s}']} {s}" for s in ("diverged", "pruned", "failed")
                                                  if r[f"n_{s}"]),
            "best val": _num(r["best_val"]), "best lr": f"{r['best_lr']:.2g}" if pd.notna(r["best_lr"]) else "—",
            "LR range within tolerance": (f"{r['lr_low']:.2g} – {r['lr_high']:.2g}" if pd.notna(r["lr_low"])
                                          else "—"),
            "width (decades)": _num(r["decades"], 2), "decades tried": _num(r["decades_tried"], 2),
        })
    return pd.DataFrame(rows).set_index("variant")


def runs_table(agg: Aggregate) -> pd.DataFrame:
    runs = agg.runs
    frame = pd.DataFrame({
        "variant": runs["variant"], "task": runs["task"], "seed": runs["seed"].astype(str),
        "status": runs["status"], "score": runs["score"].map(lambda v: _num(v, 4)),
        "steps": runs["steps"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "diverged at": runs["diverged_step"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "seconds": runs["wall_seconds"].map(lambda v: _num(v, 1)),
        "params": runs["n_params"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}"),
        "tokens/s": runs["tokens_per_second"].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}"),
        "error": runs["error"].map(lambda e: (e[:80] + "…") if len(e) > 80 else e),
    })
    return frame.set_index("variant")


# -------------------------------------------------------------------------------------------- LaTeX
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$", "✗": r"$\times$", "±": r"$\pm$",
                  "≈": r"$\approx$", "·": r"$\cdot$",
                  "−": "$-$", "Δ": r"$\Delta$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "≥": r"$\geq$",
                  "—": "--", "–": "--", "…": r"\ldots{}", "<": r"$<$", ">": r"$>$"}


def latex_escape(text) -> str:
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return "".join(_LATEX_SYMBOLS.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs table (needs \\usepackage{booktabs,amssymb}); numbers are formatted to 4 significant digits."""
    frame = frame.reset_index() if frame.index.name else frame

    def cell(value) -> str:
        if isinstance(value, float):
            return "--" if not math.isfinite(value) else f"{value:.4g}"
        return latex_escape(value)

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = ["% generated by ablations.report; needs \\usepackage{booktabs,amssymb}", "\\begin{table}[ht]",
             "\\centering", "\\small"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(f"\\label{{{label}}}")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
              " & ".join(latex_escape(c) for c in frame.columns) + " \\\\", "\\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(cell(v) for v in row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _write_table(directory: Path, name: str, numeric: pd.DataFrame, formatted: pd.DataFrame, caption: str,
                 written: dict) -> None:
    buffer = io.StringIO()
    numeric.to_csv(buffer, index=False)
    write_text_atomic(directory / "tables" / f"{name}.csv", buffer.getvalue())
    write_text_atomic(directory / "tables" / f"{name}.tex", to_latex(formatted, caption, f"tab:{name}"))
    written[f"{name}.csv"] = directory / "tables" / f"{name}.csv"
    written[f"{name}.tex"] = directory / "tables" / f"{name}.tex"


# ------------------------------------------------------------------------------------------- provenance
def provenance(agg: Aggregate, command: str | None = None) -> list[tuple[str, str]]:
    """How the results were produced, from manifest.json (and the first run's result.json) when present."""
    manifest = agg.results.manifest or {}
    runs = agg.runs
    versions = manifest.get("versions") or {}
    if not versions:
        for record in runs.to_dict("records")[:5]:
            run_dir = agg_mod.resolve_run_dir(agg.results.directory, record)
            try:
                versions = json.loads((run_dir / "result.json").read_text()).get("versions") or {}
            except (OSError, TypeError, AttributeError, json.JSONDecodeError):
                continue
            if versions:
                break
    commands = [h.get("command") for h in manifest.get("history") or [] if h.get("command")]
    if manifest.get("command"):
        commands.append(manifest["command"])
    if not commands and command:
        commands = [command]
    hardware = manifest.get("hardware") or {}
    if hardware:
        system = " ".join(str(hardware[k]) for k in ("system", "machine") if hardware.get(k))
        hw = f"{hardware.get('processor') or '?'}, {hardware.get('cpu_count', '?')} CPUs"
        hw += f" ({system})" if system else ""
        hw += f", GPU: {hardware['gpu']}" if hardware.get("gpu") else ", no GPU"
    else:
        hw = "not recorded (no manifest.json)"
    seeds = sorted({int(s) for s in runs["seed"].dropna()})
    planned = (manifest.get("ablation") or {}).get("seeds")
    total = float(runs["wall_seconds"].sum()) if len(runs) else 0.0
    compute = _duration(total) + f" over {len(runs)} runs (sum of wall_seconds)"
    trials = agg.results.trials
    if trials is not None and len(trials):
        compute += f"; tuning: {_duration(float(trials['wall_seconds'].sum()))} over {len(trials)} trials"
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items()) if versions else "not recorded"
    return [
        ("Command", "; ".join(f"`{c}`" for c in commands) if commands else "not recorded (no manifest.json)"),
        ("Versions", version_text + f" (report by suite {__version__})"),
        ("Config hash", f"`{manifest['config_hash']}`" if manifest.get("config_hash") else
         "not recorded (no manifest.json)"),
        ("Seeds", (", ".join(map(str, seeds)) or "none")
         + (f" (the ablation defines {', '.join(map(str, planned))})" if planned and list(planned) != seeds else "")),
        ("Hardware", hw),
        ("Total compute", compute),
        ("Results written", str(manifest.get("created") or "unknown")),
        ("Report written", _dt.datetime.now().astimezone().isoformat(timespec="seconds")),
    ]


def methods(agg: Aggregate) -> list[str]:
    """The Methods section: every rule the statistics followed, with this report's margin."""
    margin = agg.margin
    return [
        "**Effective score.** A run that diverged or failed counts as the task's chance level in every statistic "
        "below; pruned runs (stopped by the tuner) are only counted.",
        "**Per cell** (variant × task): mean and sample standard deviation over seeds and a 95% Student-t interval "
        "for the mean, intersected with the metric's feasible range (accuracy [0, 1], bits per character ≥ 0): the "
        "true mean lies in that range, so the intersection keeps the t-interval's coverage and never shows an "
        "impossible value. A bootstrap over seeds is not used for cells: at 2–3 seeds its interval cannot reach "
        "beyond the observed seeds and covers far less often than its nominal 95% (at 2 seeds about half the "
        "time).",
        "**Normalised score** = (score − chance) / (baseline mean − chance), or (chance − score) / (chance − baseline "
        "mean) for lower-is-better metrics such as bits per character: chance is 0 and the baseline's mean is 1 on "
        "every task (undefined where the baseline is no better than chance), with the baseline mean held fixed.",
        "**Tests against the baseline.** Difference: Welch's unequal-variance two-sided t-test, Holm–Bonferroni "
        "corrected over every tested non-baseline cell of the grid (significant: corrected p < 0.05). "
        f"Equivalence: the two one-sided tests (TOST, Schuirmann 1987) with margin ±{margin:g} in normalised units, "
        f"i.e. ±{margin:.0%} of the chance-to-baseline range (`report.margin`, default {stats.MARGIN:g}), each at "
        "α = 0.05: this is the same as asking whether the 90% Welch interval of the normalised difference lies "
        "inside (−margin, +margin) (a 95% interval would be TOST at α = 0.025). The interval is clipped to the range "
        "a difference of the metric can take. Equivalence is judged per cell, without multiplicity correction.",
        f"**Verdict** per cell, the first that applies: `broken` ✗ if the mean normalised score is below "
        f"{agg_mod.BROKEN_BELOW:g} or more than half of the runs diverged or failed; `untested` · with fewer than 2 "
        "runs on either side (nothing was tested); `equivalent` ≈ if TOST shows the difference inside the margin "
        "(also when it is significant: a difference shown to be smaller than the margin is negligible, and the "
        "finding says so); `better` ▲ / `worse` ▼ if the difference is significant, in the metric's better / worse "
        "direction; otherwise `inconclusive` ?: neither an effect nor its absence is shown. Not significant is not "
        "no effect: only `equivalent` says that a change does not matter, and only up to the margin.",
        "**Seeds to decide** (inconclusive cells): the smallest number of seeds per side at which, if the observed "
        "normalised difference and the observed spreads were the truth, the cell would be decided with 80% power, by "
        "the difference test (two-sided, at α divided by the number of tested cells, Holm's strictest step) or by "
        "TOST, whichever needs fewer. Power from the noncentral t distribution with Welch–Satterthwaite degrees of "
        "freedom (for TOST, P(both one-sided tests reject) ≥ P(one) + P(other) − 1). Observed effects are noisy "
        "at few seeds, so this is a rough guide, not a guarantee.",
        "**Resilience** of a variant = mean over tasks of its normalised scores; its 95% interval is a percentile "
        f"bootstrap ({agg.n_boot} replicates, fixed seed) resampling seeds within each task for the variant "
        "and the baseline alike (the normaliser is re-estimated each time); tasks are not resampled. The interval is "
        "given only when every task has ≥ 2 runs of both, and is left out as unstable when more than 2.5% of the "
        "replicates resample a baseline no better than chance. Resilient tasks are those whose cell is `equivalent` "
        "or `better`; `inconclusive` never counts.",
        "**Aggregates across tasks** as rliable computes them (Agarwal et al. 2021, \"Deep Reinforcement Learning "
        "at the Edge of the Statistical Precipice\", arXiv:2108.13264): the interquartile mean (IQM) of every normalised run of the variant, "
        "pooled over tasks (scipy.stats.trim_mean at 25%); the probability of improvement, P(a run of the variant "
        "scores higher than a run of the baseline on the same task) + ½ P(tie), averaged over tasks (the "
        "Mann–Whitney U statistic over n·m); and the performance profile, the fraction of runs whose normalised "
        "score exceeds τ, averaged over tasks. Each has a 95% stratified-bootstrap percentile interval "
        f"(scipy.stats.bootstrap, {agg.n_boot} replicates, every task's runs resampled on their own, tasks fixed); "
        "with 2–5 seeds per task these intervals share the bootstrap's small-sample narrowness, so read them as "
        "descriptive.",
        "**Learning-rate tolerance** (with trials.csv): the width in decades of the contiguous learning-rate range "
        f"around the variant's best trial whose trials reach within {agg_mod.LR_TOLERANCE:.0%} of the task's "
        "normalised range (chance to the baseline's best trial) of that best; diverged and failed trials end the "
        "range, pruned trials (stopped early, final value unknown) are skipped.",
    ]


# ---------------------------------------------------------------------------------------- the document
class _Doc:
    """A tiny document model rendered both to markdown and to HTML."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def heading(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def para(self, text: str):
        self.blocks.append(("p", text))

    def items(self, items: list[str]):
        self.blocks.append(("ul", list(items)))

    def table(self, frame: pd.DataFrame, collapsed: str | None = None):
        self.blocks.append(("table", frame, collapsed))

    def figure(self, path: Path, caption: str):
        self.blocks.append(("fig", Path(path), caption))

    def markdown(self, root: Path) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append("#" * block[1] + " " + block[2])
            elif kind == "p":
                out.append(block[1])
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in block[1]))
            elif kind == "table":
                out.append(_markdown_table(block[1]))
            elif kind == "fig":
                rel = block[1].relative_to(root).as_posix()
                out.append(f"![{block[2]}]({rel})\n\n*{block[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                out.append(f"<h{block[1]}>{inline_html(block[2])}</h{block[1]}>")
            elif kind == "p":
                out.append(to_html(block[1]).strip())
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                table = _html_table(block[1])
                out.append(f"<details><summary>{inline_html(block[2])}</summary>{table}</details>" if block[2]
                           else table)
            elif kind == "fig":
                data = base64.b64encode(block[1].read_bytes()).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                           f"<figcaption>{inline_html(block[2])}</figcaption></figure>")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                f"</title>\n<style>{_CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #eee}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;font-size:90%}
table{border-collapse:collapse;margin:.6em 0;font-size:90%}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f6f6}tr:nth-child(even) td{background:#fbfbfb}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:90%}ul.findings li{margin:.3em 0}
details summary{cursor:pointer;color:#0550ae;margin:.5em 0}
"""


def _markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (pandas' to_markdown needs the optional `tabulate`)."""
    def clean(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = ([frame.index.name or ""] if frame.index.name else []) + [clean(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        values = ([clean(index)] if frame.index.name else []) + [clean(v) for v in row]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame) -> str:
    header = ([frame.index.name] if frame.index.name else []) + list(frame.columns)
    rows = ["<tr>" + "".join(f"<th>{inline_html(str(h))}</th>" for h in header) + "</tr>"]
    for index, row in frame.iterrows():
        values = ([index] if frame.index.name else []) + list(row)
        rows.append("<tr>" + "".join(f"<td>{inline_html(str(v))}</td>" for v in values) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _labels(a: Path, b: Path) -> tuple[str, str]:
    """Short distinct names for two directories (their names, else their last two parts, else full paths)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    for depth in (1, 2, 3):
        la, lb = "/".join(a.parts[-depth:]), "/".join(b.parts[-depth:])
        if la != lb:
            return la, lb
    return str(a), str(b) + " (2)"


# ------------------------------------------------------------------------------------------ the report
def _draw(name: str, func, *args) -> tuple[Path | None, str | None]:
    try:
        return func(*args), None
    except Exception as error:  # a figure that cannot be drawn is reported, not fatal to the report
        return None, f"figure {name} could not be drawn: {type(error).__name__}: {error}"


def _build(directory: Path, *, compare: Path | None = None, ablation: str | None = None,
           description: str | None = None, baseline: str | None = None, command: str | None = None) -> dict:
    from ablations.report import figures

    directory = Path(directory)
    agg = aggregate(load(directory, ablation=ablation, description=description, baseline=baseline))
    other, labels = None, None
    if compare is not None:
        other = aggregate(load(Path(compare)))
        labels = _labels(directory, Path(compare))
    errors: list[str] = []
    written_figures: dict[str, Path] = {}
    jobs = [("resilience_heatmap", figures.resilience_heatmap, agg),
            ("learning_curves", figures.learning_curves, agg),
            ("lr_sensitivity", figures.lr_sensitivity, agg),
            ("cost", figures.cost_bars, agg),
            ("performance_profile", figures.performance_profile, agg)]
    if other is not None:
        jobs.append(("compare_resilience", lambda a, p: figures.compare_resilience(a, other, labels, p), agg))
    for name, func, data in jobs:
        path, error = _draw(name, func, data, directory / "figures" / f"{name}.png")
        if path is not None:
            written_figures[name] = path
        if error:
            errors.append(error)

    tables: dict[str, Path] = {}
    summary = summary_table(agg)
    res_table = resilience_table(agg)
    _write_table(directory, "summary", agg.cells, summary, f"{agg.results.ablation}: per variant and task",
                 tables)
    _write_table(directory, "resilience", resilience_export(agg), res_table,
                 f"{agg.results.ablation}: normalised score per task (chance 0, baseline 1) and resilience", tables)
    rob_table = robust_table(agg)
    if rob_table is not None:
        _write_table(directory, "aggregates", agg.robust, rob_table,
                     f"{agg.results.ablation}: interquartile mean and probability of improvement over tasks", tables)
    opt_table = optimisability_table(agg)
    if opt_table is not None:
        _write_table(directory, "optimisability", agg.optimisability, opt_table,
                     f"{agg.results.ablation}: learning-rate tolerance", tables)
    compare_variants = compare_cells = None
    if other is not None:
        compare_variants, compare_cells = agg_mod.compare(agg, other, labels)
        formatted = _compare_formatted(compare_variants, labels)
        _write_table(directory, "compare", compare_variants, formatted,
                     f"Resilience: {labels[0]} vs {labels[1]}", tables)
        _write_table(directory, "compare_cells", compare_cells, _compare_cells_formatted(compare_cells, labels),
                     f"Normalised score per cell: {labels[0]} vs {labels[1]}", tables)

    found = findings(agg)
    if other is not None:
        found.append(compare_findings(compare_variants, compare_cells, labels, agg.baseline))
    doc = _Doc()
    title = f"Ablation `{agg.results.ablation}`"
    doc.heading(1, title)
    if agg.results.description:
        doc.para(agg.results.description)
    doc.para(f"Baseline: `{agg.baseline}`. Does removing or changing a component hurt, on which tasks, and how "
             "sure are we? Scores are normalised per task so that chance is 0 and the baseline is 1. Verdicts: "
             "▲ better, ▼ worse (Welch t-test, Holm-corrected p < 0.05), ≈ equivalent (the 90% interval of the "
             f"normalised difference lies within the margin of **±{agg.margin:g}**, i.e. ±{agg.margin:.0%} of the "
             "chance-to-baseline range: TOST at α = 0.05; `report.margin` sets it), ? inconclusive (neither shown: "
             "not significant is not no effect), ✗ broken (near chance or mostly diverged), · untested (fewer than "
             "2 runs on a side).")
    doc.heading(2, "Findings")
    doc.items(found)
    if errors:
        doc.items([f"⚠ {e}" for e in errors])
    doc.heading(2, "Resilience")
    doc.para("Normalised score per task (mean over seeds; chance 0, baseline 1) with the verdict mark, and the "
             "resilience score: the mean over tasks with its 95% bootstrap interval. Diverged and failed runs "
             "count as chance.")
    doc.table(res_table)
    if "resilience_heatmap" in written_figures:
        doc.figure(written_figures["resilience_heatmap"], FIGURES["resilience_heatmap"])
    if rob_table is not None:
        doc.heading(2, "Aggregates across tasks")
        doc.para("As rliable reports them (Agarwal et al. 2021): the interquartile mean of every normalised run "
                 "pooled over tasks, robust to a single outlying task or seed, and the probability that a run of "
                 f"the variant beats a run of `{agg.baseline}` on the same task (0.5: no difference), with 95% "
                 "stratified-bootstrap intervals; then the performance profile.")
        doc.table(rob_table)
        if "performance_profile" in written_figures:
            doc.figure(written_figures["performance_profile"], FIGURES["performance_profile"])
    doc.heading(2, "Per variant and task")
    doc.para("Test-split metric over seeds (diverged/failed runs at chance), its 95% t-interval within the metric's "
             "range, the difference to the baseline's mean, Welch's t-test against the baseline (raw and "
             "Holm-corrected p), the normalised score, the normalised difference with the 90% interval that the "
             f"equivalence test compares with ±{agg.margin:g}, the verdict, and for an inconclusive cell about how "
             "many seeds per side would decide it.")
    doc.table(summary)
    if opt_table is not None:
        doc.heading(2, "Optimisability")
        doc.para(f"From trials.csv: how wide a learning-rate range reaches within {agg_mod.LR_TOLERANCE:.0%} of "
                 "the normalised range of each variant's best trial. A narrow range means the variant needs "
                 "careful tuning.")
        doc.table(opt_table)
        if "lr_sensitivity" in written_figures:
            doc.figure(written_figures["lr_sensitivity"], FIGURES["lr_sensitivity"])
    if other is not None:
        doc.heading(2, f"Comparison: {labels[0]} vs {labels[1]}")
        doc.para(f"The same statistics computed for each result set separately (`{other.results.directory}`: "
                 f"ablation `{other.results.ablation}`, baseline `{other.baseline}`). Difference = "
                 f"{labels[0]} − {labels[1]}; each set is normalised to its own baseline.")
        doc.table(_compare_formatted(compare_variants, labels))
        doc.table(_compare_cells_formatted(compare_cells, labels))
        if "compare_resilience" in written_figures:
            doc.figure(written_figures["compare_resilience"], FIGURES["compare_resilience"])
    doc.heading(2, "Training")
    for name in ("learning_curves", "cost"):
        if name in written_figures:
            doc.figure(written_figures[name], FIGURES[name])
    if "learning_curves" not in written_figures:
        doc.para("No learning curves: no run's metrics.csv was found.")
    doc.heading(2, "Methods")
    doc.items(methods(agg))
    doc.heading(2, "How these results were produced")
    doc.items([f"{k}: {v}" for k, v in provenance(agg, command)])
    doc.para("Tables: " + ", ".join(f"`tables/{name}`" for name in tables) + ".")
    doc.heading(2, "Every run")
    doc.table(runs_table(agg), collapsed=f"{len(agg.runs)} runs")

    # A figure or table that an earlier report wrote and this one does not (no trials.csv or no compare= any
    # more) would be stale: remove it, touching only the names this module writes.
    for name in FIGURES:
        if name not in written_figures:
            (directory / "figures" / f"{name}.png").unlink(missing_ok=True)
    for name in ("aggregates", "optimisability", "compare", "compare_cells"):
        for suffix in (".csv", ".tex"):
            if f"{name}{suffix}" not in tables:
                (directory / "tables" / f"{name}{suffix}").unlink(missing_ok=True)

    md_path, html_path = directory / "report.md", directory / "report.html"
    write_text_atomic(md_path, doc.markdown(directory))
    write_text_atomic(html_path, doc.html(f"Ablation {agg.results.ablation}"))
    return {"report_md": md_path, "report_html": html_path, "figures": written_figures, "tables": tables,
            "findings": found, "errors": errors, "aggregate": agg, "compare": other}


def _compare_formatted(variants: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    rows = []
    for _, r in variants.iterrows():
        row = {"variant": r["variant"]}
        for label in labels:
            row[f"resilience {label}"] = (f"{_num(r[f'resilience {label}'], 2)} "
                                          f"{_interval(r[f'ci_low {label}'], r[f'ci_high {label}'])}").strip()
        row[f"difference ({labels[0]} − {labels[1]})"] = _signed(r["difference"], 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def _compare_cells_formatted(cells: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    rows = []
    for _, r in cells.iterrows():
        row = {"variant": r["variant"], "task": f"{r['task']} ({r['metric']})"}
        for label in labels:
            verdict = r[f"verdict {label}"]
            row[f"normalised {label}"] = ("" if pd.isna(verdict) else
                                          f"{_num(r[f'norm_mean {label}'], 2)} {MARKS.get(verdict, '')}".strip())
            row[f"verdict {label}"] = "" if pd.isna(verdict) else verdict
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def build_report(directory: Path, *, compare: Path | None = None) -> dict:
    """Write report.md, report.html, figures/ and tables/ for the results in `directory`.

    `compare` names a second results directory (e.g. the same ablation at another depth) whose resilience
    scores are shown beside this one's. Returns a dict: report_md, report_html (paths), figures and tables
    (name -> path), findings (list of markdown lines), errors (figures that could not be drawn), aggregate
    (the statistics, an `ablations.analyse.aggregate.Aggregate`) and compare (the other one's, or None)."""
    return _build(Path(directory), compare=compare)


def write_report(directory: Path, *, ablation: str, description: str, baseline: str, command: str) -> Path:
    """Write the report for the runs in `directory` and return the path of `report.md` (kept for `ablate run`;
    the arguments fill in for a missing manifest.json)."""
    return _build(Path(directory), ablation=ablation, description=description, baseline=baseline,
                  command=command)["report_md"]
