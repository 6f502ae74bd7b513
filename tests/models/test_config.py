"""models/config.py: ModelConfig validation."""

import dataclasses
import re

import pytest

import models  # noqa: F401  (registers every variant)
from models.components import REGISTRIES
from models.config import LATER_FIELDS, MOVED_FIELDS, ModelConfig, current_form
from models.errors import ConfigError

FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]


def test_defaults_are_valid_and_round_trip():
    cfg = ModelConfig()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    # `options` is left out while empty, and fields added later while at their defaults, so configs and hashes
    # recorded before them are unchanged
    assert list(cfg.to_dict()) == [name for name in FIELDS if name not in ("options", *LATER_FIELDS)]


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
    assert re.search(r"\(did you mean '(model\.)?attention'\?\)", message)
    for name in FIELDS:
        assert f"model.{name}" in message
    assert "\n" not in message


SIZES = ["d_model", "n_layers", "n_heads", "d_ff"]
COUNTS = [name for name in ("kv_heads", "segment_len") if name in FIELDS]  # 0 allowed: "off" / "default"


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("value", [0, -4, 2.0, 2.5, "4", None, True, False])
def test_sizes_must_be_positive_integers(name, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{name: value})
    assert f"model.{name}" in str(info.value)
    assert "positive integer" in str(info.value)


@pytest.mark.parametrize("name", COUNTS)
@pytest.mark.parametrize("value", [-1, 1.0, "2", None, True])
def test_counts_must_be_non_negative_integers(name, value):
    with pytest.raises(ConfigError, match=f"model.{name}"):
        ModelConfig(**{name: value})


@pytest.mark.skipif("kv_heads" not in FIELDS, reason="no grouped key/value heads")
def test_kv_heads_must_divide_n_heads():
    ModelConfig(d_model=16, n_heads=4, kv_heads=2)
    ModelConfig(d_model=16, n_heads=4, kv_heads=1)
    with pytest.raises(ConfigError) as info:
        ModelConfig(d_model=16, n_heads=4, kv_heads=3)
    assert "model.n_heads=4" in str(info.value) and "model.kv_heads=3" in str(info.value)


@pytest.mark.skipif("pool" not in FIELDS, reason="no pool option")
def test_unknown_pool():
    with pytest.raises(ConfigError) as info:
        ModelConfig(pool="maen")
    assert "did you mean 'mean'" in str(info.value) and "cls" in str(info.value)


@pytest.mark.parametrize("name", [n for n in ("attn_residual", "ffn_residual") if n in FIELDS])
def test_per_branch_residuals(name):
    from models.components import RESIDUAL
    for mode in RESIDUAL.names():
        assert getattr(ModelConfig(**{name: mode}), name) == mode
    with pytest.raises(ConfigError) as info:
        ModelConfig(**{name: "nope"})
    assert "valid: " + ", ".join(RESIDUAL.names()) in str(info.value)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, "0.1", None])
def test_dropout_must_be_a_probability_below_one(value):
    with pytest.raises(ConfigError, match="model.dropout"):
        ModelConfig(dropout=value)


@pytest.mark.parametrize("name", [n for n in ("final_norm", "tie_head", "zero_init_branches") if n in FIELDS])
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
def test_the_default_of_every_component_is_registered(field):
    assert getattr(ModelConfig(), field) in REGISTRIES[field]


@pytest.mark.parametrize("value", [["softmax"], {"a": 1}], ids=["list", "dict"])
def test_unhashable_component_name_is_a_config_error(value):
    with pytest.raises(ConfigError, match="attention"):
        ModelConfig(attention=value)


def test_a_position_needing_what_the_attention_lacks_is_rejected(monkeypatch):
    from models.components import POSITION, Position

    class NeedsMagic(Position):
        needs = frozenset({"magic"})

    monkeypatch.setitem(POSITION._entries, "needs_magic", NeedsMagic)
    with pytest.raises(ConfigError) as info:
        ModelConfig(position="needs_magic")
    message = str(info.value)
    assert "model.position=needs_magic" in message and "magic" in message and "model.attention=softmax" in message


@pytest.mark.skipif("memory" not in FIELDS, reason="no memory component")
def test_a_segmented_memory_needs_a_segment_length(monkeypatch):
    from torch import nn

    from models.components import MEMORY

    class Segmented(nn.Module):
        needs = frozenset()
        segmented = True

    monkeypatch.setitem(MEMORY._entries, "segmented_test", Segmented)
    with pytest.raises(ConfigError, match="model.segment_len"):
        ModelConfig(memory="segmented_test")
    assert ModelConfig(memory="segmented_test", segment_len=4).segment_len == 4


