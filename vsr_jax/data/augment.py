"""Random crops and the dihedral / temporal augmentations of training clips (NumPy).

One transform per clip: every frame of a clip, LR and HR alike, gets the same crop, flips,
transpose and time direction, so LR and HR stay aligned pixel for pixel (the HR crop is
the LR crop scaled by `scale`). All draws come from the `numpy.random.Generator` passed
in, so an example is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np


def crop_origin(rng: np.random.Generator, lr_height: int, lr_width: int, patch: int) -> tuple[int, int]:
    """Top-left corner (in LR pixels) of a uniformly random `patch`×`patch` LR crop."""
    top = int(rng.integers(0, max(lr_height - patch, 0) + 1))
    left = int(rng.integers(0, max(lr_width - patch, 0) + 1))
    return top, left


def draw(rng: np.random.Generator) -> dict:
    """The random choices of one clip's augmentation: always four draws, in a fixed order."""
    u = rng.random(4)
    return {"hflip": u[0] < 0.5, "vflip": u[1] < 0.5, "transpose": u[2] < 0.5, "reverse": u[3] < 0.5}


def apply(clip: np.ndarray, choice: dict, *, flips: bool = True, transpose: bool = True, reverse: bool = False):
    """Applies `choice` to a clip (T, H, W, C); the same call on LR and HR keeps them aligned."""
    if flips and choice["hflip"]:
        clip = clip[:, :, ::-1]
    if flips and choice["vflip"]:
        clip = clip[:, ::-1]
    if transpose and choice["transpose"]:  # with the flips: all 8 rotations/reflections
        clip = clip.transpose(0, 2, 1, 3)
    if reverse and choice["reverse"]:
        clip = clip[::-1]
    return np.ascontiguousarray(clip)
