"""ablations/config/ablation.py: validating an ablation and expanding it into cells."""

import pytest

from ablations.config.ablation import Ablation, Cell
from models.errors import ConfigError


def spec(**changes):
    data = {
        "name": "demo",
        "description": "a test ablation",
        "baseline": "base",
        "tasks": ["copy", "digits"],
        "seeds": [0, 1, 2],
        "variants": {"post": ["model.norm_placement=post"], "base": [], "nores": ["model.residual=none"]},
    }
    data.update(changes)
    return data


def test_from_dict_keeps_the_values():
    ablation = Ablation.from_dict(spec())
    assert ablation.name == "demo" and ablation.baseline == "base" and ablation.description == "a test ablation"
    assert ablation.tasks == ("copy", "digits") and ablation.seeds == (0, 1, 2)
    assert ablation.variants == {"post": ("model.norm_placement=post",), "base": (), "nores": ("model.residual=none",)}


def test_description_is_optional_and_empty_variants_mean_no_overrides():
    data = spec(variants={"base": None, "other": ["seed=1"]})
    del data["description"]
    ablation = Ablation.from_dict(data)
    assert ablation.description == "" and ablation.variants["base"] == ()


def test_baseline_must_be_a_variant():
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(baseline="reference"))
    message = str(info.value)
    assert "'reference'" in message and "valid: post, base, nores" in message


def test_unknown_task_lists_the_tasks():
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(tasks=["copy", "cpoy"]))
    assert "unknown task 'cpoy'" in str(info.value) and "did you mean 'copy'" in str(info.value)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed(seed):
    with pytest.raises(ConfigError, match="seeds must be non-negative integers"):
        Ablation.from_dict(spec(seeds=[0, seed]))


@pytest.mark.parametrize("key", ["tasks", "seeds"])
def test_empty_tasks_or_seeds(key):
    with pytest.raises(ConfigError, match="at least one task and one seed"):
        Ablation.from_dict(spec(**{key: []}))


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(seed=[0]))
    message = str(info.value)
    assert "'ablation.seed'" in message
    for key in ("baseline", "description", "name", "seeds", "tasks", "variants"):
        assert f"ablation.{key}" in message
    assert "\n" not in message


def test_cells_are_variants_by_tasks_by_seeds_with_the_baseline_first():
    ablation = Ablation.from_dict(spec())
    cells = ablation.cells()
    assert len(cells) == 3 * 2 * 3
    assert len(set(cells)) == len(cells)
    assert all(isinstance(cell, Cell) for cell in cells)
    for start in range(0, len(cells), 3):
        group = cells[start:start + 3]
        assert len({(c.task, c.seed) for c in group}) == 1  # one task/seed per group of variants...
        assert [c.variant for c in group] == ["base", "post", "nores"]  # ...baseline first, then file order
    assert {(c.task, c.seed) for c in cells} == {(t, s) for t in ("copy", "digits") for s in (0, 1, 2)}
    for cell in cells:
        assert cell.overrides == ablation.variants[cell.variant]
    assert cells[0].name == "base/copy/s0"


def test_cells_with_replaced_tasks_and_seeds():
    ablation = Ablation.from_dict(spec())
    cells = ablation.cells(tasks=("digits",), seeds=(7,))
    assert [(c.variant, c.task, c.seed) for c in cells] == [("base", "digits", 7), ("post", "digits", 7),
                                                            ("nores", "digits", 7)]
    cells = ablation.cells(seeds=(5, 6))
    assert len(cells) == 3 * 2 * 2 and {c.seed for c in cells} == {5, 6}
    assert {c.task for c in cells} == {"copy", "digits"}


def test_a_single_variant_ablation():
    ablation = Ablation.from_dict(spec(variants={"base": []}, tasks=["copy"], seeds=[0]))
    assert ablation.cells() == [Cell("base", "copy", 0, ())]



@pytest.mark.parametrize("key", ["name", "baseline", "tasks", "seeds"])
def test_a_missing_key_is_a_config_error(key):
    data = spec()
    del data[key]
    with pytest.raises(ConfigError, match=key):
        Ablation.from_dict(data)


