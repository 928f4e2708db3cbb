"""SR-U-Net: the seed study's U-Net for single-image super-resolution.

Contracting path: at each level two 3×3 conv + ReLU, then 2×2 max-pool.
Expanding path: 2×2 stride-2 transposed conv, concatenation with the skip of the same
level, two 3×3 conv + ReLU. A final upscale layer (3×3 conv to 3·s² channels + pixel
shuffle) maps the LR-resolution features to the HR frame. With `residual=True` the
network predicts the difference to a bicubic upsampling of its input (its last conv starts
at zero, so an untrained network is exactly the bicubic baseline).

Shapes: LR (N, T, h, w, 3) -> SR (N, T, h·s, w·s, 3), frames processed independently;
any h, w (inputs are reflect-padded to a multiple of 2^(levels−1) and the output cropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register


class _DoubleConv(nn.Module):
    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))
        return nn.relu(nn.Conv(self.features, (3, 3), dtype=self.dtype)(x))


@register("unet")
class SRUNet(nn.Module):
    """SR-U-Net (seed: 64×64 LR patches -> 128×128 HR at ×2).

    Attributes:
      scale: upscaling factor (the final pixel-shuffle layer).
      features: channels per level, shallowest first; len(features) levels, the last one
        is the bottleneck (so len(features) − 1 max-pools).
      residual: add a bicubic upsampling of the input to the output.
      dtype: compute dtype (bfloat16 for speed on TPU/GPU); params and output are float32.
    """

    scale: int = 2
    features: Sequence[int] = (64, 128, 256)
    residual: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        depth = len(self.features)
        x, (h, w) = layers.pad_to_multiple(x, 2 ** (depth - 1))
        inp = x
        x = x.astype(self.dtype)
        skips = []
        for f in self.features[:-1]:
            x = _DoubleConv(f, self.dtype)(x)
            skips.append(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = _DoubleConv(self.features[-1], self.dtype)(x)
        for f, skip in zip(reversed(self.features[:-1]), reversed(skips), strict=True):
            x = nn.ConvTranspose(f, (2, 2), strides=(2, 2), dtype=self.dtype)(x)
            x = jnp.concatenate([x, skip], axis=-1)
            x = _DoubleConv(f, self.dtype)(x)
        init = nn.initializers.zeros if self.residual else nn.linear.default_kernel_init
        x = nn.Conv(3 * self.scale**2, (3, 3), kernel_init=init, dtype=self.dtype, name="upscale_conv")(x)
        x = layers.pixel_shuffle(x, self.scale).astype(jnp.float32)
        if self.residual:
            x = x + layers.upsample_bicubic(inp, self.scale)
        return x[:, : h * self.scale, : w * self.scale]

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
