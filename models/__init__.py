"""The configurable transformer: `ModelConfig` (plain values), `build_model`, and one registry per component."""

import models.attention  # noqa: F401  (each subpackage registers its variants on import)
import models.ffn  # noqa: F401
import models.memory  # noqa: F401
import models.norm  # noqa: F401
import models.placement  # noqa: F401
import models.position  # noqa: F401
import models.residual  # noqa: F401  (imported for its registrations)
from models.components import REGISTRIES
from models.config import ModelConfig
from models.errors import ConfigError
from models.transformer import Block, Transformer, build_model

__all__ = ["REGISTRIES", "Block", "ConfigError", "ModelConfig", "Transformer", "build_model"]
