"""Temporal metrics of a super-resolved clip: tOF as TecoGAN computes it, and the warping error.

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

The warping error (Lai et al., "Learning blind video temporal consistency", 2018) measures
flicker against the ground truth's motion: with the ground truth's backward flow t → t−1
(Farneback, the same settings), the output's frame t−1 is warped onto frame t, and
E_warp = mean over t of the mean squared difference (RGB in [0, 1]) to output frame t over
the pixels the forward–backward flow check marks as visible (Sundaram et al.'s test, as
Lai et al.). Lower is better; ≈ 0 for a static clip that does not flicker. Lai et al.
estimate flow with FlowNet2; Farneback here keeps the metric dependency-free, so compare
its numbers with ours, not with theirs.

`TemporalReference` computes the ground truth's flows once, for scoring several outputs of
the same clip (the model's and bicubic's). Frames are uint8 RGB (T, H, W, 3) numpy arrays.
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
    return TemporalReference(target, skip_ends=skip_ends).tof_per_pair(output)


def tof(output: np.ndarray, target: np.ndarray, *, skip_ends: int = 0) -> float:
    """Mean tOF of a clip (see `tof_per_pair`); NaN for a clip with fewer than 2 frames."""
    return TemporalReference(target, skip_ends=skip_ends).tof(output)


def _warp_back(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """frame sampled at x + flow(x) (bilinear, border replicated): (H, W, C) float32."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        frame, gx + flow[..., 0], gy + flow[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def visible_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Sundaram et al.'s forward–backward check: True where following `backward` (t → t−1)
    then `forward` (t−1 → t) returns near the start. (H, W) bool."""
    fwd_at = _warp_back(forward, backward)
    mismatch = np.sum((backward + fwd_at) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(fwd_at**2, axis=-1)) + 0.5
    return mismatch < bound


class TemporalReference:
    """The ground-truth clip's grey frames and flows, to score outputs of that clip."""

    def __init__(self, target: np.ndarray, *, skip_ends: int = 0):
        self.shape = np.shape(target)
        self.skip_ends = skip_ends
        keep = slice(skip_ends, len(target) - skip_ends)
        self.grey = _grey(target[keep])
        self._forward = None
        self._backward = None

    def forward_flows(self) -> list[np.ndarray]:
        """Flow of each pair t−1 → t."""
        if self._forward is None:
            self._forward = [farneback(self.grey[i - 1], self.grey[i]) for i in range(1, len(self.grey))]
        return self._forward

    def backward_flows(self) -> list[np.ndarray]:
        """Flow of each pair t → t−1."""
        if self._backward is None:
            self._backward = [farneback(self.grey[i], self.grey[i - 1]) for i in range(1, len(self.grey))]
        return self._backward

    def _check(self, output: np.ndarray) -> np.ndarray:
        if np.shape(output) != self.shape:
            raise ValueError(f"temporal metric inputs differ in shape: {np.shape(output)} vs {self.shape}")
        return output[self.skip_ends : len(output) - self.skip_ends]

    def tof_per_pair(self, output: np.ndarray) -> np.ndarray:
        """TecoGAN's tOF of each consecutive pair of `output` against this clip: (T−1,)."""
        out = _grey(self._check(output))
        values = [
            float(np.mean(np.sqrt(np.sum((crop_8x8(ft) - crop_8x8(farneback(out[i], out[i + 1]))) ** 2, axis=-1))))
            for i, ft in enumerate(self.forward_flows())
        ]
        return np.asarray(values, np.float64)

    def tof(self, output: np.ndarray) -> float:
        """Mean tOF of `output` (see the module docstring); NaN for a clip of fewer than 2 frames."""
        values = self.tof_per_pair(output)
        return float(values.mean()) if len(values) else float("nan")

    def warping_error(self, output: np.ndarray) -> float:
        """E_warp of `output` (see the module docstring); NaN for T < 2."""
        out = self._check(output).astype(np.float32) / 255.0
        values = []
        for i, (back, fwd) in enumerate(zip(self.backward_flows(), self.forward_flows(), strict=True)):
            mask = visible_mask(back, fwd)
            diff = np.sum((out[i + 1] - _warp_back(out[i], back)) ** 2, axis=-1) / out.shape[-1]
            values.append(float(np.sum(diff * mask) / max(mask.sum(), 1)))
        return float(np.mean(values)) if values else float("nan")


def warping_error(output: np.ndarray, target: np.ndarray, *, skip_ends: int = 0) -> float:
    """E_warp of a clip `output` against the ground truth's motion (see the module docstring)."""
    return TemporalReference(target, skip_ends=skip_ends).warping_error(output)
