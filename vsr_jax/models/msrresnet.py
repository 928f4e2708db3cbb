"""MSRResNet: BasicSR's "modified SRResNet", weight for weight (BasicSR 1.4.2 `MSRResNet`).

The computation of BasicSR's `basicsr/archs/srresnet_arch.py`, so its weight files
(``MSRResNet_x4.pth`` etc.) load 1:1 through `vsr_jax.pretrained.convert`:

* ``conv_first``: 3×3 conv to ``features`` channels, LeakyReLU(0.1);
* ``body.i`` (``num_blocks`` of them): BasicSR's ``ResidualBlockNoBN``
  (``conv1`` → ReLU → ``conv2``, + input; residual scale 1), no conv after the body and
  no global skip;
* upsampling: ×2 / ×3 one stage (``upconv1``, pixel shuffle ×s), ×4 two ×2 stages
  (``upconv1``, ``upconv2``); each stage is conv → pixel shuffle (PyTorch channel order)
  → LeakyReLU(0.1);
* ``conv_hr`` (3×3, at HR size) → LeakyReLU(0.1) → ``conv_last`` (to 3 channels);
* plus the input upsampled bilinearly (``F.interpolate(mode='bilinear',
  align_corners=False)``: half-pixel centres, edge samples clamped; `jax.image.resize`'s
  bilinear computes the same when enlarging, ×3 included).

All convolutions are 3×3, stride 1, zero padding 1, with bias. Our own `srresnet` is a
different layout (trunk conv + global skip, bicubic base, no ``conv_hr``).

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) in [0, 1] -> (N, T, h·s, w·s, 3) /
(N, h·s, w·s, 3), frames independent, any h, w. Output float32, not clipped.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register


class ResidualBlockNoBN(nn.Module):
    """BasicSR's ``ResidualBlockNoBN``: x + res_scale · conv2(relu(conv1(x))) (3×3 convs with bias)."""

    features: int
    res_scale: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.relu(layers.Conv(self.features, 3, dtype=self.dtype, name="conv1")(x))
        y = layers.Conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
        return x + y * self.res_scale


def _lrelu(x):
    return nn.leaky_relu(x, 0.1)


@register("msrresnet")
class MSRResNet(nn.Module):
    """BasicSR's MSRResNet (see the module docstring).

    Attributes:
      scale: upscaling factor, 2, 3 or 4 (BasicSR's ``upscale``).
      features: channels (BasicSR's ``num_feat``; 64 as published).
      num_blocks: residual blocks (BasicSR's ``num_block``; 16 as published).
      dtype: compute dtype; params and output are float32.

    Parameter names are BasicSR's: ``conv_first``, ``body_{i}/conv{1,2}``, ``upconv1``
    (``upconv2`` at ×4), ``conv_hr``, ``conv_last``.
    """

    SCALES = (2, 3, 4)
    scale: int = 4
    features: int = 64
    num_blocks: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if self.scale not in self.SCALES:
            raise ValueError(f"msrresnet supports scale 2, 3 or 4, got scale={self.scale!r}")
        base = layers.upsample_bilinear(x.astype(jnp.float32), self.scale)
        conv = lambda f, name: layers.Conv(f, 3, dtype=self.dtype, name=name)  # noqa: E731
        out = _lrelu(conv(self.features, "conv_first")(x.astype(self.dtype)))
        for i in range(self.num_blocks):
            out = ResidualBlockNoBN(self.features, dtype=self.dtype, name=f"body_{i}")(out)
        stages = [(2, "upconv1"), (2, "upconv2")] if self.scale == 4 else [(self.scale, "upconv1")]
        for r, name in stages:
            out = _lrelu(layers.pixel_shuffle(conv(self.features * r * r, name)(out), r))
        out = conv(3, "conv_last")(_lrelu(conv(self.features, "conv_hr")(out)))
        return out.astype(jnp.float32) + base

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
