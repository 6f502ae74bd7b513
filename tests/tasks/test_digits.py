"""tasks/digits.py: patches reassemble into scikit-learn's images, splits are disjoint and fixed."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS


@pytest.fixture(scope="module")
def sklearn_digits():
    data = load_digits()
    images = data.images.astype(np.float32) / 16.0
    lookup = {image.tobytes(): i for i, image in enumerate(images)}
    assert len(lookup) == len(images), "the test assumes no two images are identical"
    return images, data.target, lookup


def digits(**params):
    return TASKS.get("digits")(**params)


def reassemble(patches, p):
    """Undo the row-major patching with loops: (time, p*p) -> (8, 8)."""
    side = 8 // p
    image = np.zeros((8, 8), dtype=np.float32)
    for k in range(patches.shape[0]):
        row, col = divmod(k, side)
        for a in range(p):
            for b in range(p):
                image[row * p + a, col * p + b] = patches[k, a * p + b]
    return image


def image_indices(split, p, lookup):
    """The sklearn index of every example of a split, found by its reassembled content."""
    found = []
    for patches in split.inputs.numpy():
        key = reassemble(patches, p).tobytes()
        assert key in lookup, "a reassembled image is not one of scikit-learn's"
        found.append(lookup[key])
    return found


@pytest.mark.parametrize("p", [1, 2, 4, 8])
def test_patches_reassemble_into_the_original_images_with_their_labels(p, sklearn_digits):
    images, labels, lookup = sklearn_digits
    task = digits(patch=p)
    assert task.input_dim == p * p and task.max_len() == (8 // p) ** 2
    for split in ("val", "test"):
        data = task.make_split(split, task.split_size(split), seed=0)
        assert data.inputs.shape == (len(data), (8 // p) ** 2, p * p)
        assert data.inputs.dtype == torch.float32
        index = image_indices(data, p, lookup)
        assert data.targets.tolist() == [int(labels[i]) for i in index]


def test_splits_partition_the_images(sklearn_digits):
    images, labels, lookup = sklearn_digits
    task = digits(patch=2)
    seen = {}
    for split in SPLITS:
        data = task.make_split(split, task.split_size(split), seed=0)
        index = image_indices(data, 2, lookup)
        assert len(set(index)) == len(index), f"{split} repeats an image"
        assert data.targets.tolist() == [int(labels[i]) for i in index]
        seen[split] = set(index)
    assert not seen["train"] & seen["val"]
    assert not seen["train"] & seen["test"]
    assert not seen["val"] & seen["test"]
    assert seen["train"] | seen["val"] | seen["test"] == set(range(len(images)))
    n = len(images)
    assert len(seen["test"]) == int(n * 0.2) and len(seen["val"]) == int(n * 0.1)


def test_pixels_are_scaled_to_unit_range():
    data = digits(patch=4).make_split("test", 50, seed=0)
    assert data.inputs.min() >= 0 and data.inputs.max() <= 1 and data.inputs.max() == 1


def test_evaluation_splits_do_not_depend_on_the_seed():
    task = digits(patch=2)
    for split in ("val", "test"):
        a, b = task.make_split(split, 30, seed=0), task.make_split(split, 30, seed=5)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def test_the_seed_orders_the_training_images(sklearn_digits):
    _, _, lookup = sklearn_digits
    task = digits(patch=2)
    n = task.split_size("train")
    a, b = task.make_split("train", n, seed=0), task.make_split("train", n, seed=1)
    index_a, index_b = image_indices(a, 2, lookup), image_indices(b, 2, lookup)
    assert index_a != index_b and sorted(index_a) == sorted(index_b)
    subset = task.make_split("train", 25, seed=1)
    assert image_indices(subset, 2, lookup) == index_b[:25]


def test_too_many_examples_requested():
    task = digits()
    with pytest.raises(ConfigError, match="digits has"):
        task.make_split("val", task.split_size("val") + 1, seed=0)


@pytest.mark.parametrize("patch", [3, 5, 6, 7, 16])
def test_patch_must_divide_eight(patch):
    with pytest.raises(ConfigError) as info:
        digits(patch=patch)
    assert f"task.patch={patch}" in str(info.value) and "valid: 1, 2, 4, 8" in str(info.value)


@pytest.mark.parametrize("patch", [0, -2, 2.0, True])
def test_patch_must_be_a_positive_integer(patch):
    with pytest.raises(ConfigError, match="task.patch"):
        digits(patch=patch)


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError) as info:
        digits(pach=2)
    message = str(info.value)
    assert "'task.pach'" in message and "(did you mean 'patch'?)" in message and "valid: task.patch" in message


def test_sequence_level_classification_over_ten_classes():
    task = digits()
    assert task.output_kind == "sequence" and task.input_kind == "continuous" and not task.causal
    assert task.n_classes == 10 and task.chance == pytest.approx(0.1)
    assert task.vocab_size is None
