"""`moving_digits`: name the direction in which a handwritten digit moves through a short clip (video, motion).

A clip is `frames` frames of a `canvas x canvas` image in which one of scikit-learn's 8x8 digits moves by
`step` pixels per frame in one of 4 directions (right, down, left, up) or 8 (with the diagonals); the label is
the direction (`DIRECTIONS[label]` is its (row, column) displacement per frame). The canvas wraps around (a
torus): what leaves one edge re-enters at the opposite one. With a start position drawn uniformly over the
whole canvas, every single frame has the same distribution whatever the direction (uniform position, same
digits), so no frame on its own reveals the label: the model must compare frames. A bag of frames without
their order tells horizontal from vertical motion but not left from right, so the task also needs the order
of the frames (positions). Toroidal moving digits follow Moving MNIST (Srivastava et al., 2015,
https://arxiv.org/abs/1502.04681), here reduced to classifying the motion.

Tokens (`task.patch`): by default one token per frame, the frame's pixels flattened row-major
(`input_dim = canvas**2`), projected linearly into the model, so the sequence is the clip's time axis and every
comparison between frames is one between tokens; `task.patch=P` cuts each frame into PxP patches instead (one
token per patch, frame by frame, patches row-major: `frames * (canvas / P)**2` tokens of `P*P` pixels, i.e.
tubelets of temporal extent 1 as in ViViT, Arnab et al., 2021, https://arxiv.org/abs/2103.15691). The head
mean-pools.

Learning is a sequence of sharp transitions. A bag of frames gives the axis of motion, which the baseline
finds first (accuracy 0.5, loss ln 2); the sign of the motion on each axis needs a comparison of frames in
order (a correlation of shifted frames) and appears suddenly, after a plateau of a few hundred steps, one axis
at a time: with the default 12x12 canvas the baseline reliably learns left/right (0.75) within its budget and
up/down only with luck or more steps. Digits' mostly vertical strokes make horizontal motion the easier one;
`task.rotate=true` turns each clip's digit by a random multiple of 90 degrees, which makes both axes alike
(and the plateau's end a matter of chance for both). A larger canvas lengthens the plateau.

The digit images and their fixed train/val/test partition are those of `digits` (tasks/digits.py): test clips
show digits never seen in training. Each example draws a digit of its split, its turn, a start position and a
direction (directions are balanced exactly: each occurs n // n_directions or one more times), from the split's
seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.errors import ConfigError
from tasks.base import TASKS, Split, Task, positive_int, split_generator
from tasks.digits import _images, _partition

#: (row, column) displacement per frame of each label: the first 4 are the axis directions, then the diagonals.
DIRECTIONS = ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (1, -1), (-1, -1), (-1, 1))
NAMES = ("right", "down", "left", "up", "down-right", "down-left", "up-left", "up-right")


def move(images: torch.Tensor, starts: torch.Tensor, velocity: torch.Tensor, frames: int,
         canvas: int) -> torch.Tensor:
    """Clips (n, frames, canvas, canvas): frame t holds image i with its top-left corner at
    `starts[i] + t * velocity[i]` (row, column), modulo the canvas. One gather, no loop over examples."""
    n, side = images.shape[0], images.shape[-1]
    padded = images.new_zeros(n, canvas, canvas)
    padded[:, :side, :side] = images
    t = torch.arange(frames)
    corner = starts[:, None, :] + t[None, :, None] * velocity[:, None, :]  # (n, frames, 2)
    axis = torch.arange(canvas)
    rows = (axis[None, None, :] - corner[..., 0:1]) % canvas  # (n, frames, canvas): source row of each row
    cols = (axis[None, None, :] - corner[..., 1:2]) % canvas
    example = torch.arange(n)[:, None, None, None]
    return padded[example, rows[..., :, None], cols[..., None, :]]


def tubelets(clips: torch.Tensor, patch: int) -> torch.Tensor:
    """(n, frames, canvas, canvas) -> (n, frames * (canvas // patch) ** 2, patch * patch): frame by frame, each
    frame's patches in row-major order, each patch's pixels row-major."""
    n, frames, canvas, _ = clips.shape
    side = canvas // patch
    tokens = clips.unfold(2, patch, patch).unfold(3, patch, patch)  # (n, frames, side, side, patch, patch)
    return tokens.reshape(n, frames * side * side, patch * patch).contiguous()


@TASKS.register("moving_digits")
class MovingDigits(Task):
    modality = "video"
    input_kind = "continuous"
    output_kind = "sequence"
    causal = False
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:
        canvas: int = 12       # side of the (toroidal) frame in pixels; at least 8 (the digit's side)
        frames: int = 6        # frames per clip (tokens)
        directions: int = 4    # 4 (axis) or 8 (with diagonals)
        step: int = 1          # pixels moved per frame; below canvas / 2 so that the motion is unambiguous
        patch: int = 0         # 0: one token per frame (all its pixels); else the side of the square patches
                               # each frame is cut into, one token per patch (must divide canvas)
        rotate: bool = False   # turn each clip's digit by a random multiple of 90 degrees (isotropic strokes)
        n_train: int = 6000
        n_eval: int = 1000     # clips in val and in test

    def validate(self):
        p = self.params
        positive_int(self.name, canvas=p.canvas, frames=p.frames, directions=p.directions, step=p.step,
                     n_train=p.n_train, n_eval=p.n_eval)
        if isinstance(p.patch, bool) or not isinstance(p.patch, int) or p.patch < 0 or \
                (p.patch and p.canvas % p.patch):
            raise ConfigError(f"task.patch={p.patch!r} of task moving_digits must be 0 (one token per frame) or a "
                              f"positive divisor of task.canvas={p.canvas}")
        if not isinstance(p.rotate, bool):
            raise ConfigError(f"task.rotate of task moving_digits must be true or false, got {p.rotate!r}")
        if p.canvas < 8:
            raise ConfigError(f"task.canvas={p.canvas} of task moving_digits must be at least 8 (the digit's side)")
        if p.directions not in (4, 8):
            raise ConfigError(f"task.directions={p.directions} of task moving_digits is invalid; valid: 4, 8")
        if 2 * p.step >= p.canvas:
            raise ConfigError(f"task.step={p.step} of task moving_digits must be below canvas / 2 "
                              f"(= {p.canvas / 2:g}), else the motion is ambiguous on the wrapping canvas")
        if p.frames < 2:
            raise ConfigError(f"task.frames={p.frames} of task moving_digits must be at least 2 to show motion")

    @property
    def input_dim(self) -> int:
        return self.side ** 2

    @property
    def side(self) -> int:
        """Side of a token's square of pixels: the patch, or the whole frame."""
        return self.params.patch or self.params.canvas

    @property
    def n_classes(self) -> int:
        return self.params.directions

    def max_len(self) -> int:
        return self.params.frames * (self.params.canvas // self.side) ** 2

    def split_size(self, split: str) -> int:
        return self.params.n_train if split == "train" else self.params.n_eval

    def draw(self, split: str, n: int, seed: int) -> dict[str, torch.Tensor]:
        """The random choices of a split: sklearn image index, quarter turns of the image (counter-clockwise,
        as torch.rot90), start (row, column) and label of every clip."""
        p = self.params
        generator = split_generator(split, seed)
        pool = _partition(len(_images()[1]))[split]
        image = pool[torch.randint(0, len(pool), (n,), generator=generator)]
        turns = torch.randint(0, 4, (n,), generator=generator)
        if not p.rotate:
            turns.zero_()
        starts = torch.randint(0, p.canvas, (n, 2), generator=generator)
        labels = (torch.arange(n) % p.directions)[torch.randperm(n, generator=generator)]
        return {"image": image, "turns": turns, "start": starts, "label": labels}

    def make_split(self, split: str, n: int, seed: int) -> Split:
        p = self.params
        choice = self.draw(split, n, seed)
        images, _ = _images()
        turned = torch.stack([torch.rot90(images, k, dims=(1, 2)) for k in range(4)])  # (4, N, 8, 8)
        velocity = torch.tensor(DIRECTIONS)[choice["label"]] * p.step
        clips = move(turned[choice["turns"], choice["image"]], choice["start"], velocity, p.frames, p.canvas)
        return Split(tubelets(clips, self.side), choice["label"])
