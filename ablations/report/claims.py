"""The claims report: for each claim from the talk, the rule, the verdict, the evidence and the caveats.

Why: a claim is tested only if the test could have failed. Each claim below names the part of the `claims`
ablation (conf/ablation/claims.yaml) that holds its evidence, computes its figures and tables from the runs
that were made, and returns `supported`, `not supported` or `inconclusive` by a rule fixed in advance and
printed in the report next to the verdict. Missing evidence (a part not run, a variant missing) gives
`inconclusive`, saying what is missing; it never fails the report.

A claim is a function registered with `@claim(number, title, statement)`; it receives the `Evidence` of a
claims results directory and returns a `Verdict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.report import claim_figures
from ablations.analyse.aggregate import FAILED, load, normalise, read_trials, summarise, t_interval, welch_test
from ablations.analyse.diagnostics import read_diagnostics, read_training_loss

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


def claim(number: int, title: str, statement: str, part: str, rule: str):
    def register(func):
        CLAIMS.append(Claim(number, title, statement, part, rule, func))
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

    def require(self, part: str, variants: list[str]) -> pd.DataFrame:
        runs = self.runs(part)
        missing = [v for v in variants if v not in set(runs["variant"])]
        if missing:
            raise Missing(f"part '{part}' has no runs of {', '.join(missing)}")
        return runs


def _scores(runs: pd.DataFrame, variant: str) -> np.ndarray:
    """Effective scores (a diverged or failed run counts as chance) of a variant, oriented so higher is better."""
    cell = runs[runs["variant"] == variant]
    values = cell["effective"].to_numpy(dtype=float)
    return values if bool(cell["higher_is_better"].iloc[0]) else -values


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


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


# ------------------------------------------------------------------------------------------------ claim 1
@claim(1, "Residual pathways carry the gradient to the first layer",
       "Residual pathways let the gradient reach the first layer undiminished.",
       "depth",
       "r = ‖∇ block 1‖ / ‖∇ block L‖, the median over every measured step and seed of the 6-layer runs. "
       "Supported if r ≥ 0.5 with standard residuals (pre_L6) and r is lower without residuals (no_residual_L6); "
       "not supported if r < 0.5 with residuals, or r without residuals is as high; inconclusive if runs are "
       "missing.")
def gradient_reach(evidence: Evidence) -> Verdict:
    variants = ["pre_L6", "post_L6", "zero_init_L6", "no_residual_L6"]
    evidence.require("depth", ["pre_L6", "no_residual_L6"])
    diag = evidence.diagnostics("depth")
    grads = diag[(diag["metric"] == "grad_norm") & diag["variant"].isin(variants)]
    if grads.empty:
        raise Missing("no gradient diagnostics in part 'depth' (trainer.diagnostics_every=0?)")
    rows = []
    for variant in [v for v in variants if v in set(grads["variant"])]:
        g = grads[grads["variant"] == variant]
        last = int(g["layer"].max()) - 1  # the last block (layer L+1 is the head)
        wide = g.pivot_table(index=["seed", "step"], columns="layer", values="value")
        ratio = (wide[1] / wide[last]).replace([np.inf, -np.inf], np.nan).dropna()
        at_init = ratio[ratio.index.get_level_values("step") == 0]
        rows.append({"variant": variant, "median r": float(ratio.median()), "r at step 0": float(at_init.median()),
                     "min r": float(ratio.min()), "max r": float(ratio.max()), "measurements": len(ratio)})
    table = pd.DataFrame(rows)
    r = dict(zip(table["variant"], table["median r"]))
    if r["pre_L6"] >= 0.5 and r["no_residual_L6"] < r["pre_L6"]:
        verdict = "supported"
    else:
        verdict = "not supported"
    figure = claim_figures.by_depth(diag, "grad_norm", variants, evidence.figures / "gradient_by_depth.png",
                                    ylabel="gradient norm of the layer's parameters", log=True)
    return Verdict(verdict,
                   f"With residuals the first block receives r = {_fmt(r['pre_L6'], 2)} times the last block's "
                   f"gradient (median); without residuals r = {_fmt(r['no_residual_L6'], 2)}.",
                   tables=[("Gradient-norm ratio first/last block (depth part)", table)],
                   figures=[(figure, "Gradient norm by depth at initialisation and at the end of training "
                                     "(layer 0: embedding, last: output head)")] if figure else [],
                   caveats=["Six layers at most; the papers' depth effects grow with dozens of layers.",
                            "Parameter-gradient norms, not gradients with respect to the residual stream."])


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
        reached = g[g["value"] >= 0.5 * final]
        rows.append({"seed": seed, "layer": layer, "initial": float(g["value"].iloc[0]), "final": final,
                     "onset_step": int(reached["step"].iloc[0]) if len(reached) and final > 0 else np.nan})
    return pd.DataFrame(rows)


@claim(2, "Later layers kick in during training",
       "Because residual branches contribute nothing at initialisation, a deep stack first learns a short "
       "algorithm and its later layers kick in progressively during training.",
       "depth",
       "In the zero-initialised 6-layer stack (zero_init_L6), each layer's onset is the first measured step at "
       "which its branch contribution ‖branch‖/‖stream‖ reaches half its final value; ρ is the Spearman "
       "correlation of onset with layer index, per seed. Supported if every branch contributes 0 at step 0 and "
       "the mean ρ ≥ 0.5 with ρ > 0 in every seed; not supported if the mean ρ ≤ 0; otherwise inconclusive.")
def late_layers(evidence: Evidence) -> Verdict:
    evidence.require("depth", ["zero_init_L6"])
    diag = evidence.diagnostics("depth")
    onsets = _onsets(diag, "zero_init_L6")
    if onsets.empty:
        raise Missing("no branch-contribution diagnostics for zero_init_L6")
    rhos = []
    for seed, g in onsets.dropna(subset=["onset_step"]).groupby("seed"):
        rho = g["layer"].corr(g["onset_step"], method="spearman") if g["onset_step"].nunique() > 1 else 0.0
        rhos.append({"seed": seed, "spearman rho": float(rho)})
    rho_table = pd.DataFrame(rhos)
    mean_rho = float(rho_table["spearman rho"].mean()) if len(rho_table) else math.nan
    zero_at_init = bool((onsets["initial"] == 0).all())
    if zero_at_init and mean_rho >= 0.5 and (rho_table["spearman rho"] > 0).all():
        verdict = "supported"
    elif np.isfinite(mean_rho) and mean_rho <= 0:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    standard = _onsets(diag, "pre_L6")
    table = onsets.groupby("layer", as_index=False).agg(initial=("initial", "mean"), final=("final", "mean"),
                                                        onset_step=("onset_step", "mean"))
    if not standard.empty:
        table = table.merge(standard.groupby("layer", as_index=False).agg(
            pre_L6_initial=("initial", "mean"), pre_L6_onset_step=("onset_step", "mean")), on="layer", how="left")
    figure = claim_figures.contribution_heatmaps(diag, ["pre_L6", "zero_init_L6", "no_residual_L6"],
                                                 evidence.figures / "layer_contributions.png")
    return Verdict(verdict,
                   f"Zero-initialised branches start at {'exactly 0' if zero_at_init else 'non-zero'}; the onset "
                   f"of layers' contributions correlates with depth at mean ρ = {_fmt(mean_rho, 2)} over "
                   f"{len(rho_table)} seeds.",
                   tables=[("Branch contribution per layer (zero_init_L6; pre_L6 for comparison), mean over seeds",
                            table), ("Spearman ρ of onset step with layer index, per seed", rho_table)],
                   figures=[(figure, "Branch contribution ‖branch‖/‖stream‖ by layer and training step for standard "
                                     "init, zero-initialised branches and no residuals")] if figure else [],
                   caveats=["With the suite's default (GPT-2) initialisation branches do not start at zero "
                            "(see pre_L6's initial column): the premise holds only for zero-initialised branches.",
                            "Onsets are resolved only to the diagnostics interval (trainer.diagnostics_every)."])


# ------------------------------------------------------------------------------------------------ claim 3
@claim(3, "Pre-norm optimises more easily than post-norm",
       "Pre-norm replaced post-norm because it optimises more easily: post-norm needs learning-rate warmup and "
       "fails more often as depth grows.",
       "depth",
       "gap(L) = mean score of pre-norm − post-norm at L layers without warmup (tuned learning rate, final "
       "seeds); failures = runs that did not learn (diverged, failed, or below 0.1 of the way from chance to "
       "perfect) among a variant's tuning trials and final runs, which span the searched learning rates. Post-norm "
       "is *harder to optimise* if at 6 layers it is significantly worse (Welch p < 0.05) or fails more often than "
       "pre-norm; *depth* makes it worse if its gap or failure excess is larger at 6 layers than at 2; *warmup* "
       "helps it if post-norm fails less often or scores higher with warmup at 6 layers. Supported if harder to "
       "optimise and (depth or warmup); not supported if at 6 layers post-norm is no worse and fails no more often; "
       "otherwise inconclusive.")
def pre_vs_post(evidence: Evidence) -> Verdict:
    names = ["pre_L2", "post_L2", "pre_L6", "post_L6", "pre_L6_warmup", "post_L6_warmup"]
    runs = evidence.require("depth", names)
    rows = []
    for name in names:
        mean, low, high = t_interval(_scores(runs, name))
        bad, total = _failures(evidence, "depth", name)
        trials = evidence.trials("depth")
        best_lr = math.nan
        if trials is not None:
            t = trials[(trials["variant"] == name) & (trials["status"] == "ok")].dropna(subset=["val_score"])
            if len(t):
                best_lr = float(t.loc[t["val_score"].idxmax(), "lr"])
        rows.append({"variant": name, "mean score": mean, "ci_low": low, "ci_high": high,
                     "did not learn": f"{bad}/{total}", "best lr": best_lr})
    table = pd.DataFrame(rows)

    def gap(pre, post):
        a, b = _scores(runs, pre), _scores(runs, post)
        return float(np.mean(a) - np.mean(b)), welch_test(a, b)[0]

    gap6, p6 = gap("pre_L6", "post_L6")
    gap2, _ = gap("pre_L2", "post_L2")
    gap_w, _ = gap("pre_L6_warmup", "post_L6_warmup")
    fail = {n: _failures(evidence, "depth", n)[0] for n in names}
    excess6, excess2 = fail["post_L6"] - fail["pre_L6"], fail["post_L2"] - fail["pre_L2"]
    harder = (gap6 > 0 and np.isfinite(p6) and p6 < ALPHA) or excess6 > 0
    deeper = excess6 > excess2 or (gap6 > gap2 and np.isfinite(p6) and p6 < ALPHA)
    warmup = fail["post_L6_warmup"] < fail["post_L6"] or gap_w < gap6
    if harder and (deeper or warmup):
        verdict = "supported"
    elif gap6 <= 0 and excess6 <= 0:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    tables = [("Pre- vs post-norm by depth and warmup (score: test accuracy of the tuned final runs)", table)]
    trials = evidence.trials("depth")
    if trials is not None and len(trials):
        by_lr = trials[trials["variant"].isin(names)].assign(lr=lambda t: t["lr"].map(lambda v: f"lr {v:.2g}"))
        by_lr = by_lr.pivot_table(index="variant", columns="lr", values="val_score", aggfunc="mean")
        by_lr = by_lr.reindex([n for n in names if n in by_lr.index]).reset_index()
        tables.append(("Validation score of every tuning trial, by the learning rate it tried", by_lr))
    panels = {"2 layers, no warmup": ["pre_L2", "post_L2"], "6 layers, no warmup": ["pre_L6", "post_L6"],
              "6 layers, warmup": ["pre_L6_warmup", "post_L6_warmup"]}
    figure = claim_figures.loss_curves(evidence.curves("depth"), panels, evidence.figures / "pre_vs_post_loss.png")
    return Verdict(verdict,
                   f"Without warmup pre-norm leads post-norm by {_fmt(gap6)} at 6 layers (Welch p = {_fmt(p6)}) and "
                   f"{_fmt(gap2)} at 2 layers; with warmup by {_fmt(gap_w)} at 6 layers. Runs that did not learn: "
                   f"post-norm {fail['post_L2']} at 2 layers, {fail['post_L6']} at 6, {fail['post_L6_warmup']} at 6 "
                   f"with warmup; pre-norm {fail['pre_L2']}, {fail['pre_L6']}, {fail['pre_L6_warmup']}. "
                   f"Harder to optimise: {'yes' if harder else 'no'}; worse with depth: {'yes' if deeper else 'no'}; "
                   f"helped by warmup: {'yes' if warmup else 'no'}.",
                   tables=tables,
                   figures=[(figure, "Training loss of pre- and post-norm at 2 and 6 layers, with and without "
                                     "warmup")] if figure else [],
                   caveats=["The learning rate is tuned per cell (3 trials, up to 3e-2), so a post-norm stack can "
                            "escape a high rate by choosing a lower one: failures over the trials show the cost.",
                            "Two seeds per cell: only large gaps reach significance."])


# ------------------------------------------------------------------------------------------------ claim 4
REMOVALS = {"no_residual": "residual connections", "no_norm": "layer norm", "no_ffn": "the MLP",
            "linear_attention": "softmax (linear attention)"}


@claim(4, "Each component is load-bearing",
       "Softmax attention, residuals, layer norm and the MLP are each load-bearing: removing one breaks something "
       "(without residuals and MLPs, stacked attention collapses token representations toward rank one).",
       "components",
       "A removal is load-bearing if its runs are significantly worse than the baseline (Welch, Holm-corrected "
       "p < 0.05, or `broken`) or below 0.9 of the baseline's normalised score in every seed. Rank collapse is "
       "observed if the token spread after the last layer of attention_only_no_residual is below 0.1 of the "
       "baseline's at initialisation or at the end. Supported if every removal is load-bearing and collapse is "
       "observed; not supported if some removal stays at ≥ 0.98 of the baseline in every seed; otherwise "
       "inconclusive.")
def load_bearing(evidence: Evidence) -> Verdict:
    runs = evidence.require("components", ["baseline", *REMOVALS, "attention_only_no_residual"])
    cells = evidence.cells("components")
    base = runs[runs["variant"] == "baseline"]
    base_mean = float(base["effective"].mean())
    rows, bearing, harmless = [], [], []
    for variant, component in REMOVALS.items():
        cell = runs[runs["variant"] == variant]
        norm = normalise(cell["effective"].to_numpy(float), float(cell["chance"].iloc[0]), base_mean,
                         bool(cell["higher_is_better"].iloc[0]))
        norm = np.atleast_1d(norm)
        verdict = cells.loc[cells["variant"] == variant, "verdict"].iloc[0]
        is_bearing = verdict in ("worse", "broken") or bool((norm < 0.9).all())
        bearing.append(is_bearing)
        harmless.append(bool((norm >= 0.98).all()))
        rows.append({"removed": component, "variant": variant, "normalised score (per seed)":
                     ", ".join(_fmt(n, 2) for n in norm), "cell verdict": verdict, "load-bearing": is_bearing})
    table = pd.DataFrame(rows)
    diag = evidence.diagnostics("components")
    spread = diag[(diag["metric"] == "token_spread")]
    collapse, ratio_text = False, "no rank diagnostics"
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
        ratio_text = "; ".join(f"{r:.3g} at {w}" for w, r in ratios)
    if all(bearing) and collapse:
        verdict = "supported"
    elif any(harmless):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    figure = claim_figures.by_depth(diag, "token_spread", ["baseline", "no_residual", "no_ffn",
                                                           "attention_only_no_residual", "no_norm"],
                                    evidence.figures / "rank_by_depth.png",
                                    ylabel="token spread ‖X − 1x̄ᵀ‖/‖X‖")
    heatmap = evidence.directory / "components" / "figures" / "resilience_heatmap.png"
    figures = [(figure, "Token spread by depth (0: all tokens identical, i.e. rank-one collapse)")] if figure else []
    if heatmap.exists():
        figures.append((heatmap, "Components part: normalised score of each variant (baseline = 1, chance = 0)"))
    return Verdict(verdict,
                   f"{sum(bearing)} of {len(bearing)} removals are load-bearing on this task; token spread of "
                   f"attention without residuals or MLP relative to the baseline: {ratio_text}.",
                   tables=[("Component removals against the baseline (components part)", table)],
                   figures=figures,
                   caveats=["One task (8x8 digit images) at 2 layers and a short budget; a component that is not "
                            "load-bearing here may be on harder tasks.",
                            "Two seeds per cell: significance needs large effects; the per-seed rule covers them."])


# ------------------------------------------------------------------------------------------------ claim 5
@claim(5, "One architecture learns every modality",
       "The same architecture learns every modality (tokens, text, images, audio, video).",
       "modalities",
       "Normalised score = (score − chance) / (perfect − chance) per task (perfect: accuracy 1, 0 bits per "
       "character), mean over seeds. Supported if every modality reaches ≥ 0.5; not supported if any stays below "
       "0.1 (about chance); otherwise inconclusive.")
def modalities(evidence: Evidence) -> Verdict:
    runs = evidence.require("modalities", ["baseline"])
    from tasks import TASKS

    rows = []
    for task, cell in runs.groupby("task", sort=False):
        higher = bool(cell["higher_is_better"].iloc[0])
        chance = float(cell["chance"].iloc[0])
        perfect = 1.0 if higher else 0.0
        norm = normalise(cell["effective"].to_numpy(float), chance, perfect, higher)
        for seed, value, score in zip(cell["seed"], np.atleast_1d(norm), cell["score"]):
            rows.append({"task": task, "modality": TASKS.get(task).modality, "seed": seed, "score": score,
                         "metric": cell["metric"].iloc[0], "chance": chance, "normalised": float(value)})
    per_seed = pd.DataFrame(rows)
    table = per_seed.groupby(["modality", "task", "metric", "chance"], as_index=False, sort=False).agg(
        score=("score", "mean"), normalised=("normalised", "mean"), seeds=("seed", "count"))
    lowest = float(table["normalised"].min())
    verdict = "supported" if lowest >= 0.5 else "not supported" if lowest < 0.1 else "inconclusive"
    per_seed["label"] = per_seed["modality"] + "\n" + per_seed["task"]
    figure = claim_figures.score_bars(per_seed, "label", "normalised", evidence.figures / "modalities.png",
                                      title="Baseline per modality (0: chance, 1: perfect)",
                                      ylabel="normalised score", reference=0.5, reference_label="rule: 0.5")
    return Verdict(verdict,
                   f"The lowest modality reaches {_fmt(lowest, 2)} of the way from chance to perfect "
                   f"({', '.join(f'{m} {v:.2f}' for m, v in zip(table['modality'], table['normalised']))}).",
                   tables=[("The baseline on one task per modality", table)],
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
       "range); a cell that is merely not significantly different is `inconclusive` and does not count. Supported "
       "if at least half are resilient; not supported if fewer than a quarter are; otherwise inconclusive.")
def resilience(evidence: Evidence) -> Verdict:
    evidence.require("components", ["baseline", *MODIFICATIONS])
    cells = evidence.cells("components")
    table = cells[cells["variant"].isin(MODIFICATIONS)][["variant", "mean", "norm_mean", "norm_delta",
                                                         "norm_delta_low", "norm_delta_high", "p_holm",
                                                         "verdict"]].copy()
    table["resilient"] = table["verdict"] == "equivalent"
    share = float(table["resilient"].mean())
    margin = evidence.results("components").margin
    verdict = "supported" if share >= 0.5 else "not supported" if share < 0.25 else "inconclusive"
    others = ", ".join(f"{v} {x}" for v, x in zip(table["variant"], table["verdict"]) if x != "equivalent")
    return Verdict(verdict,
                   f"{int(table['resilient'].sum())} of {len(table)} tuned modifications are shown to neither help "
                   f"nor hurt beyond ±{margin:g} of the baseline (`equivalent`); the others: "
                   f"{others or 'none'}.",
                   tables=[("Tuned modifications against the tuned baseline (components part)", table)],
                   figures=[(p, "Components part: normalised score per variant") for p in
                            [evidence.directory / "components" / "figures" / "resilience_heatmap.png"] if p.exists()],
                   caveats=["Three tuning trials per cell: fair (identical budgets), but coarse.",
                            "Resilience on one small task says little about scale, where small differences compound."])


# ------------------------------------------------------------------------------------------------ claim 7
@claim(7, "Memory modules extend recall",
       "Memory modules may be where the next improvements come from (recall over long contexts).",
       "memory",
       "On in-context recall (induction: continue a sequence that repeats 6-12 tokens back) with attention "
       "limited to a window of 4, too short to see the earlier occurrence, a memory variant "
       "(local_xl, local_knn) is compared with the same attention without memory (local). Supported if some memory "
       "variant scores higher with Welch p < 0.05; not supported if no memory variant's mean is higher; otherwise "
       "inconclusive.")
def memory(evidence: Evidence) -> Verdict:
    runs = evidence.require("memory", ["local", "local_xl", "local_knn"])
    base = _scores(runs, "local")
    rows, better, higher = [], False, False
    for variant in [v for v in ("local", "local_xl", "local_knn", "full") if v in set(runs["variant"])]:
        scores = _scores(runs, variant)
        mean, low, high = t_interval(scores)
        p = welch_test(scores, base)[0] if variant != "local" else math.nan
        delta = float(np.mean(scores) - np.mean(base))
        if variant in ("local_xl", "local_knn"):
            higher |= delta > 0
            better |= delta > 0 and np.isfinite(p) and p < ALPHA
        rows.append({"variant": variant, "mean accuracy": mean, "ci_low": low, "ci_high": high,
                     "delta vs local": delta, "p (Welch)": p})
    table = pd.DataFrame(rows)
    verdict = "supported" if better else "not supported" if not higher else "inconclusive"
    frame = runs[["variant", "score"]].copy()
    figure = claim_figures.score_bars(frame, "variant", "score", evidence.figures / "memory.png",
                                      title="In-context recall beyond the attention window (induction)",
                                      ylabel="test accuracy",
                                      reference=float(runs["chance"].iloc[0]), reference_label="chance")
    return Verdict(verdict,
                   "; ".join(f"{r['variant']} {r['mean accuracy']:.3f}" for r in rows) + ".",
                   tables=[("Induction accuracy with and without memory (memory part)", table)],
                   figures=[(figure, "Test accuracy per variant; dots are seeds")] if figure else [],
                   caveats=["The claim is about the future; this tests only its mechanism: whether memory recovers "
                            "recall that a limited attention window loses, on one synthetic task.",
                            "Learning rate fixed at the task default (not tuned) in this part."])


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
