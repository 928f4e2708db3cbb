"""Temporal metrics of a super-resolved clip: tOF as TecoGAN computes it.

tOF (Chu et al., "Learning temporal coherence via self-supervision for GAN-based video
generation", 2020; `metrics.py` of github.com/thunil/TecoGAN): for every pair of consecutive
frames, OpenCV's Farneback optical flow (pyr_scale 0.5, 3 levels, window 15, 3 iterations,
poly_n 5, poly_sigma 1.2) is computed on the grey (`cv2.COLOR_RGB2GRAY`) uint8 frames of
the output and of the ground truth; both flows are centre-cropped as TecoGAN's `crop_8x8`
does; tOF of the pair is the mean over pixels of the Euclidean norm of their difference.
Lower is better; 0 when the output moves exactly as the ground truth (a static output of
a static scene, or the ground truth itself). Unscaled (TecoGAN's code prints it as is).
TecoGAN's own evaluation also skips the first and last 2 frames of each clip
(`skip_ends=2`); the default here keeps every frame.

Frames are uint8 RGB (T, H, W, 3) numpy arrays.
"""

from __future__ import annotations

import numpy as np

FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _cv2():
    import cv2  # opencv-python-headless, a dependency

    return cv2


def crop_8x8(x: np.ndarray) -> np.ndarray:
    """TecoGAN's centre crop: the largest multiple of 32 per side leaving at least 16 px out."""
    ori_h, ori_w = x.shape[:2]
    h, w = (ori_h // 32) * 32, (ori_w // 32) * 32
    while h > ori_h - 16:
        h -= 32
    while w > ori_w - 16:
        w -= 32
    if h <= 0 or w <= 0:
        return x  # frames under 48 px a side: TecoGAN's crop would leave nothing; keep all
    y, xo = (ori_h - h) // 2, (ori_w - w) // 2
    return x[y : y + h, xo : xo + w]


def farneback(prev_grey: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) from `prev_grey` to `grey` (uint8 (H, W)) with TecoGAN's settings."""
    return _cv2().calcOpticalFlowFarneback(prev_grey, grey, None, **FARNEBACK)


def _grey(frames: np.ndarray) -> list[np.ndarray]:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"tOF needs uint8 RGB frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    cv2 = _cv2()
    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


def tof_per_pair(output: np.ndarray, target: np.ndarray, *, skip_ends: int = 0) -> np.ndarray:
    """tOF of each consecutive frame pair: (T', ) float64, T' = T − 2·skip_ends − 1.

    output, target: uint8 RGB clips (T, H, W, 3) of the same shape.
    """
    if np.shape(output) != np.shape(target):
        raise ValueError(f"tOF inputs differ in shape: {np.shape(output)} vs {np.shape(target)}")
    t = len(output)
    keep = slice(skip_ends, t - skip_ends)
    out, tar = _grey(output[keep]), _grey(target[keep])
    values = []
    for i in range(1, len(out)):
        diff = crop_8x8(farneback(tar[i - 1], tar[i])) - crop_8x8(farneback(out[i - 1], out[i]))
        values.append(float(np.mean(np.sqrt(np.sum(diff * diff, axis=-1)))))
    return np.asarray(values, np.float64)


def tof(output: np.ndarray, target: np.ndarray, *, skip_ends: int = 0) -> float:
    """Mean tOF of a clip (see `tof_per_pair`); NaN for a clip with fewer than 2 frames."""
    values = tof_per_pair(output, target, skip_ends=skip_ends)
    return float(values.mean()) if len(values) else float("nan")
