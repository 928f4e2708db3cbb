"""PSNR and SSIM exactly as the super-resolution field computes them.

The reference is BasicSR (`basicsr/metrics/psnr_ssim.py`): images on the 0–255 scale,
optional `crop_border` pixels removed from every edge, optional evaluation on the Y
channel of BT.601 YCbCr (16–235, unrounded), PSNR with peak 255, SSIM of Wang et al.
with an 11×11 Gaussian window (σ = 1.5) over the 'valid' region, averaged over channels.

Every function here is a pure JAX function: usable inside `jax.jit`, and batched over any
leading dimensions. Inputs are RGB arrays (..., H, W, 3) in [0, 1]; for numbers that match
published tables, pass frames quantised to uint8 levels (x = round(255·x)/255), as saved
PNGs are. This module imports nothing from the rest of vsr_jax.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

# BT.601 luma for RGB in [0, 1] -> Y on the 0..255 scale (16..235), as BasicSR's
# rgb2ycbcr / bgr2ycbcr(y_only=True) with float input.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def rgb_to_y(x):
    """Y (BT.601, 16–235 scale, unrounded) of RGB (..., H, W, 3) in [0,1] -> (..., H, W)."""
    x = jnp.asarray(x, jnp.float32)
    return x[..., 0] * _Y_WEIGHTS[0] + x[..., 1] * _Y_WEIGHTS[1] + x[..., 2] * _Y_WEIGHTS[2] + _Y_OFFSET


def _prepare(a, b, crop_border: int, y_channel: bool):
    """Returns both images as (..., C, H', W') float32 on the 0–255 scale."""
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    if a.shape != b.shape:
        raise ValueError(f"metric inputs differ in shape: {a.shape} vs {b.shape}")
    if a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"metric inputs must be RGB (..., H, W, 3), got {a.shape}")
    if y_channel:
        a = rgb_to_y(a)[..., None, :, :]
        b = rgb_to_y(b)[..., None, :, :]
    else:
        a = jnp.moveaxis(a * 255.0, -1, -3)
        b = jnp.moveaxis(b * 255.0, -1, -3)
    if crop_border:
        c = int(crop_border)
        a = a[..., c:-c, c:-c]
        b = b[..., c:-c, c:-c]
    return a, b


def psnr(a, b, *, crop_border: int = 0, y_channel: bool = True):
    """PSNR in dB of RGB images (..., H, W, 3) in [0,1]; returns (...,).

    One MSE over all remaining pixels (and channels when `y_channel=False`), peak 255 on
    the 0–255 scale; +inf for identical images (as BasicSR).
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    mse = jnp.mean(jnp.square(a - b), axis=(-3, -2, -1))
    return 10.0 * jnp.log10(255.0**2 / mse)


def _gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """cv2.getGaussianKernel(size, sigma): normalised samples of a Gaussian."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_BAND_MATMUL_MAX = 512  # axes up to this long are filtered as one matmul with a band matrix


def _band(n: int, taps: np.ndarray) -> np.ndarray:
    """(n − k + 1, n) matrix whose row i holds the k taps at columns i … i + k − 1."""
    k = len(taps)
    m = np.zeros((n - k + 1, n), np.float32)
    for i in range(n - k + 1):
        m[i, i : i + k] = taps
    return m


def _filter_axis(x, taps: np.ndarray, axis: int):
    """'Valid' correlation of (B, H, W) with `taps` along `axis` (1 or 2).

    Short axes: a matmul with a band matrix (O(n) work per pixel, but at matmul speed,
    also in unoptimised XLA); long ones: a weighted sum of k shifted slices, fused into one
    loop. Both are exact float32 sums, and several times faster on a CPU than a one-channel
    convolution.
    """
    n = x.shape[axis]
    if n <= _BAND_MATMUL_MAX:
        band = jnp.asarray(_band(n, taps))
        spec = "ih,bhw->biw" if axis == 1 else "iw,bhw->bhi"
        return jnp.einsum(spec, band, x, precision=lax.Precision.HIGHEST)
    m = n - len(taps) + 1
    if axis == 1:
        return sum(float(w) * x[:, i : i + m, :] for i, w in enumerate(taps))
    return sum(float(w) * x[:, :, i : i + m] for i, w in enumerate(taps))


def _filter_valid(x, window):
    """Separable 'valid' correlation of (B, H, W) with the 1-D window on both axes."""
    taps = np.asarray(window, np.float32)
    return _filter_axis(_filter_axis(x, taps, 1), taps, 2)


def ssim(a, b, *, crop_border: int = 0, y_channel: bool = True):
    """SSIM of RGB images (..., H, W, 3) in [0,1]; returns (...,).

    Wang et al. 2004 as BasicSR `calculate_ssim`: 11×11 Gaussian window σ = 1.5, valid
    region only, C1 = (0.01·255)², C2 = (0.03·255)², mean of the SSIM map, mean over
    channels when `y_channel=False`.

    Variances are computed from images shifted by their own mean (SSIM's variance terms
    do not change under a shift), which keeps float32 accurate to ~1e-6 of the float64
    reference.
    """
    a, b = _prepare(a, b, crop_border, y_channel)
    if a.shape[-1] < 11 or a.shape[-2] < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {a.shape[-2:]}")
    lead = a.shape[:-3]
    c, h, w = a.shape[-3:]
    a = a.reshape((-1, h, w))
    b = b.reshape((-1, h, w))
    window = _gaussian_window_1d()
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    shift_a = jnp.mean(a, axis=(-2, -1), keepdims=True)
    shift_b = jnp.mean(b, axis=(-2, -1), keepdims=True)
    a0 = a - shift_a
    b0 = b - shift_b
    mu_a0 = _filter_valid(a0, window)
    mu_b0 = _filter_valid(b0, window)
    var_a = _filter_valid(a0 * a0, window) - mu_a0**2
    var_b = _filter_valid(b0 * b0, window) - mu_b0**2
    cov = _filter_valid(a0 * b0, window) - mu_a0 * mu_b0
    mu_a = mu_a0 + shift_a
    mu_b = mu_b0 + shift_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    per_channel = jnp.mean(num / den, axis=(-2, -1)).reshape(lead + (c,))
    return jnp.mean(per_channel, axis=-1)


def quantize(x):
    """Rounds [0,1] images to uint8 levels (clip, ×255, round), staying in [0,1] float32."""
    return jnp.round(jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0) * 255.0) / 255.0