def test_a_variant_given_as_a_string_is_not_split_into_characters():
    try:
        ablation = Ablation.from_dict(spec(variants={"base": [], "post": "model.norm_placement=post"}))
    except ConfigError:
        return  # rejecting it is fine too
    assert ablation.variants["post"] == ("model.norm_placement=post",)


@pytest.mark.parametrize("changes", [dict(seeds=0), dict(variants=["base", "post"])], ids=["seeds", "variants"])
def test_wrongly_shaped_values_are_config_errors(changes):
    with pytest.raises(ConfigError):
        Ablation.from_dict(spec(**changes))


def test_shared_overrides_are_defaults_the_command_line_and_the_variant_beat():
    from ablations.config.ablation import cell_overrides

    ablation = Ablation.from_dict(spec(overrides=["trainer.max_steps=400", "model.n_layers=6"],
                                       variants={"base": [], "deep": ["model.n_layers=8"]}))
    cells = {c.variant: c for c in ablation.cells(("copy",), (0,))}
    assert cell_overrides(ablation, ["trainer.max_steps=10"], cells["base"]) == [
        "model.n_layers=6", "trainer.max_steps=10", "task=copy", "seed=0"]
    assert "model.n_layers=8" in cell_overrides(ablation, ["model.n_layers=2"], cells["deep"])
    assert "model.n_layers=2" not in cell_overrides(ablation, ["model.n_layers=2"], cells["deep"])
    with pytest.raises(ConfigError, match="overrides must be a list"):
        Ablation.from_dict(spec(overrides="trainer.max_steps=4"))


def test_an_ablation_may_name_its_sweep_profile():
    assert Ablation.from_dict(spec(sweep="quick")).sweep == "quick"
    with pytest.raises(ConfigError, match="unknown sweep profile 'quik'; valid: .*quick"):
        Ablation.from_dict(spec(sweep="quik"))


def test_a_suite_is_made_of_parts_that_inherit_its_sweep():
    from ablations.config.ablation import Suite, load_ablation

    part = lambda **changes: {k: v for k, v in spec(**changes).items() if k != "name"}  # noqa: E731
    data = {"name": "s", "description": "d", "sweep": "quick", "report": "claims",
            "parts": {"one": part(), "two": part(sweep="none", tasks=["copy"])}}
    suite = load_ablation(data)
    assert isinstance(suite, Suite) and suite.report == "claims" and list(suite.parts) == ["one", "two"]
    assert suite.parts["one"].name == "s-one" and suite.parts["one"].sweep == "quick"
    assert suite.parts["two"].sweep == "none" and suite.parts["two"].tasks == ("copy",)
    assert isinstance(load_ablation(spec()), Ablation)
    with pytest.raises(ConfigError, match="unknown key 'ablation.baseline' in an ablation with parts"):
        load_ablation({**data, "baseline": "x"})
    with pytest.raises(ConfigError, match="unknown report 'nope'; valid: parts, claims"):
        load_ablation({**data, "report": "nope"})
    with pytest.raises(ConfigError, match="part 'two' must be an ablation"):
        load_ablation({**data, "parts": {"two": ["x"]}})
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_ablation({**data, "parts": {"one": part(tasks=["nope"])}})


def test_the_claims_ablation_file_is_a_valid_suite():
    from omegaconf import OmegaConf

    from ablations.config import compose_config
    from ablations.config.ablation import Suite, load_ablation

    suite = load_ablation(OmegaConf.to_container(compose_config(["ablation=claims"]).ablation, resolve=True))
    assert isinstance(suite, Suite) and suite.report == "claims"
    assert set(suite.parts) == {"depth", "attention", "arithmetic", "induction", "ladder", "components",
                                "modalities", "memory"}
    from ablations.report.claims import CLAIMS

    for claim in CLAIMS:  # every claim reads a part that exists
        assert claim.part in suite.parts
