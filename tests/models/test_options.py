"""models/config.py, component options: a component's `Options` dataclass gets its values from
`model.options.<name>`, strictly, with defaults filled in so that results record what ran."""

import dataclasses
import json

import pytest
from torch import nn

import models  # noqa: F401  (registers every variant)
from models.components import FFN
from models.config import ModelConfig
from models.errors import ConfigError
from models.transformer import build_model


@pytest.fixture
def widened(isolated_plugins):
    """An ffn `widened` whose hidden width is a multiple of d_model, set by its options."""

    @FFN.register("widened")
    class Widened(nn.Module):
        @dataclasses.dataclass(frozen=True)
        class Options:
            factor: int = 2
            scale: float = 1.0
            gelu: bool = True

            def __post_init__(self):
                if self.factor < 1:
                    raise ValueError(f"factor must be >= 1, got {self.factor}")

        def __init__(self, cfg):
            super().__init__()
            options = cfg.component_options(self)
            self.options = options
            self.out_proj = nn.Linear(cfg.d_model * options.factor, cfg.d_model)
            self.up = nn.Linear(cfg.d_model, cfg.d_model * options.factor)

        def forward(self, x):
            return self.out_proj(self.up(x))

    return Widened


def test_defaults_are_filled_in_and_reach_the_component(widened):
    cfg = ModelConfig(d_model=16, n_heads=2, ffn="widened")
    assert cfg.options == {"widened": {"factor": 2, "scale": 1.0, "gelu": True}}
    assert build_model(cfg, vocab_size=5).blocks[0].ffn.up.out_features == 32
    changed = ModelConfig.from_dict({"d_model": 16, "n_heads": 2, "ffn": "widened",
                                     "options": {"widened": {"factor": 3, "scale": 2}}})
    assert changed.options["widened"] == {"factor": 3, "scale": 2.0, "gelu": True}
    assert build_model(changed, vocab_size=5).blocks[0].ffn.options.factor == 3
    assert ModelConfig.from_dict(changed.to_dict()) == changed
    assert hash(changed) != hash(cfg) and len({changed, cfg}) == 2
    json.dumps(changed.to_dict())


def test_built_in_configs_have_no_options_and_keep_their_dict():
    cfg = ModelConfig()
    assert cfg.options == {} and "options" not in cfg.to_dict()
    assert hash(cfg) == hash(ModelConfig())


@pytest.mark.parametrize("options, fragment", [
    ({"widened": {"factr": 3}}, "unknown option 'model.options.widened.factr' (did you mean 'factor'?); valid: "
                                "model.options.widened.factor, model.options.widened.scale, model.options.widened.gelu"),
    ({"widened": {"factor": "3"}}, "model.options.widened.factor must be int like its default 2, got '3'"),
    ({"widened": {"gelu": 1}}, "model.options.widened.gelu must be bool like its default True, got 1"),
    ({"widened": {"factor": 0}}, "model.options.widened: factor must be >= 1, got 0"),
    ({"widened": 3}, "model.options.widened must be a mapping"),
    ({"layernorm": {"x": 1}}, "model.options.layernorm: component 'layernorm' declares no Options"),  # selected
    ({"swiglu": {"x": 1}}, "model.options.swiglu is set but no model.<kind>=swiglu is selected; components of this "
                           "config with options: widened"),
], ids=["unknown-key", "wrong-type", "bool", "post-init", "not-a-mapping", "no-options", "not-selected"])
def test_bad_options_are_one_line_errors(widened, options, fragment):
    with pytest.raises(ConfigError) as info:
        ModelConfig(d_model=16, n_heads=2, ffn="widened", options=options)
    assert fragment in str(info.value) and "\n" not in str(info.value)
