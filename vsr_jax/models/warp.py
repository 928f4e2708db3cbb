"""Backward warping by optical flow, and the flow/space-to-depth helpers of flow-based VSR.

Flow convention (BasicSR/BasicVSR's `flow_warp`): a flow field has shape (N, H, W, 2)
in pixels, `flow[..., 0]` the horizontal displacement dx (+x to the right) and
`flow[..., 1]` the vertical one dy (+y down). Warping *pulls*: output pixel (i, j) is the
input sampled at (row i + dy, column j + dx). A flow "from ref to supp" therefore warps
supp onto ref: warp(supp, flow) ≈ ref.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from vsr_jax.models import layers

PADDING_MODES = ("zeros", "border")


@functools.partial(jax.jit, static_argnames="padding_mode")
def warp(x, flow, padding_mode: str = "zeros"):
    """Bilinear backward warp: out[n, i, j] = x[n] sampled at (i + dy, j + dx).

    Equals BasicSR's `flow_warp(x, flow, interp_mode='bilinear', padding_mode=...,
    align_corners=True)`, i.e. torch `grid_sample` with `align_corners=True`: sample
    positions are exact pixel coordinates (pixel centres at integers 0 … W−1), with no
    half-pixel offset.

    Args:
      x: (N, H, W, C) image or features, any float dtype.
      flow: (N, H, W, 2) displacement in pixels, (dx, dy).
      padding_mode: what lies outside the image.
        "zeros": each of the four bilinear taps that falls outside [0, W−1]×[0, H−1]
          contributes 0 (its weight is dropped, not renormalised), so a position half a
          pixel left of column 0 gives 0.5·x[:, :, 0], and one a full pixel or more
          outside gives 0. As grid_sample's 'zeros'.
        "border": the sample position is first clamped to [0, W−1]×[0, H−1], so anything
          outside takes the value of the nearest edge (bilinear along the edge), and the
          gradient w.r.t. a flow component whose position was clamped is zero. As
          grid_sample's 'border'.

    Returns:
      (N, H, W, C) in x.dtype. Weights and the accumulation are float32; the result is
      differentiable w.r.t. both x and flow (gathers on flattened indices) and works under
      jit and vmap.

    As BasicSR (which normalises by max(W − 1, 1) and grid_sample then unnormalises by
    W − 1), a dimension of size 1 always samples its single row/column, whatever the flow.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if x.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or flow.shape[:3] != x.shape[:3]:
        raise ValueError(f"warp expects x (N,H,W,C) and flow (N,H,W,2) of the same N,H,W; got {x.shape}, {flow.shape}")
    n, h, w, c = x.shape
    flow = flow.astype(jnp.float32)
    px = jnp.arange(w, dtype=jnp.float32)[None, None, :] + flow[..., 0]  # (N, H, W)
    py = jnp.arange(h, dtype=jnp.float32)[None, :, None] + flow[..., 1]
    if w == 1:
        px = jnp.zeros_like(px)
    if h == 1:
        py = jnp.zeros_like(py)
    if padding_mode == "border":
        px = jnp.clip(px, 0.0, w - 1.0)
        py = jnp.clip(py, 0.0, h - 1.0)
    x0 = jnp.floor(px)
    y0 = jnp.floor(py)
    wx1 = px - x0
    wy1 = py - y0
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1
    # The four taps (top-left, top-right, bottom-left, bottom-right) in one gather, so the
    # backward pass is a single scatter-add (quicker to compile and run than four).
    xs = jnp.stack([x0, x0 + 1.0, x0, x0 + 1.0], axis=-1)  # (N, H, W, 4)
    ys = jnp.stack([y0, y0, y0 + 1.0, y0 + 1.0], axis=-1)
    weights = jnp.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], axis=-1)
    # Validity is decided on the float coordinates; the index is clamped before the integer
    # cast (so huge flows cannot overflow) and then only feeds zero-weight taps.
    valid = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    weights = jnp.where(valid, weights, 0.0)
    index = jnp.clip(ys, 0, h - 1).astype(jnp.int32) * w + jnp.clip(xs, 0, w - 1).astype(jnp.int32)
    taps = jnp.take_along_axis(x.reshape(n, h * w, c), index.reshape(n, h * w * 4, 1), axis=1)
    taps = taps.reshape(n, h, w, 4, c).astype(jnp.float32)
    out = jnp.sum(weights[..., None] * taps, axis=3)
    return out.astype(x.dtype)


def flow_to_hr(flow, scale: int):
    """Upscales an LR flow (N, h, w, 2) to HR (N, h·s, w·s, 2): bilinear resize, values ×s.

    The resize uses half-pixel centres (`layers.upsample_bilinear`), as FRVSR's
    `tf.image.resize` of the flow does.
    """
    return layers.upsample_bilinear(flow.astype(jnp.float32), scale) * scale


def space_to_depth(x, scale: int):
    """Space-to-depth (as torch.nn.PixelUnshuffle): (N, H, W, C) -> (N, H/s, W/s, C·s²).

    The exact inverse of `layers.pixel_shuffle` (same PyTorch channel order: output
    channel c·s² + a·s + b holds input pixel (s·i + a, s·j + b) of channel c).
    """
    n, hh, ww, c = x.shape
    if hh % scale or ww % scale:
        raise ValueError(f"space_to_depth: spatial size {hh}x{ww} not divisible by {scale}")
    h, w = hh // scale, ww // scale
    x = x.reshape(n, h, scale, w, scale, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h, w, c * scale * scale)
