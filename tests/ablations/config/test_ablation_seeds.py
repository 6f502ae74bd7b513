"""ablations/config/ablation.py: `seeds: auto` and its keys (min_seeds, seed_step, max_seeds), each bad value one
line that names the valid choices; and the command line's `ablation.max_seeds=N`, which no ablation file names."""

import dataclasses

import pytest

from ablations.config.ablation import SEED_DEFAULTS, Ablation, seed_keys
from models.errors import ConfigError
from tests.ablations.config.test_ablation import spec


def test_auto_seeds_start_with_min_seeds_and_fill_in_the_defaults():
    ablation = Ablation.from_dict(spec(seeds="auto"))
    assert ablation.adaptive and ablation.seeds == "auto"
    assert ablation.seed_plan == (SEED_DEFAULTS["min_seeds"], SEED_DEFAULTS["seed_step"], SEED_DEFAULTS["max_seeds"])
    assert ablation.seed_plan == (3, 2, 8)
    assert ablation.initial_seeds == (0, 1, 2)
    assert {c.seed for c in ablation.cells()} == {0, 1, 2}
    given = Ablation.from_dict(spec(seeds="auto", min_seeds=2, seed_step=1, max_seeds=4))
    assert given.seed_plan == (2, 1, 4) and given.initial_seeds == (0, 1)
    listed = Ablation.from_dict(spec())
    assert not listed.adaptive and listed.initial_seeds == (0, 1, 2)


def test_an_ablation_round_trips_through_its_manifest_record():
    for data in (spec(seeds="auto", max_seeds=4), spec(seeds="auto"), spec()):
        ablation = Ablation.from_dict(data)
        assert Ablation.from_dict(dataclasses.asdict(ablation)) == ablation


def test_max_seeds_below_min_seeds_is_one_line_naming_the_valid_range():
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(seeds="auto", max_seeds=2))
    message = str(info.value)
    assert "max_seeds >= ablation.min_seeds" in message and "max_seeds=2 and min_seeds=3" in message
    assert "valid: max_seeds from 3" in message and "\n" not in message
    with pytest.raises(ConfigError, match="max_seeds=4 and min_seeds=5"):
        Ablation.from_dict(spec(seeds="auto", min_seeds=5, max_seeds=4))


@pytest.mark.parametrize("seeds", ["adaptive", "Auto", 3, None])
def test_seeds_other_than_a_list_or_auto_name_both_choices(seeds):
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(seeds=seeds))
    message = str(info.value)
    assert "seeds" in message and "\n" not in message
    if seeds is not None:
        assert "a list of seeds or auto" in message and "seeds: auto" in message


@pytest.mark.parametrize("key, value", [("min_seeds", 1), ("min_seeds", 2.5), ("max_seeds", True),
                                        ("seed_step", 0), ("max_seeds", 1001), ("seed_step", "2")])
def test_a_bad_seed_count_is_one_line_naming_its_range(key, value):
    with pytest.raises(ConfigError) as info:
        Ablation.from_dict(spec(seeds="auto", **{key: value}))
    message = str(info.value)
    assert f"ablation.{key} must be an integer from" in message and "to 1000" in message and "\n" not in message


@pytest.mark.parametrize("key", sorted(SEED_DEFAULTS))
def test_the_keys_of_auto_with_a_list_of_seeds_are_refused_not_ignored(key):
    with pytest.raises(ConfigError, match=f"ablation.{key} applies only with ablation.seeds=auto"):
        Ablation.from_dict(spec(**{key: 4}))


def test_a_suite_part_may_choose_its_seeds_by_data():
    from ablations.config.ablation import load_ablation

    part = {k: v for k, v in spec(seeds="auto", max_seeds=5).items() if k != "name"}
    suite = load_ablation({"name": "s", "parts": {"one": part}})
    assert suite.parts["one"].adaptive and suite.parts["one"].seed_plan == (3, 2, 5)


def test_the_command_line_sets_the_keys_no_ablation_file_names():
    """`ablation.max_seeds=4` works on any ablation file (they do not name it), and a list-of-seeds ablation given
    one of those keys is refused in one line (seed_keys, then Ablation.from_dict)."""
    from omegaconf import OmegaConf

    from ablations import api
    from ablations.config import compose_config
    from ablations.config.ablation import load_ablation

    overrides = seed_keys(["ablation=default", "ablation.seeds=auto", "ablation.max_seeds=4",
                                "+ablation.seed_step=1", "model.d_model=32"])
    assert overrides == ["ablation=default", "ablation.seeds=auto", "++ablation.max_seeds=4", "+ablation.seed_step=1",
                         "model.d_model=32"]
    ablation = load_ablation(OmegaConf.to_container(compose_config(overrides).ablation, resolve=True))
    assert ablation.adaptive and ablation.seed_plan == (3, 1, 4)
    assert seed_keys(["ablation.parts.depth.min_seeds=2"]) == ["++ablation.parts.depth.min_seeds=2"]
    with pytest.raises(ConfigError, match="applies only with ablation.seeds=auto"):
        api.run(["ablation=default", "ablation.max_seeds=4"])
