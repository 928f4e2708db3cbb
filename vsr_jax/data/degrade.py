"""Degradations that make LR frames from HR frames, exactly as the field makes them.

* ``bi`` — `imresize`: MATLAB's `imresize(x, 1/s, 'bicubic')` (Keys cubic, a = −0.5,
  antialiased when downscaling, symmetric border) as ported by BasicSR
  (`basicsr/utils/matlab_functions.py`). The LR of the published "BI" tables.
* ``bd`` — `blur_downsample`: the MATLAB BD protocol of the published "BD" tables
  (KAIR/MMagic `generate_LR_Vimeo90K_BD.m`): `fspecial('gaussian', 12, 1.6)`,
  `imfilter(..., 'replicate')`, keep rows/cols `s/2 : s : end − s/2` (1-based).
* ``bd_duf`` — `duf_downsample`: BasicSR's other "BD" (from the DUF authors' code, used by
  `VideoTestDUFDataset`): 13×13 Gaussian σ = 0.4·s, reflect border, samples at 0, s, 2s, …
  It differs from ``bd`` (a 1.5 px shift and another border) — do not mix the two.

Each is separable: one (out, in) float64 matrix per axis, built once per (length, scale)
in NumPy (`degradation_matrix`) and applied with two matrix products, so the JAX
functions run on device inside `jax.jit`, batched over any leading dimensions; the input
pipeline uses the same matrices on the host (`crop_degrade`).
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
    return _separable(x, mh, mw)


DEGRADATIONS = ("bi", "bd", "bd_duf")


def _fold(j: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Maps out-of-range 0-based indices into [0, n) with a border rule."""
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "reflect":  # -1 -> 1 (edge not repeated), as torch 'reflect'
        period = 2 * (n - 1)
        j = np.abs(j) % period if n > 1 else np.zeros_like(j)
        return np.where(j >= n, period - j, j)
    raise ValueError(f"unknown border mode {mode!r}")


def _filter_decimate_matrix(length: int, taps: np.ndarray, first_centre: int, step: int, mode: str) -> np.ndarray:
    """(length // step, length) matrix: correlate with `taps` (centre tap at index len//2 or as given) at
    output positions first_centre, first_centre + step, …, folding the border with `mode`."""
    out = length // step
    k = len(taps)
    centres = first_centre + step * np.arange(out)
    offset = (k - 1) // 2 if k % 2 else k // 2 - 1  # MATLAB centre of an even kernel: floor((k+1)/2) (1-based)
    j = _fold(centres[:, None] - offset + np.arange(k)[None, :], length, mode)
    mat = np.zeros((out, length), np.float64)
    np.add.at(mat, (np.repeat(np.arange(out), k), j.ravel()), np.tile(taps, out))
    return mat


def bd_taps(sigma: float = 1.6) -> np.ndarray:
    """1-D factor of MATLAB `fspecial('gaussian', ceil(3σ)·2 + 2, σ)` (an even size: 12 for σ = 1.6)."""
    size = math.ceil(sigma * 3) * 2 + 2
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def duf_taps(scale: int, kernel_size: int = 13) -> np.ndarray:
    """1-D factor of BasicSR `generate_gaussian_kernel(13, 0.4·scale)` (scipy gaussian_filter of a dirac)."""
    sigma = 0.4 * scale
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate = 4
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1, dtype=np.float64) / sigma) ** 2)
    g /= g.sum()
    taps = np.zeros(kernel_size)
    c = kernel_size // 2
    for i, v in zip(range(-radius, radius + 1), g, strict=True):
        if -c <= i <= c:
            taps[c + i] += v
    return taps / taps.sum()


