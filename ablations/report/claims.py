"""The claims report: for each claim from the talk, its source, the rule, the verdict, the evidence, the caveats.

Why: a claim is tested only if the test could have failed. Each claim below names the part of the `claims`
ablation (conf/ablation/claims.yaml) that holds its evidence, computes its figures and tables from the runs
that were made, and returns `supported`, `not supported` or `inconclusive` by a rule fixed in advance and
printed in the report next to the verdict. Every rule decides on an effect size with its 95% interval (Welch-
Satterthwaite t-intervals of linear contrasts of seed means, clipped to the feasible range; see
ablations/analyse/stats.py for why a t-interval and not a bootstrap at a handful of seeds) against the report's
equivalence margin (`report.margin`): `supported` when the interval excludes no effect, `not supported` when it
excludes any effect as large as the margin (or the effect points the other way), `inconclusive` only when the
interval holds both, i.e. when the data cannot decide at this budget. Missing evidence (a part not run, a
variant missing) gives `inconclusive`, saying what is missing; it never fails the report.

A claim is a function registered with `@claim(number, title, statement, part, rule, source)`; it receives the
`Evidence` of a claims results directory and returns a `Verdict`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.report import claim_figures
from ablations.analyse.aggregate import (FAILED, load, normalise, read_curves, read_trials, resolve_run_dir,
                                         summarise)
from ablations.analyse.diagnostics import read_diagnostics, read_training_loss
from ablations.analyse.stats import CONFIDENCE, MARGIN, finite, t_interval

VERDICTS = ("supported", "not supported", "inconclusive")
ALPHA = 0.05
CLAIMS: list = []


@dataclass
class Verdict:
    verdict: str
    summary: str                      # one sentence with the numbers the rule used
    tables: list = field(default_factory=list)   # (caption, DataFrame)
    figures: list = field(default_factory=list)  # (path, caption)
    caveats: list = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    number: int
    title: str
    statement: str
    part: str
    rule: str
    func: object
    source: str = ""   # where the claim comes from (the talk, a paper), with its link


def claim(number: int, title: str, statement: str, part: str, rule: str, source: str = ""):
    def register(func):
        CLAIMS.append(Claim(number, title, statement, part, rule, func, source))
        CLAIMS.sort(key=lambda c: c.number)
        return func
    return register


class Missing(Exception):
    """Evidence a claim needs is absent (its verdict is then `inconclusive`, with this message)."""


class Evidence:
    """Lazy access to the parts of a claims results directory: runs, trials, diagnostics, loss curves."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.figures = self.directory / "figures"
        self._cache: dict = {}

    def _part(self, part: str) -> Path:
        path = self.directory / part
        if not (path / "runs.csv").is_file():
            raise Missing(f"part '{part}' has no runs yet ({path}/runs.csv)")
        return path

    def _cached(self, kind: str, part: str, compute):
        """Each part's files are read once per report, however many claims use them."""
        if (kind, part) not in self._cache:
            self._cache[(kind, part)] = compute()
        return self._cache[(kind, part)]

    def results(self, part: str):
        return self._cached("results", part, lambda: load(self._part(part)))

    def runs(self, part: str) -> pd.DataFrame:
        return self.results(part).runs

    def margin(self, part: str) -> float:
        margin = self.results(part).margin
        return margin if math.isfinite(margin) else MARGIN

    def cells(self, part: str) -> pd.DataFrame:
        results = self.results(part)
        return self._cached("cells", part, lambda: summarise(results.runs, results.baseline,
                                                             margin=results.margin))

    def trials(self, part: str) -> pd.DataFrame | None:
        return self._cached("trials", part, lambda: read_trials(self._part(part)))

    def diagnostics(self, part: str) -> pd.DataFrame:
        return self._cached("diag", part, lambda: read_diagnostics(self._part(part), self.runs(part)))

    def curves(self, part: str) -> pd.DataFrame:
        """The training loss of every run of a part: variant, task, seed, status, step, loss."""
        return self._cached("curves", part, lambda: read_training_loss(self._part(part), self.runs(part)))

    def val_curves(self, part: str) -> pd.DataFrame:
        """The validation metric of every run of a part over training: variant, task, seed, step, value."""
        return self._cached("val", part, lambda: read_curves(self.results(part)))

    def part_tasks(self, part: str) -> list[str]:
        """The part's tasks in the order its spec lists them (the manifest's), else as its runs hold them."""
        try:
            manifest = json.loads((self.directory / "manifest.json").read_text())
            listed = [str(t) for t in manifest["ablation"]["parts"][part]["tasks"]]
        except (OSError, ValueError, KeyError, TypeError):
            listed = []
        present = list(dict.fromkeys(self.runs(part)["task"]))
        return [t for t in listed if t in present] + [t for t in present if t not in listed]

    def require(self, part: str, variants: list[str]) -> pd.DataFrame:
        runs = self.runs(part)
        missing = [v for v in variants if v not in set(runs["variant"])]
        if missing:
            raise Missing(f"part '{part}' has no runs of {', '.join(missing)}")
        return runs


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# ------------------------------------------------------------------------------------- effects and decisions
def normalised(runs: pd.DataFrame, variant: str, task: str | None = None) -> np.ndarray:
    """Effective scores (a diverged or failed run counts as chance) of a variant's runs, on the scale chance -> 0,
    perfect -> 1 (accuracy 1, or 0 bits per character), so that effects read alike on every task."""
    cell = runs[(runs["variant"] == variant) & ((runs["task"] == task) if task is not None else True)]
    if cell.empty:
        return np.array([])
    higher = bool(cell["higher_is_better"].iloc[0])
    norm = normalise(cell["effective"].to_numpy(float), float(cell["chance"].iloc[0]), 1.0 if higher else 0.0,
                     higher)
    return np.atleast_1d(np.asarray(norm, dtype=float))


@dataclass(frozen=True)
class Effect:
    """A linear contrast of group means (e.g. mean(a) - mean(b)) with its Welch-Satterthwaite t-interval."""

    estimate: float
    low: float
    high: float

    def text(self, digits: int = 2) -> str:
        return f"{_fmt(self.estimate, digits)} [{_fmt(self.low, digits)}, {_fmt(self.high, digits)}]"


