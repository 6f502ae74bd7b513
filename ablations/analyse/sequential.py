"""Enough seeds, chosen by data: the sequential rule behind `ablation.seeds=auto`, with its error rate controlled.

Why sequential: at a fixed number of seeds most cells either waste seeds (a large effect is clear at 3) or end
`inconclusive` (a small one needs 8 or more). Adding seeds only where the verdict is still open spends the compute
where it decides something. But looking at the data and adding seeds until a test passes (optional stopping)
inflates a fixed-sample test's error rate: each look is one more chance for a false verdict. So every look tests
at its own share of alpha, and the shares sum to at most alpha.

**The design** (`Design`): every cell starts with `min_seeds` seeds per side (the variant and the baseline on
its task); after each look, the cells still undecided get `step` more seeds, and so does the baseline of their
task (a Welch test's standard error shrinks only when both sides grow), up to `max_seeds`. The looks are
planned in advance, n_1 = min_seeds, n_{k+1} = min(n_k + step, max_seeds), so the alpha of each look is fixed
before any data are seen.

**Alpha spending.** The information fraction of look k is t_k = n_k / max_seeds (seeds per side). The cumulative
alpha spent by look k is the Pocock-type spending function alpha(t) = alpha * ln(1 + (e - 1) t) of Lan & DeMets
(1983), and look k tests at the increment alpha_k = alpha(t_k) - alpha(t_{k-1}). The increments sum to
alpha(1) = alpha, so by Bonferroni's inequality over the looks the probability of a false verdict at any look
is at most alpha, whatever the correlation between looks. This is conservative: exact group-sequential
boundaries (Lan & DeMets' recursive integration) would use that correlation and be less strict, but they assume
normal test statistics with independent increments, which a Welch t at 3-8 seeds per side is not. Why
Pocock-type and not O'Brien-Fleming-type: with few seeds most cells should stop at the first look, and the
O'Brien-Fleming-type function 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)) spends only 0.0014 of 0.05 at 3 of 8 seeds,
where a Welch t with about 4 degrees of freedom would need t > 9 to stop; the Pocock-type function spends
about half of alpha there.

**A look** judges each undecided cell with the report's own statistics (`aggregate.summarise` on the seeds
below n_k of both sides), in the report's order: `broken` (its descriptive rule: no test, no alpha);
`equivalent` when the two one-sided tests (TOST, Schuirmann 1987) at alpha_k show the normalised difference
inside +-margin, i.e. the (1 - 2 alpha_k) Welch interval lies inside it; `better` / `worse` when Welch's test
has p < alpha_k / m, Bonferroni over the m non-baseline cells of the design (a fixed family: Holm over the cells
still open at a look would let earlier stops shrink the family by looking at the data); else the cell stays
open, and at the last look it is `inconclusive`. A decided cell gets no more seeds and keeps its verdict.

**What is controlled**: P(any false `better`/`worse` among the m cells) <= alpha, since it is at most the sum
over looks and cells of alpha_k / m; P(a false `equivalent` for a cell whose true difference is at least the
margin) <= alpha per cell, as in the fixed-sample verdicts (whose TOST is not corrected across cells either).
Both hold to the extent that Welch's test and TOST hold their level at each look (normal scores within a cell).

The sequence is a pure function of the results and the design (`replay`): the same runs give the same looks,
the same seeds added and the same verdicts, so an interrupted `ablate run` resumes to the same end. `ablate run`
records it in `<results>/sequential.json` (`RECORD`); `read` loads it, `overlay` puts its verdicts into the cells
table, and `Design.methods` / `Sequence.outcome` say in words what was done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablations.analyse.stats import ALPHA, MARGIN

RECORD = "sequential.json"   # the sequence `ablate run ablation.seeds=auto` ran, in its results directory
SPENDING = "Pocock-type alpha spending, alpha * ln(1 + (e - 1) t) (Lan & DeMets 1983)"
CITATION = ("Lan, K. K. G. & DeMets, D. L. (1983). Discrete sequential boundaries for clinical trials. "
            "Biometrika 70(3), 659-663.")
DECIDED = ("better", "worse", "equivalent", "broken")


def pocock_spending(t: float, alpha: float = ALPHA) -> float:
    """Cumulative alpha spent by information fraction t in [0, 1]."""
    t = min(max(float(t), 0.0), 1.0)
    return alpha * math.log(1.0 + (math.e - 1.0) * t)  # Lan & DeMets 1983, Biometrika 70:659, alpha_2*(t)


@dataclass(frozen=True)
class Design:
    """A planned sequential design (see the module docstring). `n_cells` is the family of the difference tests:
    the non-baseline cells the design decides."""

    min_seeds: int
    max_seeds: int
    step: int
    n_cells: int
    alpha: float = ALPHA
    margin: float = MARGIN

    def __post_init__(self):
        if not (2 <= self.min_seeds <= self.max_seeds and self.step >= 1):
            raise ValueError(f"a sequential design needs 2 <= min_seeds <= max_seeds and step >= 1, got "
                             f"{self.min_seeds}, {self.max_seeds}, {self.step}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per side at each planned look."""
        looks = [self.min_seeds]
        while looks[-1] < self.max_seeds:
            looks.append(min(looks[-1] + self.step, self.max_seeds))
        return tuple(looks)

    @property
    def spent(self) -> tuple[float, ...]:
        """Cumulative alpha spent by each look: alpha(n_k / max_seeds)."""
        return tuple(pocock_spending(n / self.max_seeds, self.alpha) for n in self.looks)

    @property
    def alphas(self) -> tuple[float, ...]:
        """The alpha each look tests at (TOST per cell): the increments of the spending function. They sum to
        `spent[-1]` = alpha (Bonferroni's inequality over the looks)."""
        spent = (0.0, *self.spent)
        return tuple(b - a for a, b in zip(spent, spent[1:]))

    def difference_alpha(self, look: int) -> float:
        """The level of each cell's Welch test at `look` (0-based): the look's alpha over the family."""
        return self.alphas[look] / max(1, self.n_cells)

    def to_dict(self) -> dict:
        return {"min_seeds": self.min_seeds, "max_seeds": self.max_seeds, "step": self.step,
                "n_cells": self.n_cells, "alpha": self.alpha, "margin": self.margin, "spending": SPENDING,
                "looks": list(self.looks), "alphas": list(self.alphas)}

    @classmethod
    def from_dict(cls, data: dict) -> "Design":
        return cls(int(data["min_seeds"]), int(data["max_seeds"]), int(data["step"]), int(data["n_cells"]),
                   float(data["alpha"]), float(data["margin"]))

    def methods(self) -> str:
        """The design in words, for a report's Methods section."""
        looks = ", ".join(str(n) for n in self.looks)
        alphas = ", ".join(f"{a:.4f}" for a in self.alphas)
        m = max(1, self.n_cells)
        cells = f"{m} cell{'s' if m != 1 else ''}"
        return (
            f"**Seeds chosen by data** (`ablation.seeds=auto`). Every cell started with {self.min_seeds} seeds per "
            f"side; after each look, the cells not yet decided got {self.step} more seeds, and so did the baseline "
            f"of their task, up to {self.max_seeds} (looks at {looks} seeds per side). To keep the error rate of "
            f"this sequential design, each look tested at its share of alpha = {self.alpha:g} from the Pocock-type "
            f"spending function alpha·ln(1 + (e − 1)·t) of Lan & DeMets (1983), t = seeds / {self.max_seeds}: "
            f"{alphas} (summing to {sum(self.alphas):.4f}). At each look a cell was `equivalent` when TOST at the "
            f"look's alpha showed its normalised difference inside ±{self.margin:g}, `better` or `worse` when "
            f"Welch's test had p below the look's alpha divided by the {cells} of the design (Bonferroni), and "
            f"`broken` by the usual rule; a decided cell got no more seeds and kept its verdict, and a cell still "
            f"open at {self.max_seeds} seeds is `inconclusive`. By Bonferroni's inequality over looks (and over "
            f"cells for differences) the probability of any false `better`/`worse` is at most {self.alpha:g}, and "
            f"of a false `equivalent` at most {self.alpha:g} per cell, whatever the correlation between looks "
            f"(conservative: exact group-sequential boundaries assume normal statistics that a few seeds do not "
            f"give). These verdicts are the sequential ones; a fixed-sample test of all the seeds a cell ended "
            f"with would not keep its level after optional stopping. The normalised difference and interval shown "
            f"for such a cell are those of the look that judged it, on that look's seeds: the (1 − 2·alpha_k) Welch "
            f"interval, whose lying inside the margin is TOST at the look's alpha_k, so its level is stated per "
            f"cell rather than a fixed 90%; the seeds that would decide an undecided cell are estimated at the "
            f"alphas a further look would be tested at (after the last planned look, the last look's share: the "
            f"plan has no alpha left).")


