"""tasks/digits_pixels.py: the same images as `digits`, read pixel by pixel (raster or one fixed permutation)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS
from tasks.digits_pixels import pixel_order


def task(**params):
    return TASKS.get("digits_pixels")(**params)


@pytest.mark.parametrize("split", SPLITS)
def test_raster_sequence_is_the_patch_1_digits_sequence(split):
    """Same images, labels, order and partition as `digits` with 1x1 patches, for every split."""
    pixels, digits = task(), TASKS.get("digits")(patch=1)
    n = pixels.split_size(split)
    assert n == digits.split_size(split)
    a, b = pixels.make_split(split, n, seed=2), digits.make_split(split, n, seed=2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert a.inputs.shape == (n, 64, 1)


def test_pixels_are_sklearn_images_in_raster_order():
    data = load_digits()
    lookup = {(image.astype(np.float32) / 16.0).tobytes(): i for i, image in enumerate(data.images)}
    split = task().make_split("test", 100, seed=0)
    for row, label in zip(split.inputs.numpy(), split.targets.tolist()):
        key = row[:, 0].reshape(8, 8).tobytes()
        assert key in lookup and int(data.target[lookup[key]]) == label


def test_permuted_order_is_one_fixed_permutation():
    order = pixel_order(True)
    assert sorted(order.tolist()) == list(range(64)) and not torch.equal(order, torch.arange(64))
    assert torch.equal(order, pixel_order(True))
    raster = task().make_split("val", 50, seed=0)
    permuted = task(permute=True).make_split("val", 50, seed=0)
    assert torch.equal(permuted.targets, raster.targets)
    assert torch.equal(permuted.inputs[:, :, 0], raster.inputs[:, order, 0])
    inverse = torch.argsort(order)
    assert torch.equal(permuted.inputs[:, inverse], raster.inputs)


def test_declared_shapes():
    t = task()
    assert t.input_dim == 1 and t.max_len() == 64 and t.n_classes == 10 and t.chance == pytest.approx(0.1)
    assert t.output_kind == "sequence" and t.input_kind == "continuous"


@pytest.mark.parametrize("value", [1, "yes", None])
def test_permute_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="task.permute of task digits_pixels"):
        task(permute=value)


def test_too_many_examples_are_rejected():
    with pytest.raises(ConfigError, match="val images"):
        task().make_split("val", 10_000, seed=0)
