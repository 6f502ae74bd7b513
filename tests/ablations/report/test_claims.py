"""ablations/report/claims.py and suite.py: each claim's rule on synthetic evidence whose verdict is known."""

import json

import pandas as pd
import pytest

from ablations.report.claims import CLAIMS, evaluate
from ablations.store.files import COLUMNS
from ablations.report.suite import build_suite_report, is_suite

CHANCE = {"copy": 0.1, "digits": 0.1, "char_lm": 5.0, "spoken_digits": 0.1, "moving_digits": 0.25,
          "assoc_recall": 1 / 32, "induction": 1 / 24, "sort": 0.1, "modular_add": 1 / 23,
          "copy@length=8": 0.1, "copy@length=16": 0.1, "copy@length=32": 0.1}
METRIC = {"char_lm": ("bits_per_char", False)}
DEPTH = ["pre_L8", "post_L8", "pre_L8_warmup", "post_L8_warmup", "pre_L2", "post_L2", "pre_L8_gpt2init",
         "post_L8_gpt2init", "zero_init_L8", "no_residual_L8", "no_norm_L8"]
LADDER = ["copy@length=8", "copy@length=16", "copy@length=32"]


def write_part(root, part, scores, diagnostics=None, trials=None, curves=None):
    """runs.csv with one row per (variant, task, seed) from `scores` {(variant, task): [score|"diverged", ...]},
    each run's directory with a diagnostics.csv from `diagnostics(variant, seed)` (rows) if given, and a
    metrics.csv of validation accuracy from `curves(variant, task, seed)` ([(step, value)]) if given."""
    rows = []
    for (variant, task), values in scores.items():
        metric, higher = METRIC.get(task, ("accuracy", True))
        for seed, value in enumerate(values):
            run_dir = root / part / "runs" / variant / task / f"s{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "result.json").write_text(json.dumps({"variant": variant, "task": task, "seed": seed}))
            status = value if isinstance(value, str) else "ok"
            rows.append({"ablation": f"claims-{part}", "variant": variant, "task": task, "seed": seed,
                         "status": status, "metric": metric, "higher_is_better": higher, "chance": CHANCE[task],
                         "score": None if status != "ok" else value, "steps": 40, "wall_seconds": 1.0,
                         "n_params": 100, "tokens_per_second": 10.0, "config_hash": "h", "error": "",
                         "run_dir": str(run_dir)})
            if diagnostics is not None:
                pd.DataFrame(diagnostics(variant, seed),
                             columns=["step", "layer", "branch", "head", "metric", "value"]).to_csv(
                    run_dir / "diagnostics.csv", index=False)
            if curves is not None:
                pd.DataFrame(curves(variant, task, seed), columns=["step", f"val/{metric}"]).to_csv(
                    run_dir / "metrics.csv", index=False)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / part / "runs.csv", index=False)
    if trials is not None:
        trials.to_csv(root / part / "trials.csv", index=False)


#: the geometric diagnostics schedule of the depth part
STEPS = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97, 121, 151, 188, 235, 285, 300]


def depth_diagnostics(first_over_last, onset_increases):
    """8 blocks; the first block's gradient is `first_over_last[variant]` times the others'; zero_init_L8's layer
    k reaches its final contribution at step 8k (or 72 - 8k), each seed jittered a little."""
    def rows(variant, seed):
        out = []
        for step in STEPS:
            for layer in range(0, 10):  # embedding, 8 blocks, head
                ratio = first_over_last.get(variant, 1.0) * (1 + 0.05 * seed) if layer == 1 else 1.0
                out.append((step, layer, "", -1, "grad_norm", ratio))
            for layer in range(1, 9):
                onset = 8 * layer + seed if onset_increases else 72 - 8 * layer + seed
                value = (0.0 if step == 0 else (1.0 if step >= onset else 0.1)) if variant == "zero_init_L8" \
                    else 0.5
                for branch in ("attn", "ffn"):
                    out.append((step, layer, branch, -1, "branch_ratio", value))
        return out
    return rows


