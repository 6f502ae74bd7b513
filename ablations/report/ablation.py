"""The report of an ablation: what removing each component did, on which tasks, and how sure we are.

`build_report(directory)` reads `runs.csv` (and `trials.csv` and `manifest.json` when present, each run's
result.json, metrics.csv and diagnostics.csv) and writes, all atomically, into the results directory:

    report.md                    findings, tables and methods; figures linked from figures/
    report.html                  the same, self-contained: figures embedded as data: URIs, inline CSS
    figures/*.png                resilience heatmap, performance profile, learning curves (validation metric and
                                 training loss), per-layer diagnostics, cost, LR sensitivity (with trials.csv)
    tables/*.csv, tables/*.tex   summary (per variant x task), resilience (per variant), cost (per variant x
                                 task), aggregates and optimisability when they apply; LaTeX needs booktabs, amssymb

`build_report(directory, compare=other)` writes the comparison of two result sets instead, as a report of its
own (`ablations.report.compare`): `compare-<other>.md` and `.html` beside report.md, which it never touches.

The statistics are in ablations/analyse/aggregate.py and ablations/analyse/stats.py, whose docstrings state every
rule; the report's Methods section repeats them. Documents, tables and the figure canvas are the reporting
toolkit's (ablations/report/toolkit.py), shared with the claims and suite reports.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

import pandas as pd

from ablations import __version__
from ablations.analyse import aggregate as agg_mod
from ablations.analyse import stats
from ablations.analyse.aggregate import MARKS, Aggregate, aggregate, load
from ablations.report.tuning import CAPTION as TUNING_CAPTION
from ablations.report.toolkit import (Document, draw, duration, interval, latex_escape, num, p_equals, p_text,
                                      signed, to_latex, write_document, write_table)

__all__ = ["FIGURES", "build_report", "cost_table", "findings", "latex_escape", "methods", "optimisability_table",
           "provenance", "resilience_table", "robust_table", "runs_table", "summary_table", "to_latex",
           "write_report"]

FIGURES = {
    "resilience_heatmap": "Normalised score per variant and task, and resilience over all tasks",
    "learning_curves": "Per task, the validation metric (top) and the training loss (bottom) during training: the "
                       "mean over the seeds still training at each step with its 95% t-interval, clipped to the "
                       "metric's range; ✗ marks where a run diverged or failed",
    "layer_diagnostics": "Per-layer diagnostics on a fixed validation batch: branch contribution, gradient norm "
                         "and token spread against depth, the median over seeds at the end of training (band: "
                         "the seeds' range) and, dashed, at initialisation",
    "lr_sensitivity": "Validation metric of each tuning trial against its learning rate, one panel per variant and "
                      "task, the baseline's trials in grey; shaded: the lowest and highest 10% of the searched "
                      "range",
    "tuning_curves": TUNING_CAPTION,
    "cost": "Cost per variant: parameters, training FLOPs per run, and training throughput as the median over "
            "runs with the range over runs",
    "performance_profile": "Performance profile: the fraction of runs (averaged over tasks) whose normalised score "
                           "exceeds τ, with 95% stratified-bootstrap bands",
}
#: figures and tables that earlier versions of this report wrote and this one does not (the comparison now has a
#: report of its own): removed when the report is rebuilt, as they would be stale
LEGACY_FIGURES = ("compare_resilience",)
LEGACY_TABLES = ("compare", "compare_cells")


# ------------------------------------------------------------------------------------------- formatting
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
def _sequential(row) -> bool:
    """Whether a sequential look (ablation.seeds=auto) judged the cell: its p is then that look's, not Holm's."""
    return pd.notna(row.get("sequential_difference_alpha", math.nan))


def _p_phrase(row) -> str:
    """The difference test the verdict follows: `p=0.012 Holm`, or under ablation.seeds=auto the judging look's
    Welch p and the level it was compared with (`p=0.00012 Welch at α = 0.00073`)."""
    if _sequential(row):
        value = row["p_value"]  # two significant digits: a look's level is often far below 0.001
        shown = "p=—" if pd.isna(value) else f"p={value:.2g}"
        return f"{shown} Welch at α = {row['sequential_difference_alpha']:.2g}"
    return f"{p_equals(row['p_holm'])} Holm"


def _significant(row) -> bool:
    if _sequential(row):
        return pd.notna(row["p_value"]) and row["p_value"] < row["sequential_difference_alpha"]
    return pd.notna(row["p_holm"]) and row["p_holm"] < agg_mod.ALPHA


def _cell_phrase(row, *, with_p: bool = True) -> str:
    metric = row["metric"].replace("_", " ")
    text = f"{row['task']} ({signed(row['delta'])} {metric}"
    if with_p:
        text += f", {_p_phrase(row)}"
    bad = row["n_diverged"] + row["n_failed"]
    if bad:
        text += f", {bad}/{row['n_runs'] - row['n_pruned']} runs diverged/failed"
    return text + ")"


def interval_level(row) -> str:
    """The coverage of the equivalence interval: 90% (TOST at 0.05), or 1 - 2 alpha_k under ablation.seeds=auto."""
    level = row.get("norm_delta_level") if hasattr(row, "get") else None
    level = 0.9 if level is None or pd.isna(level) else float(level)
    return f"{level:.0%}" if abs(level * 100 - round(level * 100)) < 1e-9 else f"{level:.1%}"


def _norm_interval(row) -> str:
    """`Δ −0.012 [90% −0.041, 0.017]` in normalised units (the equivalence test's interval)."""
    text = f"Δ {signed(row['norm_delta'], 3)} normalised"
    if pd.notna(row["norm_delta_low"]):
        text += (f", {interval_level(row)} CI [{signed(row['norm_delta_low'], 3)}, "
                 f"{signed(row['norm_delta_high'], 3)}]")
    alpha = row.get("sequential_alpha") if hasattr(row, "get") else None
    if alpha is not None and pd.notna(alpha):  # ablation.seeds=auto: the verdict is the sequential look's
        text += (f"; look {int(row['sequential_look'])}, {int(row['sequential_seeds'])} seeds per side, "
                 f"tested at α = {alpha:.3g} (Methods)")
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
        parts = [f"{r['task']} {r['metric'].replace('_', ' ')} {num(r['mean'])}"
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
                        detail = f"normalised {num(row['norm_mean'], 2)}"
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
                + (f"; a significant difference ({_p_phrase(row)}), but inside the margin"
                   if _significant(row) else "") + ")"
                for _, row in rows.iterrows()))
        rows = own[own["verdict"] == "inconclusive"]
        if len(rows):
            clauses.append("inconclusive on " + ", ".join(
                f"{row['task']} ({_norm_interval(row)}, {_p_phrase(row)}; {_seeds_phrase(row)})"
                for _, row in rows.iterrows()))
        rows = own[own["verdict"] == "untested"]
        if len(rows):
            clauses.append("untested on " + ", ".join(
                f"{row['task']} ({signed(row['delta'])} {row['metric'].replace('_', ' ')}; fewer than 2 runs on a "
                f"side)" for _, row in rows.iterrows()))
        if pd.isna(r["resilience"]):
            score = f"resilience {r['ci_note']}"
        else:
            score = f"resilience {num(r['resilience'], 2)}"
            score += (f" {interval(r['ci_low'], r['ci_high'])}" if pd.notna(r["ci_low"])
                      else f" (no interval: {r['ci_note']})")
        judged = len(own)
        score += f"; resilient (equivalent or better) on {int(r['n_resilient'])} of {judged} task{'s' * (judged != 1)}"
        lines.append(f"**{variant}**: {'; '.join(clauses) or 'no runs'}; {score}.")
    if agg.optimisability is not None and len(agg.optimisability):
        medians = agg.optimisability.groupby("variant", sort=False)["decades"].median()
        lines.append(f"Learning-rate tolerance (decades of LR within {agg_mod.LR_TOLERANCE:.0%} of the best trial, "
                     "median over tasks): "
                     + ", ".join(f"{v} {num(d, 2)}" for v, d in medians.items()) + ".")
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
            row[f"{task} ({metric[task]})"] = f"{num(cell['norm_mean'], 2)} {MARKS.get(cell['verdict'], '')}".strip()
        row["resilience [95% CI]"] = f"{num(r['resilience'], 2)} {interval(r['ci_low'], r['ci_high'])}".strip()
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


