"""tasks/moving_digits.py: every clip is one sklearn digit rolled by the direction vector per frame."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.errors import ConfigError
from tasks import TASKS
from tasks.base import SPLITS
from tasks.digits import _partition
from tasks.moving_digits import DIRECTIONS


def task(**params):
    return TASKS.get("moving_digits")(**params)


def frames_of(tokens, frames, canvas, side):
    """Undo the tokenisation with loops: (frames * (canvas/side)**2, side*side) -> (frames, canvas, canvas)."""
    per_row = canvas // side
    out = np.zeros((frames, canvas, canvas), dtype=np.float32)
    for k, token in enumerate(tokens):
        frame, patch = divmod(k, per_row * per_row)
        row, col = divmod(patch, per_row)
        out[frame, row * side:(row + 1) * side, col * side:(col + 1) * side] = token.reshape(side, side)
    return out


CASES = [dict(), dict(canvas=16, frames=4), dict(directions=8, step=2, canvas=10, frames=3),
         dict(patch=4, rotate=True), dict(patch=2, canvas=8, frames=2, step=3, directions=8, rotate=True)]


@pytest.mark.parametrize("params", CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
@pytest.mark.parametrize("split", SPLITS)
def test_each_frame_is_the_first_rolled_by_the_direction_and_the_first_is_a_sklearn_digit(params, split):
    t = task(**params)
    p = t.params
    side = p.patch or p.canvas
    images = load_digits().images.astype(np.float32) / 16.0
    n = 60
    data, choice = t.make_split(split, n, seed=5), t.draw(split, n, seed=5)
    assert data.inputs.shape == (n, t.max_len(), t.input_dim)
    assert torch.equal(data.targets, choice["label"])
    for i in range(n):
        clip = frames_of(data.inputs[i].numpy(), p.frames, p.canvas, side)
        dy, dx = DIRECTIONS[int(data.targets[i])]
        for f in range(1, p.frames):
            expected = np.roll(np.roll(clip[0], f * p.step * dy, axis=0), f * p.step * dx, axis=1)
            assert np.array_equal(clip[f], expected), (i, f)
        # the first frame, rolled back to its start, is a digit of the split's images (turned) in the corner
        y, x = choice["start"][i].tolist()
        back = np.roll(np.roll(clip[0], -y, axis=0), -x, axis=1)
        digit = np.rot90(images[int(choice["image"][i])], k=int(choice["turns"][i]))
        assert np.array_equal(back[:8, :8], digit)
        assert not back[8:, :].any() and not back[:, 8:].any()
        assert int(choice["image"][i]) in set(_partition(len(images))[split].tolist())
        if not p.rotate:
            assert int(choice["turns"][i]) == 0


@pytest.mark.parametrize("n,directions", [(1000, 4), (1001, 4), (803, 8), (3, 4)])
def test_labels_are_balanced(n, directions):
    counts = torch.bincount(task(directions=directions).make_split("train", n, seed=1).targets,
                            minlength=directions)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_a_single_frame_does_not_reveal_the_direction():
    """Start positions are uniform over the torus: per direction, every frame's digit position is spread over
    the whole canvas, with the same distribution (checked here by its support and rough uniformity)."""
    t = task(canvas=12, frames=4)
    n = 8000
    choice = t.draw("train", n, seed=0)
    for label in range(4):
        chosen = choice["label"] == label
        velocity = torch.tensor(DIRECTIONS[label])
        for f in range(4):
            position = (choice["start"][chosen] + f * velocity) % 12
            counts = torch.bincount(position[:, 0] * 12 + position[:, 1], minlength=144).float()
            assert (counts > 0).all() and counts.max() < 3 * counts.mean()


def test_declared_layout():
    t = task(canvas=16, frames=5, patch=4, directions=8)
    assert t.input_dim == 16 and t.max_len() == 5 * 16 and t.n_classes == 8 and t.chance == pytest.approx(1 / 8)
    t = task()
    assert t.input_dim == 12 * 12 and t.max_len() == 6


@pytest.mark.parametrize("params,match", [
    (dict(canvas=7), "at least 8"), (dict(directions=6), "valid: 4, 8"), (dict(step=6), "below canvas / 2"),
    (dict(patch=5), "divisor"), (dict(patch=-1), "divisor"), (dict(frames=1), "at least 2"),
    (dict(rotate="yes"), "true or false"), (dict(n_train=0), "positive integer"),
])
def test_invalid_parameters_are_one_line_errors(params, match):
    with pytest.raises(ConfigError, match=match) as info:
        task(**params)
    assert "\n" not in str(info.value)
