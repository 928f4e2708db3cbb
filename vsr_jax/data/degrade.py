"""Degradations that make LR frames from HR frames, exactly as the field makes them.

`imresize` is MATLAB's `imresize(x, scale, 'bicubic')` (Keys cubic, a = −0.5,
antialiased when downscaling, symmetric border) as ported by BasicSR
(`basicsr/utils/matlab_functions.py`). It is written as two dense resampling matrices
built once per (size, scale) in float64 NumPy and applied with matrix products, so it
runs on device inside `jax.jit`, batched over any leading dimensions.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
from jax import lax


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = −0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True) -> np.ndarray:
    """(out_length, in_length) float64 matrix W with out = W @ in, MATLAB bicubic.

    Follows BasicSR `calculate_weights_indices`: output pixel x (1-based) samples input
    coordinate u = x/scale + 0.5·(1 − 1/scale); when downscaling with antialiasing the
    kernel is stretched by 1/scale. Taps outside the image are folded back with MATLAB's
    'symmetric' padding (edge pixel repeated), so every row sums to one.
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    if scale < 1 and antialias:
        w = scale * _cubic(dist * scale)
    else:
        w = _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric padding: 0-based index -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2.
    j = idx.astype(np.int64) - 1
    j = np.where(j < 0, -j - 1, j)
    j = np.where(j >= in_length, 2 * in_length - j - 1, j)
    if j.min() < 0 or j.max() >= in_length:
        raise ValueError(f"cannot resize a length-{in_length} axis by {scale}: image too small")
    mat = np.zeros((out_length, in_length), np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_length), taps), j.ravel()), w.ravel())
    return mat


def _output_length(length: int, scale: float) -> int:
    return int(math.ceil(length * scale))


def imresize(x, scale: float, *, antialias: bool = True):
    """MATLAB-compatible bicubic resize of images (..., H, W, C) by `scale`.

    Output is (..., ceil(H·scale), ceil(W·scale), C), float32, not clipped (bicubic
    overshoots slightly outside [0,1], as in MATLAB and BasicSR). Use scale = 1/4 to make
    BI LR frames and scale = 4 for the bicubic baseline.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim < 3:
        raise ValueError(f"imresize expects (..., H, W, C), got shape {x.shape}")
    h, w = x.shape[-3], x.shape[-2]
    mh = resize_matrix(h, _output_length(h, scale), float(scale), antialias)
    mw = resize_matrix(w, _output_length(w, scale), float(scale), antialias)
    prec = lax.Precision.HIGHEST
    y = jnp.einsum("oh,...hwc->...owc", jnp.asarray(mh, jnp.float32), x, precision=prec)
    return jnp.einsum("pw,...owc->...opc", jnp.asarray(mw, jnp.float32), y, precision=prec)


def bicubic_downsample(hr, scale: int):
    """BI degradation: (..., H, W, C) -> (..., H/scale, W/scale, C); H, W divisible by scale."""
    h, w = hr.shape[-3], hr.shape[-2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {scale} (modcrop first)")
    return imresize(hr, 1.0 / scale)


def modcrop(x, scale: int):
    """Crops (..., H, W, C) so that H and W are multiples of `scale` (as BasicSR/MATLAB)."""
    h, w = x.shape[-3], x.shape[-2]
    return x[..., : h - h % scale, : w - w % scale, :]