def components_diagnostics(collapse):
    def rows(variant, seed):
        out = []
        for step in (0, 100):
            for layer in range(3):
                spread = 0.9 if variant != "attention_only_no_residual" or not collapse else 0.9 * 10.0 ** -layer
                out.append((step, layer, "", -1, "token_spread", spread))
        return out
    return rows


def ladder_curves(in_order):
    """Level i (0: easiest) reaches accuracy 1 at step 100 (i + 1) in order, or in reverse order."""
    def rows(variant, task, seed):
        level = LADDER.index(task)
        learned = 100 * (level + 1 if in_order else 3 - level) + 25 * seed
        return [(step, 1.0 if step >= learned else 0.1) for step in range(0, 501, 25)]
    return rows


def jitter(values, n, spread=0.01):
    """`n` scores around each of `values` (cycled), so that cells have a spread."""
    return [min(1.0, max(0.0, values[i % len(values)] + spread * ((i % 3) - 1))) for i in range(n)]


def claims_dir(root, *, good: bool):
    """A claims results directory whose every verdict is `supported` (good) or `not supported` (not good)."""
    root.mkdir()
    parts = {"depth": ["sort"], "attention": ["sort"], "arithmetic": ["modular_add"], "induction": ["induction"],
             "ladder": LADDER, "components": ["digits"], "modalities": [], "memory": ["induction"]}
    (root / "manifest.json").write_text(json.dumps({
        "command": "ablate run ablation=claims", "versions": {"suite": "t", "torch": "t"}, "hardware": {},
        "ablation": {"name": "claims", "description": "test", "report": "claims",
                     "parts": {p: {"variants": {}, "tasks": t, "description": p} for p, t in parts.items()}}}))
    hi, lo = jitter([0.97], 5), jitter([0.2], 5)
    depth = {(v, "sort"): hi for v in DEPTH}
    depth[("post_L8", "sort")] = lo if good else hi
    depth[("post_L8_gpt2init", "sort")] = lo if good else hi
    depth[("post_L8_warmup", "sort")] = jitter([0.9], 5) if good else hi
    depth[("no_residual_L8", "sort")] = jitter([0.15], 5) if good else hi
    depth[("no_norm_L8", "sort")] = jitter([0.3], 5) if good else hi
    write_part(root, "depth", depth,
               depth_diagnostics({"pre_L8": 1.0 if good else 0.1, "no_residual_L8": 0.05}, onset_increases=good))
    attention = {("baseline", "sort"): jitter([0.95], 3), ("attention_only_no_residual", "sort"): jitter([0.2], 3),
                 ("no_attention", "sort"): jitter([0.2] if good else [0.95], 3)}
    write_part(root, "attention", attention, components_diagnostics(collapse=good))
    arithmetic = {("baseline", "modular_add"): jitter([0.95], 3),
                  ("no_weight_decay", "modular_add"): jitter([0.1] if good else [0.95], 3),
                  ("no_ffn", "modular_add"): jitter([0.2], 3)}
    write_part(root, "arithmetic", arithmetic)
    induction = {("attn_only_L2", "induction"): jitter([0.99], 3),
                 ("attn_only_L1", "induction"): jitter([0.3] if good else [0.99], 3)}
    write_part(root, "induction", induction)
    write_part(root, "ladder", {("baseline", t): [1.0, 1.0, 1.0] for t in LADDER}, curves=ladder_curves(good))
    same = [0.9, 0.91, 0.905] if good else [0.3, 0.31, 0.305]
    components = {("baseline", "digits"): [0.9, 0.905, 0.91]}
    components.update({(v, "digits"): same for v in ["rmsnorm", "rope", "swiglu"]})
    components[("linear_attention", "digits")] = [0.2, 0.25, 0.22] if good else [0.3, 0.31, 0.305]
    write_part(root, "components", components)
    modalities = {("baseline", "copy"): [1.0, 1.0], ("baseline", "digits"): [0.95, 0.96],
                  ("baseline", "char_lm"): [2.0, 2.1], ("baseline", "spoken_digits"): [0.9, 0.92],
                  ("baseline", "moving_digits"): [0.8, 0.85] if good else [0.25, 0.26]}
    write_part(root, "modalities", modalities)
    memory = {("local", "induction"): [0.3, 0.32, 0.31], ("full", "induction"): [0.95, 0.96, 0.97],
              ("local_xl", "induction"): [0.8, 0.82, 0.85] if good else [0.2, 0.22, 0.21],
              ("local_knn", "induction"): [0.31, 0.3, 0.29] if good else [0.2, 0.21, 0.2]}
    write_part(root, "memory", memory)
    return root


