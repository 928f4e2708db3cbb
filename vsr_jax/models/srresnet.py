"""SRResNet: the generator of SRGAN (Ledig et al. 2017), without batch norm.

Follows "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network" (Ledig et al., CVPR 2017) with the changes BasicSR's MSRResNet makes (3×3 head
conv, no BN, an upsampled copy of the input added to the output):

* head: 3×3 conv to ``features`` channels (no activation);
* trunk: ``num_blocks`` residual blocks (conv3×3 → ReLU → conv3×3, + input;
  `layers.ResidualBlock`), then a 3×3 conv, plus a global skip from the head output.
  Each block's second conv starts at zero (a fresh block is the identity): with Flax's
  default init, 16 plain blocks grow the trunk activations ~20× and such a net barely
  trained (MSE 0.99× its start after 30 Adam steps on a fixed batch, against 0.24× with
  zero-init; measured at 16 features). MSRResNet scales its kaiming init by 0.1 for the
  same reason;
* upsampling by pixel shuffle: ×2 and ×4 use one and two ×2 stages, ×3 one ×3 stage;
  each stage is a 3×3 conv to features·r² channels, pixel shuffle (PyTorch channel
  order) and ReLU (SRGAN uses PReLU, MSRResNet LeakyReLU(0.1); plain ReLU keeps the
  layer parameter-free);
* tail: a 3×3 conv to 3 channels, added to a bicubic ×s upsampling of the input
  (MSRResNet adds a bilinear one; bicubic is the stronger baseline and the skip every
  other family here uses). The tail conv starts at zero, so an untrained network is
  exactly `layers.upsample_bicubic` (MSRResNet instead scales its kaiming init by 0.1).

No batch norm: EDSR (Lim et al. 2017) and ESRGAN (Wang et al. 2018) found BN hurts SR,
and it would add mutable state to the train step.

Layout vs MSRResNet: MSRResNet has no trunk conv / global skip, but a 64→64 conv
(``conv_hr``) + LeakyReLU at HR resolution before its last conv. The two layouts have the
same number of parameters (1,517,571 at ×4, 64 features, 16 blocks) but not the same
weights, so MSRResNet checkpoints do not port one-to-one.

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) -> SR (N, T, h·s, w·s, 3) / (N, h·s, w·s, 3),
frames processed independently, any h, w. Output float32, not clipped.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register

# scale -> the pixel-shuffle factor of each upsampling stage
UPSAMPLE_STAGES = {2: (2,), 3: (3,), 4: (2, 2)}


@register("srresnet")
class SRResNet(nn.Module):
    """SRResNet generator (no BN).

    Attributes:
      scale: upscaling factor, 2, 3 or 4.
      features: channels of the trunk (64 as published).
      num_blocks: residual blocks in the trunk (16 as published).
      dtype: compute dtype (bfloat16 for speed on TPU/GPU); params and output are float32.

    Parameter names: ``conv_first``, ``block{i}``, ``conv_body``, ``upconv{k}``, ``conv_last``.
    """

    SCALES = tuple(UPSAMPLE_STAGES)  # the upscaling factors it supports (None: any)
    scale: int = 4
    features: int = 64
    num_blocks: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if self.scale not in UPSAMPLE_STAGES:
            raise ValueError(f"srresnet supports scale 2, 3 or 4, got scale={self.scale!r}")
        skip = layers.upsample_bicubic(x, self.scale)  # float32
        x = x.astype(self.dtype)
        head = nn.Conv(self.features, (3, 3), dtype=self.dtype, name="conv_first")(x)
        y = head
        for i in range(self.num_blocks):
            y = layers.ResidualBlock(self.features, zero_init=True, dtype=self.dtype, name=f"block{i}")(y)
        y = nn.Conv(self.features, (3, 3), dtype=self.dtype, name="conv_body")(y) + head
        for k, r in enumerate(UPSAMPLE_STAGES[self.scale]):
            y = nn.Conv(self.features * r * r, (3, 3), dtype=self.dtype, name=f"upconv{k}")(y)
            y = nn.relu(layers.pixel_shuffle(y, r))
        zeros = nn.initializers.zeros
        y = nn.Conv(3, (3, 3), kernel_init=zeros, dtype=self.dtype, name="conv_last")(y)
        return y.astype(jnp.float32) + skip

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