@functools.lru_cache(maxsize=256)
def degradation_matrix(kind: str, length: int, scale: int, sigma: float = 1.6) -> np.ndarray:
    """(length // scale, length) float64 matrix of one axis of degradation `kind` ('bi' | 'bd' | 'bd_duf')."""
    if length % scale:
        raise ValueError(f"length {length} is not divisible by scale {scale} (modcrop first)")
    if kind == "bi":
        return resize_matrix(length, length // scale, 1.0 / scale, True)
    if kind == "bd":
        return _filter_decimate_matrix(length, bd_taps(sigma), scale // 2 - 1, scale, "replicate")
    if kind == "bd_duf":
        return _filter_decimate_matrix(length, duf_taps(scale), 0, scale, "reflect")
    raise ValueError(f"unknown degradation {kind!r}; use one of {', '.join(DEGRADATIONS)}")


def _separable(x, mh: np.ndarray, mw: np.ndarray):
    prec = lax.Precision.HIGHEST
    y = jnp.einsum("oh,...hwc->...owc", jnp.asarray(mh, jnp.float32), x, precision=prec)
    return jnp.einsum("pw,...owc->...opc", jnp.asarray(mw, jnp.float32), y, precision=prec)


def degrade(hr, scale: int, kind: str = "bi"):
    """HR frames (..., H, W, C) -> LR (..., H/s, W/s, C) float32 with degradation `kind`; jit-able."""
    hr = jnp.asarray(hr, jnp.float32)
    h, w = hr.shape[-3], hr.shape[-2]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not divisible by scale {scale} (modcrop first)")
    return _separable(hr, degradation_matrix(kind, h, scale), degradation_matrix(kind, w, scale))


def blur_downsample(x, scale: int = 4, sigma: float = 1.6):
    """MATLAB BD degradation (12×12 Gaussian σ 1.6, replicate border, every s-th pixel from s/2)."""
    h, w = x.shape[-3], x.shape[-2]
    mh = degradation_matrix("bd", h, scale, float(sigma))
    mw = degradation_matrix("bd", w, scale, float(sigma))
    return _separable(jnp.asarray(x, jnp.float32), mh, mw)


def duf_downsample(x, scale: int = 4):
    """BasicSR `duf_downsample` (13×13 Gaussian σ 0.4·s, reflect border, samples at 0, s, 2s, …)."""
    return degrade(x, scale, "bd_duf")


def crop_degrade(hr: np.ndarray, scale: int, kind: str, top: int, left: int, height: int, width: int) -> np.ndarray:
    """LR crop [top:top+height, left:left+width] of `degrade(hr)` computed from the HR band it needs.

    `hr` is (..., H, W, C) with H, W divisible by `scale`, any numeric dtype (uint8 frames
    give LR on the 0–255 scale). The result is float64 and equal to cropping the
    whole-frame degradation, borders included, at the cost of a few HR rows/cols around
    the crop — this is how the input pipeline makes LR patches on the host.
    """
    h, w = hr.shape[-3], hr.shape[-2]
    mh = degradation_matrix(kind, h, scale)[top : top + height]
    mw = degradation_matrix(kind, w, scale)[left : left + width]
    rows = np.nonzero(mh.any(axis=0))[0]
    cols = np.nonzero(mw.any(axis=0))[0]
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    band = np.asarray(hr[..., r0:r1, c0:c1, :], np.float64)
    y = np.matmul(mh[:, r0:r1], band.reshape(*band.shape[:-3], r1 - r0, -1))  # (..., height, w'·C)
    y = y.reshape(*band.shape[:-3], height, c1 - c0, band.shape[-1])
    # = np.einsum("pw,...owc->...opc", mw[:, c0:c1], y, optimize=True), the same one matrix
    # product (NumPy's bmm_einsum: contracted axis first, one (p, w') @ (w', ...·o·c) product,
    # axes moved back), without einsum's per-call parsing in Python under the GIL
    t = np.moveaxis(y, -2, 0)
    z = np.matmul(mw[:, c0:c1], t.reshape(t.shape[0], -1))
    return np.moveaxis(z.reshape(width, *t.shape[1:]), 0, -2)


def modcrop(x, scale: int):
    """Crops (..., H, W, C) so that H and W are multiples of `scale` (as BasicSR/MATLAB)."""
    h, w = x.shape[-3], x.shape[-2]
    return x[..., : h - h % scale, : w - w % scale, :]