def contrast(groups: list, weights: list[float], *, width: float = math.inf,
             confidence: float = CONFIDENCE) -> Effect:
    """sum_i w_i mean(group_i), with the Welch-Satterthwaite interval (Satterthwaite 1946: the variance of the
    contrast is sum w_i^2 s_i^2 / n_i, its degrees of freedom matched by moments), clipped to [-width, width],
    the feasible range of the contrast. Two groups with weights (1, -1) give `stats.welch_interval`. The
    interval is NaN when a group has fewer than 2 values; zero spread everywhere gives the point."""
    from scipy import stats

    groups = [finite(g) for g in groups]
    if any(len(g) == 0 for g in groups):
        return Effect(math.nan, math.nan, math.nan)
    estimate = float(sum(w * g.mean() for w, g in zip(weights, groups)))
    if any(len(g) < 2 for g in groups):
        return Effect(estimate, math.nan, math.nan)
    parts = [w * w * float(g.var(ddof=1)) / len(g) for w, g in zip(weights, groups)]
    se = math.sqrt(sum(parts))
    if se == 0:
        return Effect(estimate, max(estimate, -width), min(estimate, width))
    df = se ** 4 / sum(v * v / (len(g) - 1) for v, g in zip(parts, groups))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Effect(estimate, max(estimate - half, -width), min(estimate + half, width))


def difference(a, b, width: float = 1.0) -> Effect:
    """mean(a) - mean(b) with its interval (normalised scores: a difference lies in [-1, 1])."""
    return contrast([a, b], [1.0, -1.0], width=width)


def decide(effect: Effect, margin: float) -> str:
    """`supported` when the interval lies above 0 (an effect in the claimed direction), `not supported` when it
    lies below +margin (no effect as large as the margin, or one the other way), else `inconclusive`."""
    if math.isfinite(effect.low) and effect.low > 0:
        return "supported"
    if math.isfinite(effect.high) and effect.high < margin:
        return "not supported"
    return "inconclusive"


def mean_interval(values, bounds=(0.0, 1.0)) -> Effect:
    mean, low, high = t_interval(values, bounds=bounds)
    return Effect(mean, low, high)


#: a run "did not learn" below this normalised score (0: chance, 1: perfect)
LEARNED = 0.1


def _failures(evidence: Evidence, part: str, variant: str) -> tuple[int, int]:
    """(runs that did not learn, total) over a variant's tuning trials and final runs. Not learning is
    diverging, failing, or ending below LEARNED of the way from chance to perfect (a stall at chance, which is
    how a post-norm stack at a high learning rate usually fails: its loss stays finite). A trial is judged by its
    last validation score."""
    runs = evidence.runs(part)
    cell = runs[runs["variant"] == variant]
    higher = bool(cell["higher_is_better"].iloc[0])
    chance = float(cell["chance"].iloc[0])

    def stalled(scores) -> np.ndarray:
        norm = np.atleast_1d(normalise(np.asarray(scores, dtype=float), chance, 1.0 if higher else 0.0, higher))
        return ~(norm >= LEARNED)  # NaN (no score) counts as not learned

    bad = int((cell["status"].isin(FAILED) | stalled(cell["score"].to_numpy())).sum())
    total = len(cell)
    trials = evidence.trials(part)
    if trials is not None:
        t = trials[(trials["variant"] == variant) & (trials["status"] != "pruned")]
        bad += int((t["status"].isin(FAILED) | stalled(t["val_score"].to_numpy())).sum())
        total += len(t)
    return bad, total


def run_time(directory: Path) -> dict:
    """How long a claims run took: `compute` (the summed wall time of every run and tuning trial of every part,
    from runs.csv and trials.csv), `wall`: the wall-clock seconds that the `ablate run` commands which made the
    directory recorded in its manifest.json (and `commands`, how many they were), or, for a directory made before
    commands recorded them, the first run's start to the last run's end (each run's end being its result.json's
    modification time and its start that minus its wall_seconds), None when those timestamps are not the run's
    own, as in a fresh clone, where they would put the whole run under its longest run."""
    from ablations.store.directory import ResultsDir
    from ablations.store.files import command_seconds

    directory = Path(directory)
    manifest = ResultsDir(directory).manifest()  # checked: a corrupted one is a one-line error naming it
    recorded = command_seconds(manifest) if manifest is not None else None
    starts, ends, compute, longest = [], [], 0.0, 0.0
    for runs_csv in sorted(directory.glob("*/runs.csv")):
        runs = pd.read_csv(runs_csv)
        seconds = pd.to_numeric(runs.get("wall_seconds"), errors="coerce").fillna(0.0)
        compute += float(seconds.sum())
        longest = max(longest, float(seconds.max()) if len(seconds) else 0.0)
        for run, wall in zip(runs.to_dict("records"), seconds):
            run_dir = resolve_run_dir(runs_csv.parent, run)
            result = run_dir / "result.json" if run_dir is not None else None
            if result is not None and result.is_file():
                end = result.stat().st_mtime
                starts.append(end - float(wall))
                ends.append(end)
        trials = read_trials(runs_csv.parent)
        if trials is not None and "wall_seconds" in trials:
            compute += float(pd.to_numeric(trials["wall_seconds"], errors="coerce").fillna(0.0).sum())
    if recorded is not None:
        return {"compute": compute, "wall": recorded[0], "commands": recorded[1]}
    wall = (max(ends) - min(starts)) if ends else None
    return {"compute": compute, "wall": wall if wall is not None and wall >= longest > 0 else None, "commands": None}


# ------------------------------------------------------------------------------------------------ claim 1
#: the depth part's variants per init: the papers' (Xavier, as fairseq's Transformer) and GPT-2's N(0, 0.02)
INITS = {"xavier": {"pre_L8": "pre_L8", "post_L8": "post_L8"},
         "normal": {"pre_L8": "pre_L8_gpt2init", "post_L8": "post_L8_gpt2init"}}