@dataclass(frozen=True)
class Decision:
    """The verdict of one cell, the look that gave it (1-based), its seeds per side then, and the levels used."""

    verdict: str
    look: int
    seeds: int
    alpha: float
    difference_alpha: float


def _number(value) -> float | None:
    """A JSON-safe float (NaN and missing as None)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class Sequence:
    """The state of a design over its cells (variant, task): which looks were made, what each decided, and which
    cells are still open. `observe` makes the next look on a runs table that holds its seeds."""

    design: Design
    baseline: str
    cells: list[tuple[str, str]]
    decisions: dict[tuple[str, str], Decision] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @property
    def look(self) -> int:
        """The 0-based index of the next look (the number of looks made)."""
        return len(self.history)

    def pending(self) -> list[tuple[str, str]]:
        """The cells still open, in the design's order."""
        return [c for c in self.cells if c not in self.decisions]

    def done(self) -> bool:
        """The first look is always made (it gives every cell, and a baseline-only ablation, its minimum seeds);
        after it, done when every cell is decided or the last planned look was made."""
        return self.look > 0 and (not self.pending() or self.look >= len(self.design.looks))

    def next_seeds(self) -> int:
        """Seeds per side at the next look."""
        return self.design.looks[self.look]

    def seeds(self) -> dict[tuple[str, str], int]:
        """Seeds per side each variant cell and each task's baseline got (the largest look it took part in);
        the baseline's cells are keyed (baseline, task)."""
        given: dict[tuple[str, str], int] = {}
        for look in self.history:
            n = look["seeds"]
            for entry in look["cells"]:
                for key in ((entry["variant"], entry["task"]), (self.baseline, entry["task"])):
                    given[key] = max(given.get(key, 0), n)
        return given

    def _look_runs(self, runs: pd.DataFrame, n: int) -> pd.DataFrame:
        from ablations.analyse.aggregate import clean_runs

        if "effective" not in runs.columns:
            runs = clean_runs(runs)
        pending = self.pending()
        tasks = {t for _, t in pending}
        wanted = set(pending) | {(self.baseline, t) for t in tasks}
        in_look = np.array([key in wanted for key in zip(runs["variant"], runs["task"])], dtype=bool)
        seed = pd.to_numeric(runs["seed"], errors="coerce")
        return runs[in_look & (seed < n).to_numpy(dtype=bool, na_value=False)]

    def missing(self, runs: pd.DataFrame) -> list[str]:
        """The runs the next look needs that `runs` lacks ('variant x task seed s'); empty when it can be made."""
        if self.done():
            return []
        n = self.next_seeds()
        return self._lacking(self._look_runs(runs, n), n)

    def _lacking(self, look: pd.DataFrame, n: int) -> list[str]:
        """`missing`, given the look's runs (`_look_runs` at its `n` seeds)."""
        have = {(v, t, int(s)) for v, t, s in zip(look["variant"], look["task"], look["seed"])}
        pending = self.pending()
        sides = list(dict.fromkeys([*[(self.baseline, t) for _, t in pending], *pending]))
        return [f"{v} x {t} seed {s}" for v, t in sides for s in range(n) if (v, t, s) not in have]

    def observe(self, runs: pd.DataFrame) -> dict[tuple[str, str], str | None]:
        """Make the next look on `runs` (runs.csv of the ablation, any seeds: only those below the look's count
        are read); returns each open cell's verdict, None where it stays open. Raises ValueError when a run the
        look needs is missing: a look on part of its data would not be the planned one."""
        if self.done():
            raise ValueError("the sequential design is finished: no look is left")
        n = self.next_seeds()
        look = self._look_runs(runs, n)
        lacking = self._lacking(look, n)
        if lacking:
            raise ValueError(f"look {self.look + 1} needs runs that are missing: {', '.join(lacking[:5])}"
                             f"{' ...' if len(lacking) > 5 else ''}")
        return self._observe(look)

    def _observe(self, look: pd.DataFrame) -> dict[tuple[str, str], str | None]:
        """`observe`, given the look's runs (`_look_runs` at the next look's seeds), none of them lacking. Why
        apart: `replay` selects a look's runs once, to check them and to judge them (a Monte Carlo replays
        thousands of looks)."""
        from ablations.analyse.aggregate import summarise

        k, n = self.look, self.next_seeds()
        alpha, alpha_difference = self.design.alphas[k], self.design.difference_alpha(k)
        last = k == len(self.design.looks) - 1
        pending = self.pending()
        table = (summarise(look, self.baseline, alpha=alpha, margin=self.design.margin).set_index(["variant", "task"])
                 if pending else None)
        verdicts: dict[tuple[str, str], str | None] = {}
        entries = []
        for cell in pending:
            row = table.loc[cell] if table is not None and cell in table.index else None
            verdict = _judge(row, alpha_difference)
            if verdict is None and last:  # the last look: open is inconclusive (untested without 2 runs a side)
                verdict = "untested" if row is not None and row["verdict"] == "untested" else "inconclusive"
            verdicts[cell] = verdict
            if verdict is not None:
                self.decisions[cell] = Decision(verdict, k + 1, n, alpha, alpha_difference)
            entries.append({"variant": cell[0], "task": cell[1], "verdict": verdict or "open",
                            **{key: _number(row[key]) if row is not None else None
                               for key in ("p_value", "p_tost", "norm_delta", "norm_delta_low",
                                           "norm_delta_high")}})
        self.history.append({"look": k + 1, "seeds": n, "alpha": alpha, "difference_alpha": alpha_difference,
                             "cells": entries})
        return verdicts

    def judged(self) -> set[tuple[str, str, int]]:
        """The runs (variant, task, seed) the looks made so far read: at each look, seeds below its count of the
        cells it judged and of their tasks' baselines (`missing` made sure each was there)."""
        runs: set[tuple[str, str, int]] = set()
        for look in self.history:
            for entry in look["cells"]:
                for variant in (entry["variant"], self.baseline):
                    runs.update((variant, entry["task"], s) for s in range(int(look["seeds"])))
        return runs

    def stale(self, runs: pd.DataFrame) -> list[str]:
        """The runs of the sequence's cells (and of their tasks' baselines) that no look judged and the next look
        will not judge either ('variant x task seed s'): runs a later command added (`seed=3`, a list of seeds).
        Non-empty means the recorded verdicts no longer describe the directory's runs."""
        tasks = {t for _, t in self.cells}
        covered = set(self.cells) | {(self.baseline, t) for t in tasks}
        judged = self.judged()
        if not self.done():  # an unfinished look's runs are awaited, not stale
            n = self.next_seeds()
            for v, t in self.pending():
                judged.update((side, t, s) for side in (v, self.baseline) for s in range(n))
        seed = pd.to_numeric(runs["seed"], errors="coerce")
        extra = sorted({(str(v), str(t), int(s)) for v, t, s in zip(runs["variant"], runs["task"], seed)
                        if (v, t) in covered and pd.notna(s) and (v, t, int(s)) not in judged})
        return [f"{v} x {t} seed {s}" for v, t, s in extra]

    def next_alphas(self) -> tuple[float, float]:
        """(TOST alpha, difference-test alpha) a further look would test at: the next planned look's, or, after
        the last one, the last look's share again (the plan has no alpha left; a longer plan would spend at about
        that rate), for `seeds_to_decide` of the cells still undecided."""
        k = min(self.look, len(self.design.looks) - 1)
        return self.design.alphas[k], self.design.difference_alpha(k)

    # ------------------------------------------------------------------------------------------- reporting
    def rows(self) -> list[dict]:
        """One per cell: its sequential verdict ('open' while undecided), the look (1-based) and seeds per side at
        the decision, the levels it was tested at, and `seeds_given`: the seeds per side it ran."""
        given = self.seeds()
        rows = []
        for cell in self.cells:
            d = self.decisions.get(cell)
            rows.append({"variant": cell[0], "task": cell[1], "verdict": d.verdict if d else "open",
                         "look": d.look if d else None, "seeds": d.seeds if d else None,
                         "alpha": d.alpha if d else None, "difference_alpha": d.difference_alpha if d else None,
                         "seeds_given": given.get(cell)})
        return rows

    def frame(self) -> pd.DataFrame:
        """`rows` as a table."""
        return pd.DataFrame(self.rows(), columns=["variant", "task", "verdict", "look", "seeds", "alpha",
                                                  "difference_alpha", "seeds_given"])

    def outcome(self) -> str:
        """What the sequence did, in one sentence."""
        if not self.cells:
            return f"No cell to decide: the baseline ran {self.design.min_seeds} seeds per task."
        by_seeds: dict[int, int] = {}
        for d in self.decisions.values():
            if d.verdict in DECIDED:
                by_seeds[d.seeds] = by_seeds.get(d.seeds, 0) + 1
        parts = [f"{count} at {n} seeds" for n, count in sorted(by_seeds.items())]
        inconclusive = sum(d.verdict not in DECIDED for d in self.decisions.values())
        open_ = len(self.pending())
        decided = sum(by_seeds.values())
        text = f"Of {len(self.cells)} cells, {decided} {'was' if decided == 1 else 'were'} decided"
        text += f" ({', '.join(parts)})" if parts else ""
        if inconclusive:
            text += f"; {inconclusive} stayed undecided (inconclusive) at {self.design.max_seeds} seeds"
        if open_:
            text += f"; {open_} still open after look {self.look} of {len(self.design.looks)} (the run is unfinished)"
        return text + "."

    def to_dict(self) -> dict:
        """The record (`RECORD`): plain JSON values only, and nothing that depends on when it was written, so the
        same runs give the same file."""
        return {
            "design": self.design.to_dict(), "citation": CITATION, "baseline": self.baseline,
            "cells": self.rows(),
            "baseline_seeds": {t: n for (v, t), n in self.seeds().items() if v == self.baseline},
            "looks": self.history,
            "judged": [list(run) for run in sorted(self.judged())],  # the runs its verdicts read (see `stale`)
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Sequence":
        design = Design.from_dict(data["design"])
        cells = [(str(c["variant"]), str(c["task"])) for c in data["cells"]]
        decisions = {(str(c["variant"]), str(c["task"])): Decision(str(c["verdict"]), int(c["look"]),
                                                                   int(c["seeds"]), float(c["alpha"]),
                                                                   float(c["difference_alpha"]))
                     for c in data["cells"] if c.get("verdict") in (*DECIDED, "inconclusive", "untested")}
        return cls(design, str(data["baseline"]), cells, decisions, list(data.get("looks") or []))


def _judge(row, alpha_difference: float) -> str | None:
    """One open cell at one look (a row of `summarise` at the look's alpha), or None while it stays open."""
    if row is None:
        return None
    if row["verdict"] == "broken":  # the report's descriptive rule, not a test
        return "broken"
    if row["verdict"] == "equivalent":  # TOST at the look's alpha (summarise's 1 - 2 alpha interval inside margin)
        return "equivalent"
    p, delta = row["p_value"], row["delta"]
    if math.isfinite(p) and p < alpha_difference and math.isfinite(delta) and delta != 0:
        return "better" if (delta > 0) == bool(row["higher_is_better"]) else "worse"
    return None


def replay(runs: pd.DataFrame, baseline: str, design: Design, cells: list[tuple[str, str]]) -> Sequence:
    """The sequence `runs` gives under `design`: every look whose runs are all present, in order."""
    sequence = Sequence(design, baseline, list(cells))
    while not sequence.done():
        n = sequence.next_seeds()
        look = sequence._look_runs(runs, n)  # selected once: to check that every run is there, then to judge
        if sequence._lacking(look, n):
            break
        sequence._observe(look)
    return sequence


def read(directory: str | Path) -> Sequence | None:
    """The sequence recorded in a results directory (`RECORD`), or None when it was not run with seeds=auto. A
    damaged record is a one-line ConfigError naming it."""
    from ablations.store.files import check_json
    from models.errors import ConfigError

    path = Path(directory) / RECORD
    if not path.is_file():
        return None
    data = check_json(path, kind="sequential record")
    try:
        return Sequence.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"corrupted sequential record {path}: {type(error).__name__}: {error}; run the same "
                          f"`ablate run ...` again to rewrite it") from None


