"""Initialisation schemes (registry `init`, selected by `model.init`); each file registers itself on import.

Why a registry: init changes depth and normalisation results (a 32-layer stack without norms trains under
N(0, 0.02) and diverges under PyTorch's defaults), so it is an ablation variable like any component, and a plugin
adds a scheme with `@INIT.register("name")` exactly as it adds an attention variant (see `models/components.py`).
"""
from models.registry import import_submodules

import_submodules(__name__)
