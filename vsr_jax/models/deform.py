"""Modulated deformable convolution (DCNv2) in JAX, as `torchvision.ops.deform_conv2d`.

Zhu et al., "Deformable ConvNets v2" (CVPR 2019). What BasicSR's ``DCNv2Pack`` (EDVR,
IconVSR) and MMagic's / mmcv's ``ModulatedDeformConv2d`` (BasicVSR++) compute: output
pixel (i, j) of a kh×kw convolution takes its k-th tap not at the grid point
``(i·s − p + ky·d, j·s − p + kx·d)`` but there plus a learnt offset ``(dy, dx)``, sampled
bilinearly (zero outside the image, per corner, as torchvision), and multiplied by a
modulation ``mask`` before the kernel's weight. Channels are split into ``deform_groups``
that each have their own offsets and masks.

Layout NHWC: offset (N, Ho, Wo, 2·dg·kh·kw) in torchvision's channel order (deform group,
then kernel tap row-major, then (dy, dx)), mask (N, Ho, Wo, dg·kh·kw) (group, tap), so a
torch tensor of either moves here by ``transpose(0, 2, 3, 1)`` and nothing else.

How: the samples are four gathers (one per bilinear corner) of rows of the zero-padded
input — a row is one pixel's channels of one deform group — blended with the bilinear
weights × mask into the sampled columns (N, Ho·Wo, kh·kw, C), the im2col of the deformed
grid; the convolution is then one matrix product with the kernel. The gradients are
JAX's (the gathers' are scatter-adds; the offsets' are those of the bilinear weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(
    x,
    offset,
    mask,
    kernel,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    deform_groups: int = 1,
):
    """Modulated deformable convolution (see the module docstring).

    Args:
      x: (N, H, W, Cin).
      offset: (N, Ho, Wo, 2·deform_groups·kh·kw), torchvision's channel order.
      mask: (N, Ho, Wo, deform_groups·kh·kw), or None for DCNv1 (all ones).
      kernel: (kh, kw, Cin / groups, Cout) (HWIO).
      bias: (Cout,) or None.
      stride, padding, dilation: ints or (h, w) pairs, as torch's.
      groups: convolution groups; deform_groups: offset groups (each divides Cin).

    Returns (N, Ho, Wo, Cout) in the promoted dtype of `x` and `kernel`; the sampling is
    done in float32 whatever the inputs' dtype.
    """
    n, h, w, cin = x.shape
    kh, kw, cin_g, cout = kernel.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    k, dg = kh * kw, deform_groups
    if cin % groups or cout % groups or cin_g != cin // groups:
        raise ValueError(f"deform_conv2d: kernel {kernel.shape} does not fit {cin} input channels in {groups} groups")
    if cin % dg:
        raise ValueError(f"deform_conv2d: {cin} input channels are not divisible by deform_groups={dg}")
    if offset.shape != (n, ho, wo, 2 * dg * k):
        raise ValueError(f"deform_conv2d: offset must be {(n, ho, wo, 2 * dg * k)}, got {offset.shape}")
    if mask is not None and mask.shape != (n, ho, wo, dg * k):
        raise ValueError(f"deform_conv2d: mask must be {(n, ho, wo, dg * k)}, got {mask.shape}")

    off = offset.astype(jnp.float32).reshape(n, ho, wo, dg, k, 2).transpose(0, 1, 2, 4, 3, 5)  # (.., K, dg, 2)
    ky, kx = jnp.meshgrid(jnp.arange(kh) * dh, jnp.arange(kw) * dw, indexing="ij")
    py = (jnp.arange(ho) * sh - ph)[:, None, None, None] + ky.reshape(1, 1, k, 1) + off[..., 0]
    px = (jnp.arange(wo) * sw - pw)[None, :, None, None] + kx.reshape(1, 1, k, 1) + off[..., 1]
    # torchvision samples 0 when a point is a full pixel or more outside; else per-corner zeros
    scale = ((py > -1) & (py < h) & (px > -1) & (px < w)).astype(jnp.float32)
    if mask is not None:
        scale = scale * mask.astype(jnp.float32).reshape(n, ho, wo, dg, k).transpose(0, 1, 2, 4, 3)
    y0, x0 = jnp.floor(py), jnp.floor(px)
    fy, fx = py - y0, px - x0
    # rows of the one-pixel zero-padded input, (pixel, deform group) -> its cg channels; the
    # top-left corner (y0, x0) of a sample is padded pixel (y0+1, x0+1), clipped for the
    # points that have weight 0 anyway
    cg = cin // dg
    rows = jnp.pad(x.astype(jnp.float32), ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(n, -1, cg)
    top_left = (jnp.clip(y0.astype(jnp.int32) + 1, 0, h) * (w + 2) + jnp.clip(x0.astype(jnp.int32) + 1, 0, w)) * dg
    top_left = (top_left + jnp.arange(dg)).reshape(n, -1)
    take = jax.vmap(lambda r, i: r[i].reshape(ho, wo, k, dg, cg))
    corner = lambda step: take(rows, top_left + step * dg)  # noqa: E731
    # four gathers blended elementwise: XLA fuses them into one loop (a stacked 2x2 gather
    # or an einsum over the corners was slower on XLA:CPU)
    cols = (
        ((1 - fy) * (1 - fx) * scale)[..., None] * corner(0)
        + ((1 - fy) * fx * scale)[..., None] * corner(1)
        + (fy * (1 - fx) * scale)[..., None] * corner(w + 2)
        + (fy * fx * scale)[..., None] * corner(w + 3)
    )  # (N, Ho, Wo, K, dg, cg): im2col of the deformed grid, channel = g·cg + c

    dtype = jnp.promote_types(x.dtype, kernel.dtype)
    if groups == 1:  # one plain matrix product (XLA:CPU's fastest form)
        cols, kern = cols.reshape(n * ho * wo, k * cin).astype(dtype), kernel.reshape(k * cin, cout).astype(dtype)
        out = jnp.dot(cols, kern, preferred_element_type=jnp.float32)
    else:
        cols = cols.reshape(n, ho * wo, k, groups, cin_g).astype(dtype)
        kern = kernel.reshape(k, cin_g, groups, cout // groups).astype(dtype)
        out = jnp.einsum("nmkgc,kcgo->nmgo", cols, kern, preferred_element_type=jnp.float32)
    out = out.reshape(n, ho, wo, cout)
    if bias is not None:
        out = out + bias.astype(jnp.float32)
    return out.astype(dtype)


class ModulatedDeformConv(nn.Module):
    """A DCNv2 layer with `nn.Conv`'s parameter names: ``kernel`` (kh, kw, Cin/groups, F),
    ``bias`` (F,). Called as ``(x, offset, mask)``; the offsets and masks come from the
    caller (EDVR's and BasicVSR++'s layers compute them differently). Its parameters map
    by name from a torch deformable layer's ``weight`` / ``bias``."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    groups: int = 1
    deform_groups: int = 1
    use_bias: bool = True
    kernel_init: Callable = nn.linear.default_kernel_init
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, offset, mask):
        k = self.kernel_size
        shape = (k, k, x.shape[-1] // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32) if self.use_bias else None
        return deform_conv2d(
            x.astype(self.dtype),
            offset,
            mask,
            kernel.astype(self.dtype),
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            deform_groups=self.deform_groups,
        )