INIT_NAMES = {"xavier": "Xavier (the papers' init)", "normal": "GPT-2's N(0, 0.02)"}


def _grad_ratios(diag: pd.DataFrame, variant: str) -> pd.Series:
    """Per seed: log10 of the median over measured steps of ‖∇ block 1‖ / ‖∇ block L‖."""
    g = diag[(diag["metric"] == "grad_norm") & (diag["variant"] == variant)]
    if g.empty:
        return pd.Series(dtype=float)
    last = int(g["layer"].max()) - 1  # the last block (layer L+1 is the head)
    wide = g.pivot_table(index=["seed", "step"], columns="layer", values="value")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (wide[1] / wide[last]).replace([np.inf, -np.inf], np.nan).dropna()
    ratio = ratio[ratio > 0]
    return np.log10(ratio.groupby(level="seed").median())


@claim(1, "Residual pathways carry the gradient to the first layer",
       "Residual pathways let the gradient reach the first layer undiminished.",
       "depth",
       "r = ‖∇ block 1‖ / ‖∇ block 8‖, per seed the median over the measured steps of the 8-layer runs; effects are "
       "in log10 r (decades) with 95% intervals over seeds. Supported if with residuals (pre_L8) the interval of "
       "log10 r lies above log10 0.5 (the first block gets at least half the last one's gradient) and the "
       "effect of residuals, log10 r(pre_L8) − log10 r(no_residual_L8), lies above 0; not supported if the "
       "interval of log10 r(pre_L8) lies below log10 0.5 or the effect lies below the margin (in decades); "
       "otherwise inconclusive. Judged at Xavier init; r under GPT-2's init is shown beside it.",
       "The talk (seed-transcript.txt); He et al. 2016, https://arxiv.org/abs/1512.03385")
def gradient_reach(evidence: Evidence) -> Verdict:
    variants = ["pre_L8", "pre_L8_gpt2init", "post_L8", "zero_init_L8", "no_residual_L8", "no_norm_L8"]
    evidence.require("depth", ["pre_L8", "no_residual_L8"])
    diag = evidence.diagnostics("depth")
    if diag[diag["metric"] == "grad_norm"].empty:
        raise Missing("no gradient diagnostics in part 'depth' (trainer.diagnostics_every=0?)")
    logs = {v: _grad_ratios(diag, v) for v in variants}
    rows = [{"variant": v, "median r": float(10 ** np.median(r)), "log10 r": mean_interval(r, (-math.inf, math.inf))
             .text(), "seeds": len(r)} for v, r in logs.items() if len(r)]
    table = pd.DataFrame(rows)
    reach = mean_interval(logs["pre_L8"].to_numpy(), (-math.inf, math.inf))
    effect = contrast([logs["pre_L8"].to_numpy(), logs["no_residual_L8"].to_numpy()], [1.0, -1.0])
    half = math.log10(0.5)
    margin = evidence.margin("depth")
    if reach.low > half and decide(effect, margin) == "supported":
        verdict = "supported"
    elif reach.high < half or decide(effect, margin) == "not supported":
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    figure = claim_figures.by_depth(diag, "grad_norm", variants, evidence.figures / "gradient_by_depth.png",
                                    ylabel="gradient norm of the layer's parameters", log=True)
    gpt2 = logs["pre_L8_gpt2init"]
    return Verdict(verdict,
                   f"At Xavier init, with residuals the first block receives r = {_fmt(10 ** reach.estimate, 2)} "
                   f"times the last block's gradient (log10 r {reach.text()}); residuals raise log10 r by "
                   f"{effect.text()} decades over no_residual_L8"
                   + (f"; under GPT-2's init r = {_fmt(10 ** float(gpt2.mean()), 2)}" if len(gpt2) else "") + ".",
                   tables=[("Gradient-norm ratio first/last block, 8 layers (depth part)", table)],
                   figures=[(figure, "Gradient norm by depth at initialisation and at the end of training "
                                     "(layer 0: embedding, last: output head)")] if figure else [],
                   caveats=["Eight layers, width 64; the papers' depth effects grow with dozens of layers.",
                            "Parameter-gradient norms, not gradients with respect to the residual stream.",
                            "At learning rate 1e-2 without warmup, as in the part: a residual-free stack may diverge, "
                            "and its diagnostics then stop early."])