def verdicts(directory):
    return {item.number: verdict for item, verdict in evaluate(directory)}


def test_every_claim_is_registered_with_its_rule():
    assert [c.number for c in CLAIMS] == list(range(1, 11))
    assert all(c.rule and c.statement and c.part and c.source for c in CLAIMS)


def test_evidence_for_every_claim_gives_supported(tmp_path):
    results = verdicts(claims_dir(tmp_path / "good", good=True))
    assert {n: v.verdict for n, v in results.items()} == {n: "supported" for n in range(1, 11)}
    assert all(v.figures or v.tables for v in results.values())  # every verdict is backed by evidence
    for verdict in results.values():
        for path, _ in verdict.figures:
            assert path.exists() and path.stat().st_size > 1000


def test_evidence_against_every_claim_gives_not_supported(tmp_path):
    results = verdicts(claims_dir(tmp_path / "bad", good=False))
    assert {n: v.verdict for n, v in results.items()} == {n: "not supported" for n in range(1, 11)}


def test_missing_parts_are_inconclusive_and_say_what_is_missing(tmp_path):
    root = claims_dir(tmp_path / "c", good=True)
    (root / "memory" / "runs.csv").unlink()
    results = verdicts(root)
    assert results[7].verdict == "inconclusive" and "part 'memory' has no runs" in results[7].summary
    assert results[1].verdict == "supported"


def test_the_claims_report_states_rule_verdict_and_evidence(tmp_path):
    root = claims_dir(tmp_path / "c", good=True)
    assert is_suite(root)
    report = build_suite_report(root)
    text = report["report_md"].read_text()
    assert report["report_md"].name == "claims.md" and report["report_html"].exists()
    assert text.count("*Rule:*") == 10 and text.count("**supported**") == 10 and text.count("*Source:*") == 10
    assert "The run took" in text and "of wall-clock time" in text
    assert "![" in text and "figures/layer_contributions.png" in text
    html_text = report["report_html"].read_text()
    assert "<img src=\"data:image/png;base64," in html_text
    assert html_text.count("<em>Rule:</em>") == 10 and "*Claim:*" not in html_text and "*Verdict:*" not in html_text
    assert '<a href="depth/report.md">depth</a>' in html_text  # the parts' links work in the HTML too


