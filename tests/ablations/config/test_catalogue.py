"""The ablation catalogue (conf/ablation/<kind>.yaml, grid.yaml): `kind:` expansion, a plugin's variant joining
its kind, matched budgets (ablations/config/matching.py), difficulty ladders and task labels."""

import dataclasses

import pytest
from omegaconf import OmegaConf

from ablations.config import compose_config, to_run_config
from ablations.config.ablation import (Ablation, Cell, cell_overrides, kind_registries, load_ablation, seed_keys,
                                       task_overrides)
from ablations.config.matching import TOLERANCE, match_overrides, measure
from models.components import ATTENTION
from models.errors import ConfigError
from tasks import TASKS
from tasks.base import Ladder

KINDS = list(kind_registries())
TOY = ["trainer.max_steps=2", "trainer.val_every=2", "task.n_train=64", "task.n_eval=32", "model.n_layers=1",
       "model.d_model=16", "model.d_ff=32", "trainer.diagnostics_every=0", "seed=0"]


def composed(overrides):
    cfg = compose_config(seed_keys(list(overrides)))
    return cfg, load_ablation(OmegaConf.to_container(cfg.ablation, resolve=True))


def kind_spec(**changes):
    data = {"name": "k", "kind": "norm", "baseline": "layernorm", "tasks": ["copy"], "seeds": [0]}
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def catalogue():
    """Every catalogue file composed once: {name: (config, ablation)}."""
    return {name: composed([f"ablation={name}"]) for name in [*KINDS, "grid"]}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_file_sets_every_registered_variant_against_the_model_configs_value(catalogue, kind):
    cfg, ablation = catalogue[kind]
    registry = kind_registries()[kind]
    assert set(ablation.variants) == set(registry.names()) and ablation.kind == kind
    assert ablation.baseline == cfg.model[kind]
    for name in registry.names():
        assert ablation.variants[name][0] == f"model.{kind}={name}"
    assert ablation.description and ablation.tasks


def test_grid_has_one_part_per_kind_on_every_task(catalogue):
    _, grid = catalogue["grid"]
    assert list(grid.parts) == ["norm", "norm_placement", "residual", "attention", "position", "ffn", "memory",
                                "init"]
    for kind, part in grid.parts.items():
        assert set(part.variants) == set(kind_registries()[kind].names())
        assert set(part.tasks) == set(TASKS.names())


@pytest.mark.parametrize("kind", KINDS)
def test_every_variant_of_each_kind_file_is_a_valid_config(catalogue, kind):
    """Every cell of the file's first task composes and validates (a variant needing options it lacks, e.g. a
    segmented memory without segments, would fail here)."""
    _, ablation = catalogue[kind]
    for variant, overrides in ablation.variants.items():
        to_run_config(compose_config([*task_overrides(ablation.tasks[0]), *overrides]))


def test_a_catalogue_ablation_runs_at_a_toy_budget_with_matched_parameters(tmp_path):
    """ablation=ffn end to end at ablation.match=params: every variant ran, its recorded parameter count is within
    2% of the baseline's, and the report shows parameters and FLOPs beside the scores."""
    from ablations import api
    from ablations.store.directory import ResultsDir

    outcome = api.run(["ablation=ffn", "task=listops", "ablation.match=params", *TOY, f"out={tmp_path}"])
    runs = ResultsDir(tmp_path).read_runs().set_index("variant")
    assert outcome.finished and set(runs.index) == {"mlp", "swiglu", "relu2", "none"}
    target = runs.loc["mlp", "n_params"]
    assert all(abs(n - target) <= TOLERANCE * target for n in runs["n_params"]), runs["n_params"]
    report = outcome.report.read_text()
    assert "FLOPs/token" in report and f"{int(target):,}" in report


def test_a_plugin_variant_joins_its_kinds_ablation(isolated_plugins):
    @ATTENTION.register("plugged_softmax")
    class Plugged(ATTENTION.get("softmax")):
        pass

    _, ablation = composed(["ablation=attention"])
    assert ablation.variants["plugged_softmax"] == ("model.attention=plugged_softmax",)
    assert ablation.variants["local"] == ("model.attention=local", "+model.options.local.window=4")  # `extra`


def test_own_variants_sit_beside_the_generated_ones():
    ablation = Ablation.from_dict(kind_spec(variants={"wide": ["model.d_ff=512"]}))
    assert ablation.variants["wide"] == ("model.d_ff=512",) and "rmsnorm" in ablation.variants
    assert "norm" in ablation.description  # a kind ablation without a description gets one


@pytest.mark.parametrize("changes, words", [
    ({"kind": "norms"}, "unknown ablation.kind 'norms'; valid: attention, ffn"),
    ({"extra": {"lokal": ["+model.options.local.window=4"]}}, "names norm 'lokal', which is not registered; valid: layernorm"),
    ({"match": "param"}, "unknown ablation.match 'param'; valid: none, params, flops"),
    ({"difficulty": "ladders"}, "unknown ablation.difficulty 'ladders'; valid: default, ladder"),
    ({"tasks": ["copy@lenght=24"]}, "task copy has no parameter 'lenght'; valid: length"),
    ({"tasks": ["copy@length"]}, "must be <task>@<key>=<value>"),
])
def test_bad_kind_match_difficulty_or_label_is_one_line(changes, words):
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(kind_spec(**changes))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_match_and_difficulty_are_set_from_the_command_line():
    _, ablation = composed(["ablation=default", "ablation.match=flops", "ablation.difficulty=ladder"])
    assert ablation.match == "flops" and ablation.difficulty == "ladder"
    _, grid = composed(["ablation=grid", "ablation.match=params"])
    assert {p.match for p in grid.parts.values()} == {"params"}


