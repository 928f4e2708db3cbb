"""The neighbours a sliding-window video model (EDVR, IconVSR's refill) sees for each frame.

As BasicSR's ``generate_frame_indices`` (``basicsr/data/data_util.py``), which its video
test sets use for every frame of a clip: frame ``i`` of a ``t``-frame clip is restored
from frames ``i − r … i + r`` (r = num_frames // 2), and positions outside the clip are
replaced according to ``padding``:

* ``replicate`` — the first / last frame (Vimeo-90K's protocol);
* ``reflection`` — mirrored about the end frame: −1 -> 1, t -> t − 2;
* ``reflection_circle`` — continued from the other side of the window:
  −k -> i + r + k, t − 1 + k -> i − r − k (REDS4's protocol);
* ``circle`` — −k -> num_frames − k, t − 1 + k -> t − 1 + k − num_frames.

Clips too short for the rule (BasicSR's index would leave the clip) are clamped into it;
everywhere BasicSR's function is defined the indices are its indices.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

PADDINGS = ("replicate", "reflection", "reflection_circle", "circle")


def frame_indices(center: int, num_total: int, num_frames: int, padding: str) -> list[int]:
    """Indices of the `num_frames` frames (odd) that restore frame `center` of a clip of `num_total`."""
    if num_frames % 2 != 1:
        raise ValueError(f"num_frames must be odd, got {num_frames}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    last, r = num_total - 1, num_frames // 2
    out = []
    for i in range(center - r, center + r + 1):
        if i < 0:
            before = {"replicate": 0, "reflection": -i, "reflection_circle": center + r - i, "circle": num_frames + i}
            j = before[padding]
        elif i > last:
            j = {
                "replicate": last,
                "reflection": 2 * last - i,
                "reflection_circle": (center - r) - (i - last),
                "circle": i - num_frames,
            }[padding]
        else:
            j = i
        out.append(min(max(j, 0), last))
    return out


def window_indices(num_total: int, num_frames: int, padding: str) -> np.ndarray:
    """(num_total, num_frames) int32: row i is `frame_indices(i, …)`."""
    return np.array([frame_indices(i, num_total, num_frames, padding) for i in range(num_total)], np.int32)


def gather_windows(clip, num_frames: int, padding: str):
    """(N, T, h, w, C) -> (N, T, num_frames, h, w, C): every frame's window (static indices)."""
    return jnp.take(clip, jnp.asarray(window_indices(clip.shape[1], num_frames, padding)), axis=1)
