"""`digits_pixels`: classify scikit-learn's 8x8 digits read one pixel at a time (sequential image, long range).

Each image becomes a sequence of its 64 pixel intensities in raster order (row by row), one scalar per
position (`input_dim` 1), and the model names the digit from the whole sequence (the head mean-pools). Unlike
the patch version (`digits`), no token carries any 2-D structure: the model must relate pixels 8 positions
apart (vertical neighbours) as well as adjacent ones, from learned 1-D positions alone. `task.permute=true`
reads the pixels in one fixed random order instead (the same for every image, split and seed), which destroys
locality altogether. This is the small-scale analogue of pixel-by-pixel MNIST and its permuted variant
(Le, Jaitly & Hinton, 2015, https://arxiv.org/abs/1504.00941), used for long-range sequence models.

The images and their fixed train/val/test partition are those of `digits` (tasks/digits.py), so both tasks are
scored on the same test images; the run seed only changes which training images and their order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Split, Task
from tasks.digits import _images, _partition, select_images

_PERMUTATION_SEED = 15040941  # fixes the pixel order of `permute=true`, independent of run seeds


def pixel_order(permute: bool) -> torch.Tensor:
    """Raster indices 0..63 in reading order: identity, or one fixed permutation."""
    if not permute:
        return torch.arange(64)
    return torch.randperm(64, generator=torch.Generator().manual_seed(_PERMUTATION_SEED))


@TASKS.register("digits_pixels")
class DigitsPixels(Task):
    modality = "image"
    input_kind = "continuous"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        permute: bool = False  # read pixels in one fixed random order (permuted pixel task)

    def validate(self):
        if not isinstance(self.params.permute, bool):
            raise ConfigError(f"task.permute of task digits_pixels must be true or false, "
                              f"got {self.params.permute!r}")

    @property
    def input_dim(self) -> int:
        return 1

    @property
    def n_classes(self) -> int:
        return 10

    def max_len(self) -> int:
        return 64

    def split_size(self, split: str) -> int:
        return len(_partition(len(_images()[1]))[split])

    def make_split(self, split: str, n: int, seed: int) -> Split:
        images, labels = select_images(self.name, split, n, seed)
        pixels = images.reshape(n, 64)[:, pixel_order(self.params.permute)]
        return Split(pixels.unsqueeze(-1).contiguous(), labels)
