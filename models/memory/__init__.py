"""Memory modules: how a model reads beyond the tokens in front of it; each file registers itself on import.

A memory wraps the trunk. `forward(h, run_blocks)` receives the embedded input `h` (batch, time, d_model) and a
function `run_blocks(h, prefix_fn=None)` that runs every block; `prefix_fn(layer_index, block, h_in)` may return
extra always-visible (keys, values) for that layer's attention, shaped (batch or 1, heads, slots, head_dim), or
None. A memory returns hidden states for exactly the input positions.
"""
from models.registry import import_submodules

import_submodules(__name__)
