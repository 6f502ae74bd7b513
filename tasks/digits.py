"""`digits`: classify scikit-learn's 8x8 handwritten digit images (real data, image modality).

Each image becomes a sequence of `patch x patch` patches (row-major), projected linearly into the model, as a
Vision Transformer does (Dosovitskiy et al., 2021, https://arxiv.org/abs/2010.11929); the head mean-pools.
The 1,797 images are split once, by a fixed permutation, into train/val/test, so that every seed and variant
is scored on the same test images; the run seed only changes the training order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from models.errors import ConfigError
from tasks.base import SPLITS, TASKS, Split, Task, positive_int

_SPLIT_SEED = 20240607      # fixes the train/val/test partition of the images, independent of run seeds
_FRACTIONS = {"val": 0.1, "test": 0.2}


@lru_cache(maxsize=1)
def _images() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # the data ship inside scikit-learn: no download

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0  # pixel values are 0..16
    return images, torch.tensor(data.target, dtype=torch.long)


def _partition(n_total: int) -> dict[str, torch.Tensor]:
    order = torch.randperm(n_total, generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_test, n_val = int(n_total * _FRACTIONS["test"]), int(n_total * _FRACTIONS["val"])
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}


def select_images(task: str, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 8, 8) and labels of a split; the seed picks which training images (when n is smaller)
    and their order, while val and test are fixed."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")
    images, labels = _images()
    index = _partition(len(labels))[split]
    if n > len(index):
        raise ConfigError(f"{task} has {len(index)} {split} images, {n} requested")
    if split == "train":
        index = index[torch.randperm(len(index), generator=torch.Generator().manual_seed(seed))]
    index = index[:n]
    return images[index], labels[index]


@TASKS.register("digits")
class Digits(Task):
    modality = "image"
    input_kind = "continuous"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        patch: int = 2  # side of a square patch in pixels; must divide 8

    def validate(self):
        positive_int(self.name, patch=self.params.patch)
        if 8 % self.params.patch:
            raise ConfigError(f"task.patch={self.params.patch} must divide the image side 8; valid: 1, 2, 4, 8")

    @property
    def input_dim(self) -> int:
        return self.params.patch ** 2

    @property
    def n_classes(self) -> int:
        return 10

    def max_len(self) -> int:
        return (8 // self.params.patch) ** 2

    def split_size(self, split: str) -> int:
        return len(_partition(len(_images()[1]))[split])

    def make_split(self, split: str, n: int, seed: int) -> Split:
        x, labels = select_images(self.name, split, n, seed)  # (n, 8, 8), (n,)
        p = self.params.patch
        patches = x.unfold(1, p, p).unfold(2, p, p).reshape(n, (8 // p) ** 2, p * p)
        return Split(patches.contiguous(), labels)
