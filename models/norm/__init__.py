"""Normalisation layers, registered in `models.components.NORM`; one file per variant."""
from models.registry import import_submodules

import_submodules(__name__)
