"""Shared test set-up.

The tests use tiny models, for which intra-op threads only add synchronisation overhead; on a busy 2-core
machine a spinning second thread can make each op 100x slower. One thread keeps the suite fast and its
timing predictable.
"""

import torch

torch.set_num_threads(1)