def overlay(cells: pd.DataFrame, sequence: Sequence | None) -> pd.DataFrame:
    """The cells table (`aggregate.summarise`) with the sequential verdicts in place of the fixed-sample ones for
    the cells the sequence covers (a fixed-sample test of the seeds a cell ended with does not keep its level after
    optional stopping); a cell still open (an unfinished run) is `inconclusive`. Adds `sequential_look`,
    `sequential_seeds` (seeds per side at the decision) and `sequential_alpha`.

    The normalised difference and its interval (`norm_delta`, `norm_delta_low`/`_high`, `p_tost`) become those of
    the look that judged the cell, on that look's seeds and at its alpha: the (1 - 2 alpha_k) interval whose
    position inside the margin is TOST at alpha_k (`norm_delta_level` says its coverage), so the interval shown is
    the one the verdict read, not a fixed 90% one of every seed. Likewise `p_value` becomes that look's Welch p,
    `sequential_difference_alpha` the level it was compared with (the look's alpha over the cells), and `p_holm`
    is left empty: a Holm correction of all seeds is not the test a sequential verdict follows, and printed beside
    it (`worse`, p = 0.10 Holm) it would contradict it. `seeds_to_decide` of an undecided cell is at the
    alpha a further look would test at (`Sequence.next_alphas`), not the fixed-sample alpha. Without a sequence:
    unchanged."""
    from ablations.analyse import stats

    if sequence is None or cells.empty:
        return cells
    cells = cells.copy()
    decided = {(v, t): d for (v, t), d in sequence.decisions.items()}
    covered = set(sequence.cells)
    latest: dict[tuple[str, str], tuple[dict, dict]] = {}  # each cell's entry at the last look that judged it
    for look in sequence.history:
        for entry in look["cells"]:
            latest[(entry["variant"], entry["task"])] = (look, entry)
    alpha_next, alpha_difference_next = sequence.next_alphas()
    baselines = cells[cells["variant"] == sequence.baseline].set_index(["ablation", "task"])
    if "norm_delta_level" not in cells.columns:
        cells["norm_delta_level"] = math.nan
    looks, seeds, alphas, difference_alphas = [], [], [], []
    for index, row in cells.iterrows():
        key = (row["variant"], row["task"])
        d = decided.get(key)
        if key in covered and row["verdict"] not in ("broken", "no data"):
            cells.at[index, "verdict"] = d.verdict if d else "inconclusive"
        if key in latest:
            look, entry = latest[key]
            for column in ("norm_delta", "norm_delta_low", "norm_delta_high", "p_tost", "p_value"):
                value = entry.get(column)
                cells.at[index, column] = math.nan if value is None else float(value)
            cells.at[index, "norm_delta_level"] = 1 - 2 * float(look["alpha"])
            cells.at[index, "p_holm"] = math.nan
        difference_alphas.append(float(latest[key][0]["difference_alpha"]) if key in latest else math.nan)
        if key in covered:
            needed = None
            if cells.at[index, "verdict"] == "inconclusive" and (row["ablation"], row["task"]) in baselines.index:
                base = baselines.loc[(row["ablation"], row["task"])]
                scale = abs(float(base["mean"]) - float(row["chance"]))
                if math.isfinite(scale) and scale > 0:
                    needed = stats.seeds_to_decide(cells.at[index, "norm_delta"], float(row["std"]) / scale,
                                                   float(base["std"]) / scale, sequence.design.margin,
                                                   alpha_difference=alpha_difference_next,
                                                   alpha_equivalence=alpha_next)
            cells.at[index, "seeds_to_decide"] = pd.NA if needed is None else int(needed)
        looks.append(d.look if d else pd.NA)
        seeds.append(d.seeds if d else pd.NA)
        alphas.append(d.alpha if d else math.nan)
    cells["sequential_look"] = pd.array(looks, dtype="Int64")
    cells["sequential_seeds"] = pd.array(seeds, dtype="Int64")
    cells["sequential_alpha"] = alphas
    cells["sequential_difference_alpha"] = difference_alphas
    return cells