@pytest.mark.slow
def test_ablate_run_ablation_claims_writes_every_part_and_the_claims_report(tmp_path, monkeypatch, capsys):
    """The real `claims` ablation end to end at a toy budget (the command line beats the parts' own budgets)."""
    from ablations.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = ["seed=0", "sweep.trials=1", "sweep.workers=1", "trainer.max_steps=6", "trainer.val_every=3",
            "trainer.log_every=3", "trainer.diagnostics_every=3", "model.d_model=16", "model.d_ff=32",
            "model.n_heads=2"]
    assert main(["run", "-q", "ablation=claims", *tiny, "out=claims"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "claims/claims.md"
    assert "not applied to claims-modalities" in out.err  # sweep.* cannot make an untuned part tune
    for part in ("depth", "attention", "arithmetic", "induction", "ladder", "components", "modalities", "memory"):
        runs = pd.read_csv(tmp_path / "claims" / part / "runs.csv")
        assert len(runs) > 0 and (tmp_path / "claims" / part / "report.md").exists()
    depth = pd.read_csv(tmp_path / "claims" / "depth" / "runs.csv")
    assert set(depth["variant"]) == set(DEPTH)
    assert (tmp_path / "claims" / "components" / "trials.csv").exists()  # tuned through the sweep machinery
    assert not (tmp_path / "claims" / "modalities" / "trials.csv").exists()  # this part is not tuned
    text = (tmp_path / "claims" / "claims.md").read_text()
    assert text.count("*Rule:*") == 10 and "figures/layer_contributions.png" in text
    assert (tmp_path / "claims" / "figures" / "layer_contributions.png").exists()
    # `ablate report` rebuilds every part and the claims report
    assert main(["report", "claims"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "claims/claims.md"
    # a worker joins one part's sweep, not the suite
    assert main(["worker", "claims"]) == 2
    err = capsys.readouterr().err
    assert "join one part:" in err and "claims/depth" in err and "claims/memory" in err


def test_contrast_of_two_groups_is_welchs_interval_and_the_decisions_follow_it():
    from ablations.analyse.stats import welch_interval
    from ablations.report.claims import Effect, contrast, decide

    a, b = [0.9, 0.8, 0.95, 0.85], [0.2, 0.5, 0.3]
    effect, welch = contrast([a, b], [1.0, -1.0]), welch_interval(a, b, 0.95)
    assert effect.estimate == pytest.approx(welch[0]) and (effect.low, effect.high) == pytest.approx(welch[1:3])
    assert contrast([a, b], [1.0, -1.0], width=0.3).high == 0.3  # clipped to the feasible range
    assert decide(Effect(0.5, 0.1, 0.9), 0.05) == "supported"
    assert decide(Effect(0.0, -0.04, 0.04), 0.05) == "not supported"
    assert decide(Effect(0.2, -0.1, 0.5), 0.05) == "inconclusive"


def test_evidence_that_cannot_decide_gives_inconclusive(tmp_path):
    """Seeds that disagree (post-norm fails in some seeds only, one layer solves induction in some seeds, the
    ladder's order reverses in one seed): the intervals hold both an effect and none."""
    from ablations.report.claims import Evidence, grokking, induction, pre_vs_post, short_first

    root = claims_dir(tmp_path / "c", good=True)
    mixed = [0.97, 0.2, 0.95, 0.3, 0.96]
    depth = pd.read_csv(root / "depth" / "runs.csv")
    for variant in ("post_L8", "post_L8_gpt2init"):
        depth.loc[depth["variant"] == variant, "score"] = mixed
    depth.to_csv(root / "depth" / "runs.csv", index=False)
    for part, variant in (("induction", "attn_only_L1"), ("arithmetic", "no_weight_decay")):
        runs = pd.read_csv(root / part / "runs.csv")
        runs.loc[runs["variant"] == variant, "score"] = [0.99, 0.1, 0.98]
        runs.to_csv(root / part / "runs.csv", index=False)
    for seed, in_order in ((0, True), (1, False), (2, True)):
        for task in LADDER:
            rows = ladder_curves(in_order)("baseline", task, seed)
            pd.DataFrame(rows, columns=["step", "val/accuracy"]).to_csv(
                root / "ladder" / "runs" / "baseline" / task / f"s{seed}" / "metrics.csv", index=False)
    evidence = Evidence(root)
    for rule in (pre_vs_post, induction, grokking, short_first):
        assert rule(evidence).verdict == "inconclusive", rule.__name__


def test_the_claims_report_states_the_time_its_commands_recorded_not_the_files_times(tmp_path):
    """A copied or checked-out directory carries the copy's file times; the commands' own recorded seconds win."""
    import os

    from ablations.report.claims import run_time

    root = claims_dir(tmp_path / "c", good=True)
    for i, path in enumerate(sorted(root.rglob("result.json"))):  # a copy of it, then one more run resumed into it
        os.utime(path, (1_000_000 + 300 * (i == 0),) * 2)
    assert run_time(root)["wall"] == 301.0  # file times measure the copy, not the commands
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(seconds=600.0, history=[{"command": "ablate run ablation=claims", "seconds": 1200.0}])
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert run_time(root)["wall"] == 1800.0
    text = build_suite_report(root)["report_md"].read_text()
    assert "The run took 30 min 00 s (1800 s) of wall-clock time over 2 `ablate run` commands" in text
