"""Shot boundaries and 7-frame (septuplet) windows that never cross a cut."""

from __future__ import annotations

import numpy as np

# Mean absolute difference between consecutive frames (0–255 scale) above which a hard
# cut is declared. On the bundled clips, cuts measure 52–85 and motion within a shot at
# most 21.5.
DEFAULT_CUT_THRESHOLD = 30.0


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean |frame[t+1] − frame[t]| on the 0–255 scale for (T, H, W, C) frames -> (T−1,)."""
    f = np.asarray(frames)
    diffs = [np.mean(np.abs(f[t + 1].astype(np.float32) - f[t].astype(np.float32))) for t in range(len(f) - 1)]
    return np.asarray(diffs, np.float32)


def split_shots(frames: np.ndarray, threshold: float = DEFAULT_CUT_THRESHOLD) -> list[tuple[int, int]]:
    """Splits (T, H, W, C) frames at hard cuts; returns [start, end) frame ranges of the shots."""
    return shots_from_differences(frame_differences(frames), len(frames), threshold)


def shots_from_differences(diffs, num_frames: int, threshold: float = DEFAULT_CUT_THRESHOLD) -> list[tuple[int, int]]:
    """[start, end) shot ranges of `num_frames` frames from their T−1 consecutive differences."""
    cuts = np.nonzero(np.asarray(diffs) > threshold)[0] + 1
    bounds = [0, *cuts.tolist(), num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def window_starts(shot_length: int, num_frames: int, stride: int) -> list[int]:
    """Start offsets of every `num_frames` window inside a shot, `stride` apart."""
    if shot_length < num_frames:
        return []
    return list(range(0, shot_length - num_frames + 1, stride))