def test_labels_become_task_overrides_right_after_task():
    ablation = Ablation.from_dict(kind_spec(tasks=["copy@length=24", "digits"]))
    assert ablation.tasks == ("copy@length=24", "digits")
    cell = Cell("rmsnorm", "copy@length=24", 0, ("model.norm=rmsnorm",))
    assert cell_overrides(ablation, ["model.n_layers=1"], cell) == [
        "model.n_layers=1", "task=copy", "++task.length=24", "seed=0", "model.norm=rmsnorm"]
    run = to_run_config(compose_config(cell_overrides(ablation, [], cell)))
    assert run.task["name"] == "copy" and run.task["length"] == 24


def test_ladder_expands_tasks_that_have_one(monkeypatch):
    monkeypatch.setattr(TASKS.get("copy"), "difficulty", Ladder("length", (8, 16, 32)))
    monkeypatch.setattr(TASKS.get("digits"), "difficulty", None)
    ablation = Ablation.from_dict(kind_spec(tasks=["copy", "digits", "copy@length=12"], difficulty="ladder"))
    assert ablation.tasks == ("copy@length=8", "copy@length=16", "copy@length=32", "digits", "copy@length=12")
    assert Ablation.from_dict(kind_spec(tasks=["copy"])).tasks == ("copy",)  # difficulty: default
    cells = ablation.cells(tasks=("copy",))  # task= on the command line is expanded too
    assert {c.task for c in cells} == {"copy@length=8", "copy@length=16", "copy@length=32"}


def test_a_labelled_cell_is_planned_with_its_level():
    from ablations.execute.plan import plan_cells

    ablation = Ablation.from_dict(kind_spec(tasks=["copy@length=20"], kind="residual", baseline="standard"))
    plans = plan_cells(ablation, ["model.n_layers=1"], tasks=None)
    assert {p.task for p in plans} == {"copy@length=20"}
    assert all("++task.length=20" in p.overrides for p in plans)


def _counts(how, kind, task):
    """(baseline, variant) counts of every variant of `kind` matched with `how` on `task`."""
    from ablations.execute.plan import plan_cells

    _, ablation = composed([f"ablation={kind}", f"ablation.match={how}"])
    plans = plan_cells(ablation, [], tasks=(task,))
    out = {}
    for plan in plans:
        run = to_run_config(compose_config(list(plan.overrides)))
        task_obj = TASKS.get(run.task["name"])(**{k: v for k, v in run.task.items() if k != "name"})
        seq = task_obj.make_split("train", 1, 0).inputs.shape[1]
        out[plan.variant] = (measure(how, run.model, task_obj, run.model.pool, seq), plan.overrides)
    return ablation.baseline, out


@pytest.mark.parametrize("how, kind, task", [("params", "ffn", "listops"), ("params", "attention", "induction"),
                                             ("flops", "ffn", "listops")])
def test_matched_variants_land_within_tolerance(how, kind, task):
    baseline, counts = _counts(how, kind, task)
    target = counts[baseline][0]
    for variant, (value, _) in counts.items():
        assert abs(value - target) <= TOLERANCE * target, (variant, value, target)
    if kind == "ffn":  # without matching these are far apart: the search did the work
        assert "model.d_ff=" in " ".join(counts["swiglu"][1])
        assert "model.d_model=" in " ".join(counts["none"][1])


def test_a_variant_within_tolerance_is_left_alone_and_an_unmatchable_one_is_one_line():
    base = to_run_config(compose_config(["task=copy"]))
    same = to_run_config(compose_config(["task=copy", "model.norm=rmsnorm"]))
    assert match_overrides("params", base, same, ["model.norm=rmsnorm"]) == []
    empty = to_run_config(compose_config(["task=copy", "model.attention=none", "model.ffn=none",
                                          "model.d_model=64"]))
    pinned = ["model.attention=none", "model.ffn=none", "model.d_model=64"]
    with pytest.raises(ConfigError) as info:
        match_overrides("params", base, empty, pinned, name="variant bare")
    assert "variant bare cannot be brought within 2%" in str(info.value) and "\n" not in str(info.value)


def test_width_search_keeps_a_valid_config():
    base = to_run_config(compose_config(["task=copy"]))
    variant = to_run_config(compose_config(["task=copy", "model.ffn=none"]))
    extra = match_overrides("params", base, variant, ["model.ffn=none"])
    keys = dict(o.split("=") for o in extra)
    changed = dataclasses.replace(variant.model, d_model=int(keys["model.d_model"]),
                                  n_heads=int(keys.get("model.n_heads", variant.model.n_heads)))
    assert changed.d_model % changed.n_heads == 0 and changed.d_model > variant.model.d_model


def test_two_levels_of_one_task_are_two_columns_of_runs_csv(tmp_path, monkeypatch):
    """runs.csv names each run's task label, so two levels of copy are two cells, not one cell listed twice."""
    import pandas as pd

    from ablations.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = ["ablation.seeds=[0]", "trainer.max_steps=4", "trainer.val_every=2", "model.d_model=16", "model.d_ff=32",
            "model.n_heads=2", "model.n_layers=1", "~ablation.variants.post_norm", "~ablation.variants.no_residual",
            "ablation.tasks=['copy@length=4','copy@length=6']", "task.n_train=256", "task.n_eval=64"]
    assert main(["run", "-q", *tiny, "out=lad"]) == 0
    runs = pd.read_csv(tmp_path / "lad" / "runs.csv")
    assert sorted(runs["task"]) == ["copy@length=4", "copy@length=6"] and (runs["status"] == "ok").all()
