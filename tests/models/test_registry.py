"""models/registry.py: name -> class registries."""

import importlib
import pkgutil

import pytest

import models  # noqa: F401  (registers every variant)
from models.components import REGISTRIES
from models.errors import ConfigError
from models.registry import Registry, closest


def _registry_with(*names):
    registry = Registry("widget")
    for name in names:
        registry.register(name)(type(f"Widget_{name}", (), {}))
    return registry


def test_register_returns_the_class_and_records_its_name():
    registry = Registry("widget")

    @registry.register("round")
    class Round:
        pass

    assert registry.get("round") is Round
    assert Round.registered_name == "round"
    assert "round" in registry and "square" not in registry
    assert len(registry) == 1


def test_duplicate_name_is_rejected_and_the_first_entry_is_kept():
    registry = Registry("widget")

    @registry.register("round")
    class First:
        pass

    class Second:
        pass

    with pytest.raises(ConfigError) as info:
        registry.register("round")(Second)
    message = str(info.value)
    assert "duplicate" in message and "'round'" in message and "widget" in message
    assert First.__module__ in message  # names who registered it first
    assert registry.get("round") is First
    assert not hasattr(Second, "registered_name")


def test_registering_the_same_class_twice_is_harmless():
    # re-importing a variant module must not fail
    registry = Registry("widget")

    class Round:
        pass

    registry.register("round")(Round)
    registry.register("round")(Round)
    assert registry.names() == ["round"]


def test_names_are_sorted():
    assert _registry_with("zeta", "alpha", "mid").names() == ["alpha", "mid", "zeta"]


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    registry = _registry_with("softmax", "linear", "local")
    with pytest.raises(ConfigError) as info:
        registry.get("sofmax")
    message = str(info.value)
    assert "unknown widget 'sofmax'" in message
    assert "(did you mean 'softmax'?)" in message
    assert message.endswith("valid: linear, local, softmax")
    assert "\n" not in message


def test_unknown_name_without_a_close_match_has_no_hint():
    registry = _registry_with("softmax", "linear")
    with pytest.raises(ConfigError) as info:
        registry.get("qqqqqqqqqq")
    assert "did you mean" not in str(info.value)
    assert "valid: linear, softmax" in str(info.value)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        _registry_with("a").get("b")


@pytest.mark.parametrize("field", sorted(REGISTRIES))
def test_real_registries_name_every_valid_choice(field):
    registry = REGISTRIES[field]
    assert len(registry) >= 1
    first = registry.names()[0]
    with pytest.raises(ConfigError) as info:
        registry.get(first + "x")
    message = str(info.value)
    assert f"(did you mean '{first}'?)" in message
    for name in registry.names():
        assert name in message


def test_closest():
    assert closest("atention", ["attention", "ffn"]) == " (did you mean 'attention'?)"
    assert closest("zzz", ["attention", "ffn"]) == ""


def _variant_package(field):
    """The package holding a registry's variant files: the common parent of its variants' modules."""
    registry = REGISTRIES[field]  # built-ins only: plugins live in their own modules (see ablations/plugins.py)
    packages = {registry.get(name).__module__.rpartition(".")[0] for name in registry.names()
                if registry.plugin_of(name) is None}
    assert len(packages) == 1, f"{field} variants live in several packages: {packages}"
    return packages.pop()


@pytest.mark.parametrize("field", sorted(REGISTRIES))
def test_every_variant_file_registers_itself(field):
    package = importlib.import_module(_variant_package(field))
    assert package.__name__.startswith("models.")
    files = {f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
             if not info.name.startswith("_")}
    registered = {REGISTRIES[field].get(name).__module__ for name in REGISTRIES[field].names()
                  if REGISTRIES[field].plugin_of(name) is None}
    assert files == registered, "a variant file registers nothing, or a variant lives outside its package"