def summary_table(agg: Aggregate, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Formatted per-cell statistics (one row per variant x task). With `costs` (`cost.cost_summary`), each cell's
    parameters and training FLOPs per token sit beside its score: why, a variant's budget is read with its score
    (ablation.match=params|flops makes them equal; ablations/config/matching.py)."""
    from ablations.report.cost import human

    budget = {} if costs is None else {(c["variant"], c["task"]): c for _, c in costs.iterrows()}
    rows = []
    for _, r in agg.cells.iterrows():
        cost = budget.get((r["variant"], r["task"]))
        rows.append({
            "variant": r["variant"], "task": r["task"],
            "metric": f"{r['metric']} ({'↑' if r['higher_is_better'] else '↓'})",
            "runs": _status_counts(r),
            "mean ± sd": num(r["mean"]) + (f" ± {num(r['std'])}" if pd.notna(r["std"]) else ""),
            "95% CI": interval(r["ci_low"], r["ci_high"], 3),
            **({} if costs is None else {
                "params": "" if cost is None or pd.isna(cost["n_params"]) else f"{int(cost['n_params']):,}",
                "FLOPs/token": "" if cost is None else human(cost["flops_per_token"])}),
            "Δ vs baseline": "" if r["variant"] == agg.baseline else signed(r["delta"]),
            "p (Welch)": "" if r["variant"] == agg.baseline else (p_text(r["p_value"]) if pd.notna(r["p_value"])
                                                                   else f"— ({r['test_note']})"),
            "p (Holm)": "" if r["variant"] == agg.baseline else p_text(r["p_holm"]),
            "normalised [95% CI]": (f"{num(r['norm_mean'], 2)} "
                                    f"{interval(r['norm_ci_low'], r['norm_ci_high'])}").strip(),
            "Δ normalised [90% CI]": "" if r["variant"] == agg.baseline else (
                f"{signed(r['norm_delta'])} {interval(r['norm_delta_low'], r['norm_delta_high'], 3)}"
                + ("" if interval_level(r) == "90%" or pd.isna(r["norm_delta_low"])
                   else f" ({interval_level(r)}, the look's)")).strip(),
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
            "IQM [95% CI]": f"{num(r['iqm'], 2)} {interval(r['iqm_low'], r['iqm_high'])}".strip(),
            f"P(improvement over {agg.baseline}) [95% CI]": "" if base else (
                f"{num(r['p_improvement'], 2)} "
                f"{interval(r['p_improvement_low'], r['p_improvement_high'])}").strip(),
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
            "best val": num(r["best_val"]), "best lr": f"{r['best_lr']:.2g}" if pd.notna(r["best_lr"]) else "—",
            "LR range within tolerance": (f"{r['lr_low']:.2g} – {r['lr_high']:.2g}" if pd.notna(r["lr_low"])
                                          else "—"),
            "width (decades)": num(r["decades"], 2), "decades tried": num(r["decades_tried"], 2),
        })
    return pd.DataFrame(rows).set_index("variant")


def runs_table(agg: Aggregate) -> pd.DataFrame:
    runs = agg.runs
    frame = pd.DataFrame({
        "variant": runs["variant"], "task": runs["task"], "seed": runs["seed"].astype(str),
        "status": runs["status"], "score": runs["score"].map(lambda v: num(v, 4)),
        "steps": runs["steps"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "diverged at": runs["diverged_step"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "seconds": runs["wall_seconds"].map(lambda v: num(v, 1)),
        "params": runs["n_params"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}"),
        "tokens/s": runs["tokens_per_second"].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}"),
        "error": runs["error"].map(lambda e: (e[:80] + "…") if len(e) > 80 else e),
    })
    return frame.set_index("variant")


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
    compute = duration(total) + f" over {len(runs)} runs (sum of wall_seconds)"
    trials = agg.results.trials
    if trials is not None and len(trials):
        compute += f"; tuning: {duration(float(trials['wall_seconds'].sum()))} over {len(trials)} trials"
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items()) if versions else "not recorded"
    return [
        ("Command", "; ".join(f"`{c}`" for c in commands) if commands else "not recorded (no manifest.json)"),
        ("Versions", version_text + f" (report by suite {__version__})"),
        ("Config hash", f"`{manifest['config_hash']}`" if manifest.get("config_hash") else
         "not recorded (no manifest.json)"),
        ("Seeds", (", ".join(map(str, seeds)) or "none")
         + (f" (chosen by data: ablation.seeds=auto, see Methods and sequential.json)" if planned == "auto" else
            f" (the ablation defines {', '.join(map(str, planned))})" if planned and list(planned) != seeds else "")),
        ("Hardware", hw),
        ("Total compute", compute),
        ("Results written", str(manifest.get("created") or "unknown")),
        ("Report written", _dt.datetime.now().astimezone().isoformat(timespec="seconds")),
    ]


def trial_error_lines(agg: Aggregate) -> list[str]:
    """One line per cell whose tuning trials failed or diverged with an error (trials.csv's `error`), and one per
    tuned cell whose final runs used the task's defaults because no trial had a score: a budget spent on errors
    must be seen, not averaged away."""
    trials = agg.results.trials
    lines = []
    if trials is None or not len(trials) or "error" not in trials:
        return lines
    bad = trials[trials["status"].isin(["failed", "diverged"]) & trials["error"].fillna("").astype(str).ne("")]
    for (variant, task), cell in bad.groupby(["variant", "task"], sort=False):
        total = int(((trials["variant"] == variant) & (trials["task"] == task)).sum())
        first = str(cell["error"].iloc[0])
        first = first if len(first) <= 160 else first[:157] + "..."
        lines.append(f"⚠ {len(cell)}/{total} tuning trials of {variant} × {task} ended {', '.join(sorted(set(cell['status'])))} "
                     f"with an error (trials.csv), e.g. trial {int(cell['trial'].iloc[0])}: {first}")
    runs = agg.runs
    if "tuned_params" in runs:
        tuned_cells = set(map(tuple, trials[["variant", "task"]].drop_duplicates().values))
        empty = runs[runs["tuned_params"].fillna("").astype(str).eq("")]
        for variant, task in sorted({(r.variant, r.task) for r in empty.itertuples()} & tuned_cells):
            lines.append(f"⚠ No tuning trial of {variant} × {task} had a validation score: its final runs used "
                         f"the task's default hyper-parameters.")
    return lines


def sequential_methods(agg: Aggregate) -> list[str]:
    """With `ablation.seeds=auto`: the sequential design (looks, alpha spent at each) and what it decided."""
    record = agg.sequence  # None also when a later fixed-seed command made it stale (a data note says so)
    if record is None:
        return []
    return [f"{record.design.methods()} {record.outcome()}"]  # methods() opens with its own bold label


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
        "at the Edge of the Statistical Precipice\", arXiv:2108.13264): the interquartile mean (IQM) of every "
        "normalised run of the variant, pooled over tasks (scipy.stats.trim_mean at 25%); the probability of "
        "improvement, P(a run of the variant scores higher than a run of the baseline on the same task) + "
        "½ P(tie), averaged over tasks (the Mann–Whitney U statistic over n·m); and the performance profile, "
        "the fraction of runs whose normalised score exceeds τ, averaged over tasks. Each has a 95% "
        f"stratified-bootstrap percentile interval (scipy.stats.bootstrap, {agg.n_boot} replicates, every task's "
        "runs resampled on their own, tasks fixed); with 2–5 seeds per task these intervals share the bootstrap's "
        "small-sample narrowness, so read them as descriptive.",
        "**Learning curves**: at each logged step, the mean over the seeds still training and a 95% Student-t "
        "interval for it, intersected with the metric's feasible range (accuracy [0, 1], losses and bits per "
        "character ≥ 0), as for the cells; non-finite values of a diverging run are left out, its last point marked.",
        "**Per-layer diagnostics**: measured on a fixed probe batch of the validation split at step 0, every "
        "`trainer.diagnostics_every` steps and at the end (ablations/execute/diagnostics.py defines each); per run "
        "a block's branches are averaged, then the median over seeds is drawn with the seeds' range.",
        "**Cost**: training FLOPs per run = (6N + 12LTd) FLOPs per token (models/flops.py: N the matmul weights, L "
        "layers, T the training sequence length, d the width) × steps × batch size × world size × T tokens, from "
        "each run's result.json; throughput (tokens/s) as the median and the range over a cell's finished runs.",
        "**Learning-rate tolerance** (with trials.csv): the width in decades of the contiguous learning-rate range "
        f"around the variant's best trial whose trials reach within {agg_mod.LR_TOLERANCE:.0%} of the task's "
        "normalised range (chance to the baseline's best trial) of that best; diverged and failed trials end the "
        "range, pruned trials (stopped early, final value unknown) are skipped.",
    ]


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Formatted per-cell cost (`ablations.report.cost.cost_summary`): parameters, FLOPs per token, tokens and
    FLOPs per run (medians over runs), and tokens/s as a median with its range over runs, never a ratio."""
    from ablations.report.cost import human

    rows = []
    for _, r in summary.iterrows():
        speed = "—" if pd.isna(r["tps_median"]) else (
            f"{human(r['tps_median'])} [{human(r['tps_min'])}–{human(r['tps_max'])}] over {int(r['tps_runs'])} "
            f"run{'s' * (r['tps_runs'] != 1)}")
        rows.append({"variant": r["variant"], "task": r["task"], "runs": int(r["runs"]),
                     "parameters": human(r["n_params"]), "training FLOPs per token": human(r["flops_per_token"]),
                     "tokens per run": human(r["tokens"]), "training FLOPs per run": human(r["flops"]),
                     "tokens/s: median [range]": speed})
    return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()


# ------------------------------------------------------------------------------------------ the report
def _build(directory: Path, *, ablation: str | None = None, description: str | None = None,
           baseline: str | None = None, command: str | None = None) -> dict:
    from ablations.analyse.diagnostics import read_diagnostics
    from ablations.report import figures
    from ablations.report.cost import cost_summary, run_costs
    from ablations.report import tuning
    from ablations.report import ladder
    from ablations.report.damage import section as damage_section
    from ablations.report.search import edge_cells, edge_warnings, search_space

    directory = Path(directory)
    agg = aggregate(load(directory, ablation=ablation, description=description, baseline=baseline))
    costs = run_costs(agg.results)
    space = search_space(agg.results) if agg.optimisability is not None else {}
    edges = edge_cells(agg.optimisability, space.get("lr"))
    errors: list[str] = []
    try:
        diag = read_diagnostics(directory, agg.runs)
    except (OSError, ValueError, KeyError) as error:  # a damaged file (pandas parse errors are ValueErrors)
        diag = read_diagnostics(directory, agg.runs.iloc[:0])
        errors.append(f"diagnostics.csv could not be read: {type(error).__name__}: {error}")
    written_figures: dict[str, Path] = {}
    jobs = [("resilience_heatmap", figures.resilience_heatmap, {}),
            ("learning_curves", figures.learning_curves, {}),
            ("layer_diagnostics", figures.layer_diagnostics, {"diag": diag}),
            ("lr_sensitivity", figures.lr_sensitivity, {"space": space}),
            ("tuning_curves", tuning.tuning_figure, {}),
            ("cost", figures.cost_bars, {"costs": costs}),
            ("performance_profile", figures.performance_profile, {})]
    for name, func, extra in jobs:
        path, error = draw(name, func, agg, directory / "figures" / f"{name}.png", **extra)
        if path is not None:
            written_figures[name] = path
        if error:
            errors.append(error)

    tables: dict[str, Path] = {}
    costs_by_cell = cost_summary(costs)
    summary = summary_table(agg, costs_by_cell)
    res_table = resilience_table(agg)
    ood = ladder.ood_tasks(directory, agg.runs)  # test splits longer than training, marked [OOD]
    summary, res_table = ladder.mark_ood(summary, ood), ladder.mark_ood(res_table, ood)
    write_table(directory, "summary", agg.cells, summary, f"{agg.results.ablation}: per variant and task", tables)
    write_table(directory, "resilience", resilience_export(agg), res_table,
                f"{agg.results.ablation}: normalised score per task (chance 0, baseline 1) and resilience", tables)
    cost_formatted = cost_table(costs_by_cell)
    if len(costs_by_cell):
        write_table(directory, "cost", costs_by_cell, cost_formatted,
                    f"{agg.results.ablation}: parameters, training FLOPs and throughput per variant and task", tables)
    rob_table = robust_table(agg)
    if rob_table is not None:
        write_table(directory, "aggregates", agg.robust, rob_table,
                    f"{agg.results.ablation}: interquartile mean and probability of improvement over tasks", tables)
    opt_table = optimisability_table(agg)
    if opt_table is not None:
        write_table(directory, "optimisability", agg.optimisability, opt_table,
                    f"{agg.results.ablation}: learning-rate tolerance", tables)

    found = findings(agg)
    at = len(found) - len(agg.notes)  # what this report adds goes before the data notes
    found[at:at] = tuning.tuning_findings(agg) + trial_error_lines(agg)
    edge_lines = edge_warnings(edges, space["lr"]) if len(edges) else []
    if edge_lines:
        found.insert(len(found) - len(agg.notes), (
            f"In {len(edges)} of {len(agg.optimisability)} tuned cells the best learning rate sits at the edge of "
            f"the searched range, where the optimum may lie outside it (see Optimisability)."))
    doc = Document()
    title = f"Ablation `{agg.results.ablation}`"
    doc.heading(1, title)
    if agg.results.description:
        doc.para(agg.results.description)
    doc.para(f"Baseline: `{agg.baseline}`. Does removing or changing a component hurt, on which tasks, and how "
             "sure are we? Scores are normalised per task so that chance is 0 and the baseline is 1. Verdicts: "
             + ("▲ better, ▼ worse (Welch t-test, Holm-corrected p < 0.05), ≈ equivalent (the 90% interval of the "
                f"normalised difference lies within the margin of **±{agg.margin:g}**, i.e. ±{agg.margin:.0%} of the "
                "chance-to-baseline range: TOST at α = 0.05; `report.margin` sets it)" if agg.sequence is None else
                "▲ better, ▼ worse (Welch t-test at the judging look's α over the cells), ≈ equivalent (the "
                f"interval of the normalised difference at the look's α lies within the margin of **±{agg.margin:g}**, "
                f"i.e. ±{agg.margin:.0%} of the chance-to-baseline range: TOST; `report.margin` sets it); seeds "
                "chosen by data, each look at its share of α = 0.05 (Methods)")
             + ", ? inconclusive (neither shown: "
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
    if ood:
        doc.para(ladder.ood_sentence(ood))
    if "resilience_heatmap" in written_figures:
        doc.figure(written_figures["resilience_heatmap"], FIGURES["resilience_heatmap"])
    difficulty_figure = ladder.section(doc, directory, agg, tables)  # task labels with levels (copy@length=24)
    if difficulty_figure is not None:
        written_figures["difficulty"] = difficulty_figure
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
             "many seeds per side would decide it."
             + (" Under ablation.seeds=auto a judged cell's p (Welch), difference and interval are those of the look "
                "that judged it, on that look's seeds, and p (Holm) is empty: that look's own level (Methods), not "
                "Holm's correction over all seeds, decided it." if agg.sequence is not None else ""))
    doc.table(summary)
    if opt_table is not None:
        doc.heading(2, "Optimisability")
        lr = space.get("lr")
        searched = (f"The learning rate was searched over [{lr.low:.3g}, {lr.high:.3g}]"
                    f"{' on a log scale' if lr.log else ''} (read from {lr.source}). " if lr is not None else
                    "No searched learning-rate range is recorded, so the edge of the range cannot be checked. ")
        doc.para(f"From trials.csv: how wide a learning-rate range reaches within {agg_mod.LR_TOLERANCE:.0%} of "
                 "the normalised range of each variant's best trial. A narrow range means the variant needs "
                 f"careful tuning. {searched}A best trial in the lowest or highest 10% of that range is flagged: "
                 "its optimum may lie outside the range.")
        doc.table(opt_table)
        if edge_lines:
            doc.items(edge_lines)
        elif lr is not None:
            doc.para("No cell's best learning rate sits at the edge of the searched range.")
        if "lr_sensitivity" in written_figures:
            doc.figure(written_figures["lr_sensitivity"], FIGURES["lr_sensitivity"])
        if "tuning_curves" in written_figures:
            doc.para("How good a variant gets with the tuning effort spent on it: a variant that needs more trials "
                     "shows as such here, instead of winning or losing by the luck of a small budget.")
            doc.figure(written_figures["tuning_curves"], FIGURES["tuning_curves"])
    doc.heading(2, "Training")
    if "learning_curves" in written_figures:
        doc.figure(written_figures["learning_curves"], FIGURES["learning_curves"])
    else:
        doc.para("No learning curves: no run's metrics.csv has a validation row (runs written before every run "
                 "validated at its last step, with trainer.max_steps below trainer.val_every, have none)."
                 if any((directory / str(r)).joinpath("metrics.csv").is_file() for r in agg.runs.get("run_dir", []))
                 else "No learning curves: no run's metrics.csv was found.")
    doc.heading(3, "Inside the layers")
    if "layer_diagnostics" in written_figures:
        doc.para("How much each block's branches add to the residual stream, how large each layer's gradient is, "
                 "and how far the token representations stay apart (rank-one collapse, Dong et al. 2021, "
                 "arXiv:2103.03404, drives token spread to 0), measured on a fixed validation "
                 "batch by `trainer.diagnostics_every`.")
        doc.figure(written_figures["layer_diagnostics"], FIGURES["layer_diagnostics"])
    else:
        doc.para("No per-layer diagnostics: no run has a diagnostics.csv (`trainer.diagnostics_every=0`).")
    doc.heading(3, "Cost")
    doc.para("Compute is training FLOPs per run: the FLOPs per token of models/flops.py (6N + 12LTd; Kaplan et al. "
             "2020, arXiv:2001.08361) times the tokens the run trained (steps × batch × sequence "
             "length): a property of the architecture and the budget, the same on any machine. It counts the "
             "matmul weights and one attention workload for every variant (models/flops.py's \"model FLOPs\"): a "
             "windowed, kernelised or memory-augmented attention costs the same as softmax attention here. Throughput "
             "depends on the machine and on whatever else ran on it, so it is given only as the median over runs "
             "with the range over runs: differences inside that range are noise.")
    if len(cost_formatted):
        doc.table(cost_formatted)
    if "cost" in written_figures:
        doc.figure(written_figures["cost"], FIGURES["cost"])
    damage_figure = damage_section(doc, directory, agg.baseline, tables)  # when `ablate damage` wrote damage.csv
    if damage_figure is not None:
        written_figures["damage"] = damage_figure
    doc.heading(2, "Methods")
    doc.items(methods(agg) + tuning.tuning_methods(agg) + sequential_methods(agg))
    doc.heading(2, "How these results were produced")
    doc.items([f"{k}: {v}" for k, v in provenance(agg, command)])
    doc.para("Tables: " + ", ".join(f"`tables/{name}`" for name in tables) + ".")
    doc.heading(2, "Every run")
    doc.table(runs_table(agg), collapsed=f"{len(agg.runs)} runs")

    # A figure or table that an earlier report wrote and this one does not (no trials.csv any more, or an older
    # version's comparison) would be stale: remove it, touching only the names this module writes.
    for name in [*FIGURES, *LEGACY_FIGURES]:
        if name not in written_figures:
            (directory / "figures" / f"{name}.png").unlink(missing_ok=True)
    for name in ("aggregates", "optimisability", "cost", *LEGACY_TABLES):
        for suffix in (".csv", ".tex"):
            if f"{name}{suffix}" not in tables:
                (directory / "tables" / f"{name}{suffix}").unlink(missing_ok=True)

    md_path, html_path = write_document(doc, directory, "report", f"Ablation {agg.results.ablation}")
    return {"report_md": md_path, "report_html": html_path, "figures": written_figures, "tables": tables,
            "findings": found, "errors": errors, "aggregate": agg, "compare": None, "lr_edges": edges,
            "search_space": space, "costs": costs}


def build_report(directory: Path, *, compare: Path | None = None) -> dict:
    """Write report.md, report.html, figures/ and tables/ for the results in `directory`.

    Returns a dict: report_md, report_html (paths), figures and tables (name -> path), findings (markdown
    lines), errors (figures that could not be drawn), aggregate (the statistics, an
    `ablations.analyse.aggregate.Aggregate`), compare (None), lr_edges (the cells whose best learning rate sits
    at the edge of the searched range), search_space and costs (one row per run).

    With `compare` (a second results directory, e.g. the same ablation at another depth), it writes the
    comparison of the two instead, as a report of its own (`ablations.report.compare.build_compare_report`:
    `compare-<other>.md` and `.html` in `directory`), and leaves this directory's own report.md, report.html,
    figures and tables as they are; the dict then describes the comparison."""
    if compare is not None:
        from ablations.report.compare import build_compare_report

        return build_compare_report(Path(directory), Path(compare))
    return _build(Path(directory))


def write_report(directory: Path, *, ablation: str, description: str, baseline: str, command: str) -> Path:
    """Write the report for the runs in `directory` and return the path of `report.md` (kept for `ablate run`;
    the arguments fill in for a missing manifest.json)."""
    return _build(Path(directory), ablation=ablation, description=description, baseline=baseline,
                  command=command)["report_md"]