@pytest.mark.skipif("residual_scale" not in FIELDS, reason="no residual_scale option")
def test_nan_residual_scale_is_rejected():
    with pytest.raises(ConfigError, match="model.residual_scale"):
        ModelConfig(residual_scale=float("nan"))


# --- the fields that moved into components' options (#19) ----------------------------------------------------

#: Each built-in that took over a former field, with a config selecting it (a segmented memory needs segments)
OWNERS = {"local": {"attention": "local"}, "performer": {"attention": "performer"}, "tokens": {"memory": "tokens"},
          "persistent": {"memory": "persistent"}, "recurrent": {"memory": "recurrent", "segment_len": 8},
          "xl": {"memory": "xl", "segment_len": 8}, "knn": {"memory": "knn", "segment_len": 8}}
OLD_DEFAULTS = {"window": 16, "n_features": 64, "memory_size": 8}


def test_the_former_fields_are_gone_and_each_owner_declares_its_options_with_the_old_default():
    assert not set(MOVED_FIELDS) & set(FIELDS)
    assert {field: default for field, (default, _) in MOVED_FIELDS.items()} == OLD_DEFAULTS
    owners = {owner: names for _, (_, by_owner) in MOVED_FIELDS.items() for owner, names in by_owner.items()}
    assert set(owners) == set(OWNERS)
    for owner, names in owners.items():
        options = ModelConfig(**OWNERS[owner]).options[owner]
        field = next(f for f, (_, by_owner) in MOVED_FIELDS.items() if owner in by_owner)
        assert {name: options[name] for name in names} == dict.fromkeys(names, OLD_DEFAULTS[field])


def _old_shape(**values) -> dict:
    """A model config as result.json recorded it before the move: every former field at top level."""
    return {**ModelConfig().to_dict(), **OLD_DEFAULTS, **values}


@pytest.mark.parametrize("owner", list(OWNERS))
def test_a_config_written_before_the_move_reads_as_its_option_and_hashes_as_before(owner):
    field = next(f for f, (_, by_owner) in MOVED_FIELDS.items() if owner in by_owner)
    old = _old_shape(**OWNERS[owner], **{field: 3})
    cfg = ModelConfig.from_dict(old)
    names = MOVED_FIELDS[field][1][owner]
    assert cfg.options[owner] == dict.fromkeys(names, 3)
    assert cfg.hash_form() == old  # the shape (and so the hash) of the run recorded before the move
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg  # and the new shape reads back as itself


def test_a_former_field_that_no_selected_component_uses_is_dropped():
    cfg = ModelConfig.from_dict(_old_shape())  # softmax, no memory: the three old defaults changed nothing
    assert cfg == ModelConfig() and "options" not in cfg.to_dict()
    assert cfg.hash_form() == _old_shape()
    assert current_form({"attention": "softmax", "window": 4}) == {"attention": "softmax"}


def test_the_old_shape_cannot_hold_knn_top_k_apart_from_its_kept_segments_so_that_config_keeps_its_options():
    together = ModelConfig(memory="knn", segment_len=8, options={"knn": {"top_k": 4, "kept_segments": 4}})
    apart = ModelConfig(memory="knn", segment_len=8, options={"knn": {"top_k": 4, "kept_segments": 16}})
    assert together.hash_form()["memory_size"] == 4 and "options" not in together.hash_form()
    assert apart.hash_form()["options"] == {"knn": {"top_k": 4, "kept_segments": 16}}
    assert apart.hash_form() != together.hash_form()


def test_a_former_field_and_its_option_set_apart_is_one_line():
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({"attention": "local", "window": 4, "options": {"local": {"window": 5}}})
    assert str(info.value) == ("model.window=4 (its former name) and model.options.local.window=5 set one option "
                               "twice; keep model.options.local.window")
    # the same value twice is one setting
    assert ModelConfig.from_dict({"attention": "local", "window": 4, "options": {"local": {"window": 4}}}).options \
        == {"local": {"window": 4}}


@pytest.mark.parametrize("owner", list(OWNERS))
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_the_moved_options_must_be_positive_integers(owner, value):
    name = next(names for _, (_, by_owner) in MOVED_FIELDS.items() for o, names in by_owner.items() if o == owner)[0]
    with pytest.raises(ConfigError) as info:
        ModelConfig(**OWNERS[owner], options={owner: {name: value}})
    assert str(info.value).startswith(f"model.options.{owner}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("former", list(MOVED_FIELDS))
@pytest.mark.parametrize("value", [0, "4", None, True])
def test_a_former_field_is_still_checked_where_no_component_uses_it(former, value):
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_dict({former: value})  # softmax, no memory: the value would be dropped
    assert str(info.value) == f"model.{former} must be a positive integer, got {value!r}"
