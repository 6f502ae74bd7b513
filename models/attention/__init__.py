"""Variants of the `attention` component; each file registers itself on import (see `models.components`)."""
from models.registry import import_submodules

import_submodules(__name__)
