"""models/config.py: ModelConfig validation."""

import dataclasses

import pytest

import models  # noqa: F401  (registers every variant)
from models.components import REGISTRIES
from models.config import ModelConfig
from models.errors import ConfigError

FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]


def test_defaults_are_valid_and_round_trip():
    cfg = ModelConfig()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert list(cfg.to_dict()) == FIELDS


def test_from_dict_sets_values():
    cfg = ModelConfig.from_dict({"d_model": 16, "n_heads": 2, "residual": "none"})
    assert (cfg.d_model, cfg.n_heads, cfg.residual) == (16, 2, "none")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().d_model = 8


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({"atention": "softmax"})
    message = str(info.value)
    assert "'model.atention'" in message
    assert "(did you mean 'attention'?)" in message
    for name in FIELDS:
        assert f"model.{name}" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["d_model", "n_layers", "n_heads", "d_ff"])
@pytest.mark.parametrize("value", [0, -4, 2.0, 2.5, "4", None, True, False])
def test_sizes_must_be_positive_integers(name, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{name: value})
    assert f"model.{name}" in str(info.value)
    assert "positive integer" in str(info.value)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "0.1", None])
def test_dropout_must_be_a_probability_below_one(value):
    with pytest.raises(ConfigError, match="model.dropout"):
        ModelConfig(dropout=value)


@pytest.mark.parametrize("name", ["final_norm", "tie_head"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_flags_must_be_booleans(name, value):
    with pytest.raises(ConfigError, match=f"model.{name}"):
        ModelConfig(**{name: value})


def test_d_model_not_divisible_by_n_heads_names_both():
    with pytest.raises(ConfigError) as info:
        ModelConfig(d_model=30, n_heads=4)
    message = str(info.value)
    assert "model.d_model=30" in message and "model.n_heads=4" in message
    ModelConfig(d_model=32, n_heads=4)  # divisible: fine


@pytest.mark.parametrize("field", sorted(REGISTRIES))
def test_unknown_component_lists_the_valid_names(field):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{field: "no_such_variant"})
    message = str(info.value)
    assert "'no_such_variant'" in message
    assert REGISTRIES[field].kind in message
    assert message.endswith("valid: " + ", ".join(REGISTRIES[field].names()))


@pytest.mark.parametrize("field", sorted(REGISTRIES))
def test_every_registered_component_is_accepted(field):
    for name in REGISTRIES[field].names():
        assert getattr(ModelConfig(**{field: name}), field) == name
