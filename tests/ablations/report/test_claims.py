"""ablations/report/claims.py and suite.py: each claim's rule on synthetic evidence whose verdict is known."""

import json

import pandas as pd
import pytest

from ablations.report.claims import CLAIMS, evaluate
from ablations.store.files import COLUMNS
from ablations.report.suite import build_suite_report, is_suite

CHANCE = {"copy": 0.1, "digits": 0.1, "char_lm": 5.0, "spoken_digits": 0.1, "moving_digits": 0.25,
          "assoc_recall": 1 / 32, "induction": 1 / 24}
METRIC = {"char_lm": ("bits_per_char", False)}


def write_part(root, part, scores, diagnostics=None, trials=None):
    """runs.csv with one row per (variant, task, seed) from `scores` {(variant, task): [score|"diverged", ...]},
    each run's directory with a diagnostics.csv from `diagnostics(variant, seed)` (rows) if given."""
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
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / part / "runs.csv", index=False)
    if trials is not None:
        trials.to_csv(root / part / "trials.csv", index=False)


def depth_diagnostics(first_over_last, onset_increases):
    def rows(variant, seed):
        out = []
        for step in range(0, 101, 20):
            for layer in range(0, 8):  # embedding, 6 blocks, head
                ratio = first_over_last.get(variant, 1.0) if layer == 1 else 1.0
                out.append((step, layer, "", -1, "grad_norm", ratio))
            for layer in range(1, 7):
                onset = 15 * layer if onset_increases else 90 - 15 * layer
                value = (0.0 if step == 0 else (1.0 if step >= onset else 0.1)) if variant == "zero_init_L6" \
                    else 0.5
                for branch in ("attn", "ffn"):
                    out.append((step, layer, branch, -1, "branch_ratio", value))
        return out
    return rows


def components_diagnostics(collapse):
    def rows(variant, seed):
        out = []
        for step in (0, 100):
            for layer in range(5):
                spread = 0.9 if variant != "attention_only_no_residual" or not collapse else 0.9 * 10.0 ** -layer
                out.append((step, layer, "", -1, "token_spread", spread))
        return out
    return rows


def claims_dir(root, *, good: bool):
    """A claims results directory whose every verdict is `supported` (good) or `not supported` (not good)."""
    root.mkdir()
    parts = {"depth": {}, "components": {}, "modalities": {}, "memory": {}}
    (root / "manifest.json").write_text(json.dumps({
        "command": "ablate run ablation=claims", "versions": {"suite": "t", "torch": "t"}, "hardware": {},
        "ablation": {"name": "claims", "description": "test", "report": "claims",
                     "parts": {p: {"variants": {}, "tasks": [], "description": p} for p in parts}}}))
    hi, lo = [1.0, 0.98, 0.99], [0.3, 0.35, 0.32]
    depth = {(v, "copy"): hi for v in ["pre_L6", "pre_L2", "post_L2", "pre_L6_warmup", "post_L6_warmup",
                                       "zero_init_L6", "no_residual_L6"]}
    depth[("post_L6", "copy")] = lo if good else [1.0, 0.99, 0.98]
    write_part(root, "depth", depth,
               depth_diagnostics({"pre_L6": 1.0 if good else 0.1, "no_residual_L6": 0.05}, onset_increases=good))
    removed = [0.2, 0.25] if good else [0.99, 1.0]
    same = [0.9, 0.91] if good else [0.3, 0.31]
    components = {("baseline", "digits"): [0.9, 0.905]}
    components.update({(v, "digits"): removed for v in ["no_residual", "no_norm", "no_ffn",
                                                        "attention_only_no_residual"]})
    components.update({(v, "digits"): same for v in ["rmsnorm", "rope", "swiglu"]})
    components[("linear_attention", "digits")] = [0.2, 0.25] if good else [0.3, 0.31]
    write_part(root, "components", components, components_diagnostics(collapse=good))
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
    assert [c.number for c in CLAIMS] == [1, 2, 3, 4, 5, 6, 7]
    assert all(c.rule and c.statement and c.part for c in CLAIMS)


def test_evidence_for_every_claim_gives_supported(tmp_path):
    results = verdicts(claims_dir(tmp_path / "good", good=True))
    assert {n: v.verdict for n, v in results.items()} == {n: "supported" for n in range(1, 8)}
    assert all(v.figures or v.tables for v in results.values())  # every verdict is backed by evidence
    for verdict in results.values():
        for path, _ in verdict.figures:
            assert path.exists() and path.stat().st_size > 1000


def test_evidence_against_every_claim_gives_not_supported(tmp_path):
    results = verdicts(claims_dir(tmp_path / "bad", good=False))
    assert {n: v.verdict for n, v in results.items()} == {n: "not supported" for n in range(1, 8)}


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
    assert text.count("*Rule:*") == 7 and text.count("**supported**") == 7
    assert "![" in text and "figures/layer_contributions.png" in text
    html_text = report["report_html"].read_text()
    assert "<img src=\"data:image/png;base64," in html_text
    assert html_text.count("<em>Rule:</em>") == 7 and "*Claim:*" not in html_text and "*Verdict:*" not in html_text
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
    for part in ("depth", "components", "modalities", "memory"):
        runs = pd.read_csv(tmp_path / "claims" / part / "runs.csv")
        assert len(runs) > 0 and (tmp_path / "claims" / part / "report.md").exists()
    depth = pd.read_csv(tmp_path / "claims" / "depth" / "runs.csv")
    assert set(depth["variant"]) == {"pre_L6", "post_L6", "pre_L6_warmup", "post_L6_warmup", "pre_L2", "post_L2",
                                     "zero_init_L6", "no_residual_L6"}
    assert (tmp_path / "claims" / "depth" / "trials.csv").exists()  # tuned through the sweep machinery
    assert not (tmp_path / "claims" / "modalities" / "trials.csv").exists()  # this part is not tuned
    text = (tmp_path / "claims" / "claims.md").read_text()
    assert text.count("*Rule:*") == 7 and "figures/layer_contributions.png" in text
    assert (tmp_path / "claims" / "figures" / "layer_contributions.png").exists()
    # `ablate report` rebuilds every part and the claims report
    assert main(["report", "claims"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "claims/claims.md"
    # a worker joins one part's sweep, not the suite
    assert main(["worker", "claims"]) == 2
    err = capsys.readouterr().err
    assert "join one part:" in err and "claims/depth" in err and "claims/memory" in err