# ------------------------------------------------------------------------------------------------ claim 2
def _onsets(diag: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Per seed and layer: the first measured step at which the layer's branch contribution (mean of its
    branches' ratios) reaches half of its final value."""
    d = diag[(diag["metric"] == "branch_ratio") & (diag["variant"] == variant)]
    d = d.groupby(["seed", "layer", "step"], as_index=False)["value"].mean()
    rows = []
    for (seed, layer), g in d.groupby(["seed", "layer"]):
        g = g.sort_values("step")
        final = float(g["value"].iloc[-1])
        reached = g[(g["value"] >= 0.5 * final) & (g["step"] > 0)] if final > 0 else g.iloc[:0]
        rows.append({"seed": seed, "layer": layer, "initial": float(g["value"].iloc[0]), "final": final,
                     "onset_step": int(reached["step"].iloc[0]) if len(reached) else np.nan})
    return pd.DataFrame(rows)


@claim(2, "Later layers kick in during training",
       "Because residual branches contribute nothing at initialisation, a deep stack first learns a short "
       "algorithm and its later layers kick in progressively during training.",
       "depth",
       "In the zero-initialised 8-layer stack (zero_init_L8), each layer's onset is the first measured step at "
       "which its branch contribution ‖branch‖/‖stream‖ reaches half its final value, on the geometric "
       "diagnostics schedule (steps 0, 1, 2, ..., 8, 10, 12, 15, ...: onsets resolved to 25% of their time); "
       "ρ is the Spearman correlation of onset with layer index, per seed. Supported if every branch "
       "contributes 0 at step 0 and the 95% interval of the mean ρ over seeds lies above 0; not supported if "
       "it lies below the margin; otherwise inconclusive.",
       "The talk (seed-transcript.txt)")
def late_layers(evidence: Evidence) -> Verdict:
    evidence.require("depth", ["zero_init_L8"])
    diag = evidence.diagnostics("depth")
    onsets = _onsets(diag, "zero_init_L8")
    if onsets.empty:
        raise Missing("no branch-contribution diagnostics for zero_init_L8")
    rhos = []
    for seed, g in onsets.dropna(subset=["onset_step"]).groupby("seed"):
        rho = g["layer"].corr(g["onset_step"], method="spearman") if g["onset_step"].nunique() > 1 else 0.0
        rhos.append({"seed": seed, "spearman rho": float(rho), "distinct onsets": int(g["onset_step"].nunique())})
    rho_table = pd.DataFrame(rhos, columns=["seed", "spearman rho", "distinct onsets"])
    effect = mean_interval(rho_table["spearman rho"].to_numpy(), (-1.0, 1.0))
    zero_at_init = bool((onsets["initial"] == 0).all())
    decided = decide(effect, evidence.margin("depth"))
    verdict = "inconclusive" if decided == "supported" and not zero_at_init else decided
    standard = _onsets(diag, "pre_L8")
    table = onsets.groupby("layer", as_index=False).agg(initial=("initial", "mean"), final=("final", "mean"),
                                                        onset_step=("onset_step", "mean"))
    if not standard.empty:
        table = table.merge(standard.groupby("layer", as_index=False).agg(
            pre_L8_initial=("initial", "mean"), pre_L8_onset_step=("onset_step", "mean")), on="layer", how="left")
    figure = claim_figures.contribution_heatmaps(diag, ["pre_L8", "zero_init_L8", "no_residual_L8"],
                                                 evidence.figures / "layer_contributions.png")
    steps = sorted(set(onsets["onset_step"].dropna().astype(int)))
    return Verdict(verdict,
                   f"Zero-initialised branches start at {'exactly 0' if zero_at_init else 'non-zero'}; the onset "
                   f"of layers' contributions correlates with depth at mean ρ = {effect.text()} over "
                   f"{len(rho_table)} seeds (onsets at steps {', '.join(map(str, steps[:12]))}"
                   f"{', ...' if len(steps) > 12 else ''}).",
                   tables=[("Branch contribution per layer (zero_init_L8; pre_L8 for comparison), mean over seeds",
                            table), ("Spearman ρ of onset step with layer index, per seed", rho_table)],
                   figures=[(figure, "Branch contribution ‖branch‖/‖stream‖ by layer and training step for standard "
                                     "init, zero-initialised branches and no residuals")] if figure else [],
                   caveats=["With Xavier or GPT-2 init branches do not start at zero (see pre_L8's initial "
                            "column): the premise holds only for zero-initialised branches.",
                            "Onsets are resolved to the diagnostics schedule (trainer.diagnostics_schedule).",
                            "Adam moves every weight by about the learning rate at its first step whatever the "
                            "gradient's size, so at lr 1e-2 a zero-initialised branch can reach much of its final "
                            "contribution within a step or two: the onset then measures the optimiser as much as "
                            "the layer."])


# ------------------------------------------------------------------------------------------------ claim 3
def _score_row(evidence: Evidence, runs: pd.DataFrame, part: str, variant: str) -> dict:
    scores = normalised(runs, variant)
    bad, total = _failures(evidence, part, variant)
    return {"variant": variant, "normalised score": mean_interval(scores).text(), "seeds": len(scores),
            "did not learn": f"{bad}/{total}"}


@claim(3, "Pre-norm optimises more easily than post-norm",
       "Pre-norm replaced post-norm because it optimises more easily: post-norm needs learning-rate warmup and "
       "fails more often as depth grows.",
       "depth",
       "All at learning rate 1e-2 with Adam(0.9, 0.98), normalised scores (chance 0, perfect 1), 10 seeds. "
       "gap(L) = mean pre-norm − post-norm at L layers without warmup, with its 95% interval. Post-norm is "
       "*harder to optimise* if gap(8) lies above 0; *depth* makes it worse if gap(8) − gap(2) lies above 0; "
       "*warmup* helps it if gap(8) − gap(8, 100 warmup steps) lies above 0. Supported if harder to optimise "
       "and (depth or warmup); not supported if gap(8) lies below the margin; otherwise inconclusive. The "
       "verdict is judged at Xavier init (the papers'); under GPT-2's init only gap(8) is measured and "
       "reported beside it.",
       "Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, https://arxiv.org/abs/2002.04745")
def pre_vs_post(evidence: Evidence) -> Verdict:
    names = ["pre_L2", "post_L2", "pre_L8", "post_L8", "pre_L8_warmup", "post_L8_warmup"]
    runs = evidence.require("depth", names)
    s = {n: normalised(runs, n) for n in [*names, "pre_L8_gpt2init", "post_L8_gpt2init"]}
    margin = evidence.margin("depth")
    gap8 = difference(s["pre_L8"], s["post_L8"])
    deeper = contrast([s["pre_L8"], s["post_L8"], s["pre_L2"], s["post_L2"]], [1, -1, -1, 1], width=2.0)
    warmup = contrast([s["pre_L8"], s["post_L8"], s["pre_L8_warmup"], s["post_L8_warmup"]], [1, -1, -1, 1],
                      width=2.0)
    harder = decide(gap8, margin)
    if harder == "supported" and "supported" in (decide(deeper, margin), decide(warmup, margin)):
        verdict = "supported"
    elif harder == "not supported":
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    gpt2 = difference(s["pre_L8_gpt2init"], s["post_L8_gpt2init"])
    effects = pd.DataFrame([
        {"effect": "gap(8): pre − post, 8 layers, no warmup", "init": "xavier", "estimate [95% interval]":
         gap8.text(), "decision": decide(gap8, margin)},
        {"effect": "gap(8) − gap(2): depth", "init": "xavier", "estimate [95% interval]": deeper.text(),
         "decision": decide(deeper, margin)},
        {"effect": "gap(8) − gap(8, warmup): warmup", "init": "xavier", "estimate [95% interval]": warmup.text(),
         "decision": decide(warmup, margin)},
        {"effect": "gap(8): pre − post, 8 layers, no warmup", "init": "normal (GPT-2)",
         "estimate [95% interval]": gpt2.text(), "decision": decide(gpt2, margin)}])
    table = pd.DataFrame([_score_row(evidence, runs, "depth", n) for n in
                          [*names, "pre_L8_gpt2init", "post_L8_gpt2init"] if len(s[n])])
    panels = {"2 layers, no warmup": ["pre_L2", "post_L2"], "8 layers, no warmup": ["pre_L8", "post_L8"],
              "8 layers, warmup": ["pre_L8_warmup", "post_L8_warmup"],
              "8 layers, GPT-2 init": ["pre_L8_gpt2init", "post_L8_gpt2init"]}
    figure = claim_figures.loss_curves(evidence.curves("depth"), panels, evidence.figures / "pre_vs_post_loss.png")
    return Verdict(verdict,
                   f"At Xavier init and lr 1e-2 without warmup pre-norm leads post-norm by {gap8.text()} of the "
                   f"chance-to-perfect range at 8 layers; the gap grows with depth by {deeper.text()} and warmup "
                   f"shrinks it by {warmup.text()}. Under GPT-2's init the 8-layer gap is {gpt2.text()} "
                   f"({decide(gpt2, margin)} at that init).",
                   tables=[("Effects (normalised score differences) and their decisions", effects),
                           ("Scores per variant (normalised, 95% interval over seeds)", table)],
                   figures=[(figure, "Training loss of pre- and post-norm at 2 and 8 layers, with and without "
                                     "warmup, at both inits")] if figure else [],
                   caveats=["One learning rate (1e-2), not tuned: the claim is about that regime; at lower rates "
                            "post-norm may train as well.",
                            "Sorting 10 tokens at width 64 for 300 steps: the papers train 6-layer translation "
                            "models for days."])


# ------------------------------------------------------------------------------------------------ claim 4
#: component -> (part, baseline, removal, where it is needed)
REMOVALS = {"attention": ("attention", "baseline", "no_attention", "sort: a lookup over positions"),
            "the MLP": ("arithmetic", "baseline", "no_ffn", "modular_add: a memorised table"),
            "residual connections": ("depth", "pre_L8", "no_residual_L8", "8 layers"),
            "layer norm": ("depth", "pre_L8", "no_norm_L8", "8 layers")}


@claim(4, "Each component is load-bearing",
       "Softmax attention, residuals, layer norm and the MLP are each load-bearing: removing one breaks something "
       "(without residuals and MLPs, stacked attention collapses token representations toward rank one).",
       "depth",
       "Each component is removed on a task that needs it: attention on sort (attention part), the MLP on "
       "modular addition (arithmetic part), residuals and layer norm at 8 layers (depth part). The drop = "
       "normalised score of the baseline − the removal, with its 95% interval. A removal is load-bearing if "
       "the interval lies above 0, harmless if it lies below the margin. Rank collapse is observed if the token "
       "spread after the last layer of attention_only_no_residual (attention part) is below 0.1 of the "
       "baseline's at initialisation or at the end. Supported if every removal is load-bearing and collapse is "
       "observed; not supported if some removal is harmless; otherwise inconclusive.",
       "The talk (seed-transcript.txt); Dong et al. 2021, https://arxiv.org/abs/2103.03404 (rank collapse)")
def load_bearing(evidence: Evidence) -> Verdict:
    rows, decisions, missing = [], [], []
    for component, (part, base, removed, where) in REMOVALS.items():
        try:
            runs = evidence.require(part, [base, removed])
        except Missing as error:
            missing.append(str(error))
            continue
        drop = difference(normalised(runs, base), normalised(runs, removed))
        decision = decide(drop, evidence.margin(part))
        decisions.append(decision)
        rows.append({"removed": component, "where": where, "part": part, "variant": removed,
                     "drop [95% interval]": drop.text(),
                     "load-bearing": {"supported": "yes", "not supported": "no (harmless)"}.get(decision, "undecided")})
    if not rows:
        raise Missing("; ".join(missing))
    table = pd.DataFrame(rows)
    collapse, ratio_text, figures = False, "no rank diagnostics", []
    try:
        diag = evidence.diagnostics("attention")
    except Missing:
        diag = pd.DataFrame(columns=["metric"])
    spread = diag[diag["metric"] == "token_spread"]
    if not spread.empty:
        deepest = spread[spread["layer"] == spread["layer"].max()]
        first = deepest.groupby(["variant", "seed"])["step"].transform("min") == deepest["step"]
        last = deepest.groupby(["variant", "seed"])["step"].transform("max") == deepest["step"]
        ratios = []
        for when, mask in (("initialisation", first), ("end", last)):
            d = deepest[mask].groupby("variant")["value"].mean()
            if "attention_only_no_residual" in d and "baseline" in d and d["baseline"] > 0:
                ratios.append((when, float(d["attention_only_no_residual"] / d["baseline"])))
        collapse = any(r < 0.1 for _, r in ratios)
        ratio_text = "; ".join(f"{r:.3g} at {w}" for w, r in ratios) or ratio_text
        figure = claim_figures.by_depth(diag, "token_spread", ["baseline", "no_attention",
                                                               "attention_only_no_residual"],
                                        evidence.figures / "rank_by_depth.png",
                                        ylabel="token spread ‖X − 1x̄ᵀ‖/‖X‖")
        if figure:
            figures.append((figure, "Token spread by depth on sort (0: all tokens identical, i.e. rank-one "
                                    "collapse)"))
    if decisions and all(d == "supported" for d in decisions) and not missing and collapse:
        verdict = "supported"
    elif "not supported" in decisions:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    bearing = sum(d == "supported" for d in decisions)
    removals = "; ".join(f"{r['removed']} drop {r['drop [95% interval]']}" for r in rows)
    return Verdict(verdict,
                   f"{bearing} of {len(REMOVALS)} removals are load-bearing where they are needed "
                   f"({removals}); token spread "
                   f"of attention without residuals or MLP relative to the baseline: {ratio_text}."
                   + (f" Missing: {'; '.join(missing)}." if missing else ""),
                   tables=[("Component removals against their baselines, each on a task that needs it", table)],
                   figures=figures,
                   caveats=["Residuals and norms are judged at lr 1e-2 without warmup (the depth part's regime), "
                            "where removing them is hardest on optimisation.",
                            "Three seeds for attention and the MLP, five at depth."])


# ------------------------------------------------------------------------------------------------ claim 5
@claim(5, "One architecture learns every modality",
       "The same architecture learns every modality (tokens, text, images, audio, video).",
       "modalities",
       "Normalised score = (score − chance) / (perfect − chance) per task (perfect: accuracy 1, 0 bits per "
       "character), with its 95% interval over seeds, clipped to [0, 1]. Supported if every modality's mean "
       "reaches 0.5 and its interval lies above 0.1 (clearly above chance); not supported if some modality's "
       "interval lies below 0.1 (about chance); otherwise inconclusive.",
       "The talk (seed-transcript.txt)")
def modalities(evidence: Evidence) -> Verdict:
    runs = evidence.require("modalities", ["baseline"])
    from tasks import TASKS
    from tasks.base import parse_task_label

    rows, summary = [], []
    for task in evidence.part_tasks("modalities"):
        cell = runs[runs["task"] == task]
        norm = normalised(runs, "baseline", task)
        for seed, value, score in zip(cell["seed"], norm, cell["score"]):
            rows.append({"task": task, "modality": TASKS.get(parse_task_label(task)[0]).modality, "seed": seed,
                         "score": score, "metric": cell["metric"].iloc[0], "normalised": float(value)})
        effect = mean_interval(norm)
        summary.append({"modality": rows[-1]["modality"], "task": task, "metric": cell["metric"].iloc[0],
                        "chance": float(cell["chance"].iloc[0]), "normalised [95% interval]": effect.text(),
                        "mean": effect.estimate, "low": effect.low, "high": effect.high, "seeds": len(norm)})
    per_seed, table = pd.DataFrame(rows), pd.DataFrame(summary)
    learns = all(r["mean"] >= 0.5 and np.isfinite(r["low"]) and r["low"] > 0.1 for r in summary)
    at_chance = any(np.isfinite(r["high"]) and r["high"] < 0.1 for r in summary)
    verdict = "supported" if learns else "not supported" if at_chance else "inconclusive"
    per_seed["label"] = per_seed["modality"] + "\n" + per_seed["task"]
    figure = claim_figures.score_bars(per_seed, "label", "normalised", evidence.figures / "modalities.png",
                                      title="Baseline per modality (0: chance, 1: perfect)",
                                      ylabel="normalised score", reference=0.5, reference_label="rule: 0.5")
    return Verdict(verdict,
                   "Normalised score per modality: " + ", ".join(f"{r['modality']} {r['normalised [95% interval]']}"
                                                                for r in summary) + ".",
                   tables=[("The baseline on one task per modality", table.drop(columns=["mean", "low", "high"]))],
                   figures=[(figure, "Normalised score of the baseline per modality; dots are seeds")]
                   if figure else [],
                   caveats=["One small task per modality at its quick default budget; 'learns' means well above "
                            "chance, not state of the art."])


# ------------------------------------------------------------------------------------------------ claim 6
MODIFICATIONS = ["rmsnorm", "rope", "swiglu", "linear_attention"]


@claim(6, "The architecture is resilient to modifications",
       "The architecture is resilient: most modifications neither help nor hurt much once each is tuned fairly.",
       "components",
       "Each modification (RMSNorm, RoPE, SwiGLU, linear attention), tuned with the same budget as the baseline, "
       "is resilient if its cell verdict is `equivalent`: its difference to the baseline is shown (TOST, the 90% "
       "interval) to lie within the report's margin (`report.margin`, default ±0.05 of the chance-to-baseline "
       "range), and not resilient if it is `worse`, `better` or `broken`; a cell that is merely not "
       "significantly different is undecided. Supported if at least half are resilient; not supported if more "
       "than half are not resilient; otherwise inconclusive.",
       "The talk (seed-transcript.txt); Narang et al. 2021, https://arxiv.org/abs/2102.11972")
def resilience(evidence: Evidence) -> Verdict:
    evidence.require("components", ["baseline", *MODIFICATIONS])
    cells = evidence.cells("components")
    table = cells[cells["variant"].isin(MODIFICATIONS)][["variant", "mean", "norm_mean", "norm_delta",
                                                         "norm_delta_low", "norm_delta_high", "p_holm",
                                                         "verdict"]].copy()
    table["resilient"] = table["verdict"].map(lambda v: "yes" if v == "equivalent" else "undecided"
                                              if v == "inconclusive" else "no")
    resilient = float((table["resilient"] == "yes").mean())
    not_resilient = float((table["resilient"] == "no").mean())
    margin = evidence.margin("components")
    verdict = "supported" if resilient >= 0.5 else "not supported" if not_resilient > 0.5 else "inconclusive"
    others = ", ".join(f"{v} {x}" for v, x in zip(table["variant"], table["verdict"]) if x != "equivalent")
    return Verdict(verdict,
                   f"{int((table['resilient'] == 'yes').sum())} of {len(table)} tuned modifications are shown to "
                   f"neither help nor hurt beyond ±{margin:g} of the baseline (`equivalent`); the others: "
                   f"{others or 'none'}.",
                   tables=[("Tuned modifications against the tuned baseline (components part; norm_delta: the "
                            "normalised difference with its interval)", table)],
                   figures=[(p, "Components part: normalised score per variant") for p in
                            [evidence.directory / "components" / "figures" / "resilience_heatmap.png"] if p.exists()],
                   caveats=["Three tuning trials per cell: fair (identical budgets), but coarse.",
                            "Resilience on one small task says little about scale, where small differences compound."])


# ------------------------------------------------------------------------------------------------ claim 7
@claim(7, "Memory modules extend recall",
       "Memory modules may be where the next improvements come from (recall over long contexts).",
       "memory",
       "On in-context recall (induction: continue a sequence that repeats 6-12 tokens back) with attention "
       "limited to a window of 4, too short to see the earlier occurrence, each memory variant (local_xl, "
       "local_knn) is compared with the same attention without memory (local): gain = normalised score of the "
       "memory variant − local, with its 95% interval. Supported if some memory variant's gain lies above 0; "
       "not supported if every memory variant's gain lies below the margin; otherwise inconclusive.",
       "The talk (seed-transcript.txt); Dai et al. 2019, https://arxiv.org/abs/1901.02860; Wu et al. 2022, "
       "https://arxiv.org/abs/2203.08913")
def memory(evidence: Evidence) -> Verdict:
    runs = evidence.require("memory", ["local", "local_xl", "local_knn"])
    margin = evidence.margin("memory")
    base = normalised(runs, "local")
    rows, decisions = [], []
    for variant in [v for v in ("local", "local_xl", "local_knn", "full") if v in set(runs["variant"])]:
        scores = normalised(runs, variant)
        gain = difference(scores, base) if variant != "local" else Effect(math.nan, math.nan, math.nan)
        if variant in ("local_xl", "local_knn"):
            decisions.append(decide(gain, margin))
        rows.append({"variant": variant, "normalised score": mean_interval(scores).text(),
                     "gain vs local [95% interval]": gain.text() if variant != "local" else ""})
    table = pd.DataFrame(rows)
    verdict = "supported" if "supported" in decisions else "not supported" \
        if all(d == "not supported" for d in decisions) else "inconclusive"
    frame = runs[["variant", "score"]].copy()
    figure = claim_figures.score_bars(frame, "variant", "score", evidence.figures / "memory.png",
                                      title="In-context recall beyond the attention window (induction)",
                                      ylabel="test accuracy",
                                      reference=float(runs["chance"].iloc[0]), reference_label="chance")
    return Verdict(verdict,
                   "Gain over local attention alone: " + "; ".join(
                       f"{r['variant']} {r['gain vs local [95% interval]']}" for r in rows
                       if r["variant"] in ("local_xl", "local_knn")) + ".",
                   tables=[("Induction (normalised) with and without memory (memory part)", table)],
                   figures=[(figure, "Test accuracy per variant; dots are seeds")] if figure else [],
                   caveats=["The claim is about the future; this tests only its mechanism: whether memory recovers "
                            "recall that a limited attention window loses, on one synthetic task.",
                            "Learning rate fixed at the task default (not tuned) in this part."])


# ------------------------------------------------------------------------------------------------ claim 8
#: a model "learns" a task when its normalised score reaches this
LEARNS = 0.5
#: a model "solves" induction when its normalised score reaches this (a 1-layer model reaches about half by
#: exploiting the positions of short segments, measured at seed 0: 0.50 accuracy, 2 layers 1.00)
SOLVES = 0.9


@claim(8, "Two attention layers learn induction, one does not",
       "The forward pass is expressive: a 2-layer attention-only transformer forms induction heads and learns "
       "in-context repetition, which a 1-layer one cannot.",
       "induction",
       "Attention-only models (model.ffn=none) of 2 and 1 layers on induction, normalised scores with 95% "
       "intervals over seeds; effect = 2-layer − 1-layer. Supported if the effect lies above 0, the 2-layer "
       "mean reaches 0.9 (it solves the task) and the 1-layer mean stays below it; not supported if the effect "
       "lies below the margin (one layer does as well) or the 2-layer interval lies below 0.9 (two layers do not "
       "solve it either); otherwise inconclusive.",
       "Olsson et al. 2022, In-context Learning and Induction Heads, https://arxiv.org/abs/2209.11895")
def induction(evidence: Evidence) -> Verdict:
    runs = evidence.require("induction", ["attn_only_L2", "attn_only_L1"])
    two, one = normalised(runs, "attn_only_L2"), normalised(runs, "attn_only_L1")
    s2, s1, effect = mean_interval(two), mean_interval(one), difference(two, one)
    margin = evidence.margin("induction")
    if decide(effect, margin) == "supported" and s2.estimate >= SOLVES > s1.estimate:
        verdict = "supported"
    elif decide(effect, margin) == "not supported" or (np.isfinite(s2.high) and s2.high < SOLVES):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    table = pd.DataFrame([{"variant": "attn_only_L2", "layers": 2, "normalised score": s2.text(), "seeds": len(two)},
                          {"variant": "attn_only_L1", "layers": 1, "normalised score": s1.text(), "seeds": len(one)}])
    frame = runs[["variant", "score"]].copy()
    figure = claim_figures.score_bars(frame, "variant", "score", evidence.figures / "induction.png",
                                      title="Attention-only models on induction", ylabel="test accuracy",
                                      reference=float(runs["chance"].iloc[0]), reference_label="chance")
    return Verdict(verdict,
                   f"Two attention-only layers reach {s2.text()} and one layer {s1.text()} of the chance-to-perfect "
                   f"range; the effect of the second layer is {effect.text()}.",
                   tables=[("Attention-only models on induction (induction part)", table)],
                   figures=[(figure, "Test accuracy per model; dots are seeds")] if figure else [],
                   caveats=["The score shows that 2 layers can and 1 layer cannot at this budget; that the 2-layer "
                            "model does it with an induction head (a previous-token head composed with a copying "
                            "head) is Olsson et al.'s finding, not measured here."])


# ------------------------------------------------------------------------------------------------ claim 9
#: a ladder level is "learned" at the first validation step at which its normalised score reaches this
LEVEL_LEARNED = 0.9


def _learned_steps(curves: pd.DataFrame, runs: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Per seed and level: the first validation step at which the normalised validation score reaches
    LEVEL_LEARNED (NaN: not within the budget)."""
    rows = []
    for task in tasks:
        cell = runs[runs["task"] == task]
        if cell.empty:
            continue
        higher, chance = bool(cell["higher_is_better"].iloc[0]), float(cell["chance"].iloc[0])
        for seed, g in curves[curves["task"] == task].groupby("seed"):
            g = g.sort_values("step")
            norm = np.atleast_1d(normalise(g["value"].to_numpy(float), chance, 1.0 if higher else 0.0, higher))
            reached = g["step"].to_numpy()[norm >= LEVEL_LEARNED]
            rows.append({"task": task, "level": tasks.index(task), "seed": seed,
                         "learned_step": float(reached[0]) if len(reached) else math.nan,
                         "last_step": float(g["step"].max())})
    return pd.DataFrame(rows, columns=["task", "level", "seed", "learned_step", "last_step"])


@claim(9, "Short algorithms first, longer ones later",
       "A transformer learns short algorithms first and longer ones later: easier levels of a task are learned "
       "earlier in training.",
       "ladder",
       "On a difficulty ladder (copy at lengths 8, 16, 32, easiest first; one run per level and seed), a level is "
       "learned at the first validation step at which its normalised validation score reaches 0.9 (a level "
       "never learned ranks after every learned one); ρ is the Spearman correlation of learning step with level, "
       "per seed. Supported if the 95% interval of the mean ρ lies above 0; not supported if it lies below the "
       "margin; otherwise inconclusive (also when no level is learned).",
       "The talk (seed-transcript.txt)")
def short_first(evidence: Evidence) -> Verdict:
    runs = evidence.require("ladder", ["baseline"])
    tasks = evidence.part_tasks("ladder")
    if len(tasks) < 2:
        raise Missing("part 'ladder' needs at least two levels")
    steps = _learned_steps(evidence.val_curves("ladder"), runs, tasks)
    if steps.empty or steps["learned_step"].isna().all():
        raise Missing("no level of the ladder reaches 0.9 of the way from chance to perfect on validation")
    rhos = []
    for seed, g in steps.groupby("seed"):
        rank = g["learned_step"].fillna(g["last_step"].max() + 1.0)  # not learned: after every learned level
        rho = g["level"].corr(rank, method="spearman") if rank.nunique() > 1 else 0.0
        rhos.append({"seed": seed, "spearman rho": float(rho)})
    rho_table = pd.DataFrame(rhos)
    effect = mean_interval(rho_table["spearman rho"].to_numpy(), (-1.0, 1.0))
    verdict = decide(effect, evidence.margin("ladder"))
    table = steps.groupby(["level", "task"], as_index=False).agg(
        mean_learned_step=("learned_step", "mean"), learned=("learned_step", lambda s: f"{s.notna().sum()}/{len(s)}"))
    return Verdict(verdict,
                   "Steps to learn each level (mean over seeds that learned it): " + ", ".join(
                       f"{t} {_fmt(m, 0)}" for t, m in zip(table["task"], table["mean_learned_step"]))
                   + f"; Spearman ρ of learning step with level {effect.text()} over {len(rho_table)} seeds.",
                   tables=[("When each level of the ladder is learned (ladder part)", table),
                           ("Spearman ρ of learning step with level, per seed", rho_table)],
                   caveats=["Each level is a separate run: this measures that easier levels are learned in fewer "
                            "steps, not that one model trained on a mixture learns them in that order.",
                            "Resolved to the validation interval of the part (trainer.val_every)."])


# ------------------------------------------------------------------------------------------------ claim 10
@claim(10, "Weight decay makes modular addition generalise (grokking)",
       "With weight decay a small transformer trained on part of a modular-addition table generalises to the "
       "pairs it never saw; without weight decay, in the same budget, it memorises and does not.",
       "arithmetic",
       "Addition modulo 23 trained on 60% of the pairs; normalised test score (held-out pairs) with weight decay "
       "1 (baseline) and without (no_weight_decay), 95% intervals over seeds; effect = with − without. "
       "Supported if the effect lies above 0, the mean with weight decay reaches 0.5 (it generalises) and the "
       "mean without stays below it; not supported if the effect lies below the margin (no weight decay "
       "generalises as well) or the interval with weight decay lies below 0.5 (it does not generalise either); "
       "otherwise inconclusive.",
       "Power et al. 2022, Grokking, https://arxiv.org/abs/2201.02177")
def grokking(evidence: Evidence) -> Verdict:
    runs = evidence.require("arithmetic", ["baseline", "no_weight_decay"])
    decay, none = normalised(runs, "baseline"), normalised(runs, "no_weight_decay")
    sd, sn, effect = mean_interval(decay), mean_interval(none), difference(decay, none)
    margin = evidence.margin("arithmetic")
    if decide(effect, margin) == "supported" and sd.estimate >= LEARNS > sn.estimate:
        verdict = "supported"
    elif decide(effect, margin) == "not supported" or (np.isfinite(sd.high) and sd.high < LEARNS):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    table = pd.DataFrame([{"variant": "baseline", "weight decay": 1.0, "normalised test score": sd.text()},
                          {"variant": "no_weight_decay", "weight decay": 0.0, "normalised test score": sn.text()}])
    tables = [("Held-out modular addition with and without weight decay (arithmetic part)", table)]
    curves = evidence.val_curves("arithmetic")
    if not curves.empty:
        by_step = curves[curves["variant"].isin(["baseline", "no_weight_decay"])].pivot_table(
            index="step", columns="variant", values="value", aggfunc="mean").reset_index()
        tables.append(("Validation accuracy over training, mean over seeds (delayed generalisation shows as a late "
                       "rise)", by_step))
    return Verdict(verdict,
                   f"With weight decay the held-out pairs reach {sd.text()} of the chance-to-perfect range, without "
                   f"{sn.text()}; effect of weight decay {effect.text()}.",
                   tables=tables,
                   caveats=["Grokking proper is generalisation long after the training set is memorised; this rule "
                            "tests the budget-bounded contrast (with vs without weight decay), and the validation "
                            "curve shows whether generalisation came late.",
                            "One modulus (23) and one training fraction (0.6; at 0.4 neither generalised within "
                            "1500 steps at seed 0)."])


def evaluate(directory: Path) -> list[tuple[Claim, Verdict]]:
    """Every registered claim's verdict on a claims results directory."""
    evidence = Evidence(directory)
    results = []
    for item in CLAIMS:
        try:
            verdict = item.func(evidence)
        except Missing as missing:
            verdict = Verdict("inconclusive", f"Missing evidence: {missing}.")
        assert verdict.verdict in VERDICTS
        results.append((item, verdict))
    return results
