"""RUNet: a U-Net with residual blocks in its contracting path, after Hu et al. 2019.

Follows "RUNet: A Robust UNet Architecture for Image Super-Resolution" (Hu, Naiel, Wong,
Lamm, Fieguth, CVPR Workshops 2019): a U-Net whose contracting path is made of residual
blocks, so the encoder is a ResNet-like stack rather than plain double convolutions.

Layout here (levels ``features[0] … features[-1]``, shallowest first):

* contracting path, at each level: a 3×3 conv to the level's width, then
  ``blocks_per_level`` residual blocks (conv3×3 → ReLU → conv3×3, + input;
  `layers.ResidualBlock` with its second conv zero-initialised, so a fresh block is the
  identity), then a 2×2 max-pool (skipped at the last level, the bottleneck). The
  features before the pool are the level's skip.
* expanding path, per level from deep to shallow: a 2×2 stride-2 transposed conv to the
  level's width, concatenation with that level's skip, two 3×3 conv + ReLU.
* upscale: a 3×3 conv to 3·s² channels + pixel shuffle (PyTorch channel order), added to
  a bicubic ×s upsampling of the input. The last conv starts at zero, so an untrained
  network is exactly `layers.upsample_bicubic` (as SR-U-Net with ``residual=True``).

No batch norm anywhere: EDSR (Lim et al. 2017) and ESRGAN (Wang et al. 2018) found BN
hurts SR (range flexibility, artefacts), and it would add mutable state to the train
step. Differences from the published RUNet, which runs on a bicubic-upsampled (HR-size)
input, uses BN, groups its residual blocks as ResNet-34 and upsamples its expanding path
by pixel shuffle: this one runs at LR resolution (cheaper by s²) and upscales once at
the end, with the same number of residual blocks at every level and transposed convs.

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) -> SR (N, T, h·s, w·s, 3) / (N, h·s, w·s, 3),
frames processed independently; any h, w (the network input is reflect-padded to a
multiple of 2^(len(features)−1) and its output cropped; the bicubic skip is taken from
the unpadded frame, so the border is the plain bicubic one). Output float32, not clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register


@register("runet")
class RUNet(nn.Module):
    """RUNet generator.

    Attributes:
      scale: upscaling factor (the final pixel-shuffle layer).
      features: channels per level, shallowest first; the last level is the bottleneck,
        so there are len(features) − 1 max-pools and transposed convs.
      blocks_per_level: residual blocks after each level's entry conv (bottleneck too).
      dtype: compute dtype (bfloat16 for speed on TPU/GPU); params and output are float32.

    Parameter names: ``down{i}_conv``, ``down{i}_res{j}`` (contracting path, level i),
    ``up{i}_transpose``, ``up{i}_conv{0,1}`` (expanding path back to level i),
    ``upscale_conv``.
    """

    scale: int = 2
    features: Sequence[int] = (64, 128, 256, 512)
    blocks_per_level: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if not self.features:
            raise ValueError("runet: features must name at least one level")
        h, w = x.shape[1], x.shape[2]
        skip = layers.upsample_bicubic(x, self.scale)  # float32, from the unpadded frame
        depth = len(self.features)
        y, _ = layers.pad_to_multiple(x, 2 ** (depth - 1))
        y = y.astype(self.dtype)
        skips = []
        for i, f in enumerate(self.features):
            y = nn.Conv(f, (3, 3), dtype=self.dtype, name=f"down{i}_conv")(y)
            for j in range(self.blocks_per_level):
                y = layers.ResidualBlock(f, zero_init=True, dtype=self.dtype, name=f"down{i}_res{j}")(y)
            if i < depth - 1:
                skips.append(y)
                y = nn.max_pool(y, (2, 2), strides=(2, 2))
        for i in reversed(range(depth - 1)):
            f = self.features[i]
            y = nn.ConvTranspose(f, (2, 2), strides=(2, 2), dtype=self.dtype, name=f"up{i}_transpose")(y)
            y = jnp.concatenate([y, skips[i]], axis=-1)
            y = nn.relu(nn.Conv(f, (3, 3), dtype=self.dtype, name=f"up{i}_conv0")(y))
            y = nn.relu(nn.Conv(f, (3, 3), dtype=self.dtype, name=f"up{i}_conv1")(y))
        zeros = nn.initializers.zeros
        y = nn.Conv(3 * self.scale**2, (3, 3), kernel_init=zeros, dtype=self.dtype, name="upscale_conv")(y)
        y = layers.pixel_shuffle(y, self.scale).astype(jnp.float32)
        return y[:, : h * self.scale, : w * self.scale] + skip

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
