"""SRCNN (Dong et al., 2014/2016): three convolutions, 9-1-5, on a bicubic-upsampled frame.

* ``upsampler="bicubic"`` (as published): the LR frame is bicubic-upsampled to the HR
  size first, then 9×9 conv (64) + ReLU, 1×1 conv (32) + ReLU, 5×5 conv (3), all at HR
  resolution. 'SAME' padding keeps the frame size (the paper's 'valid' convs shrink it).
* ``upsampler="learned"``: the same three layers run at LR resolution and a final 3×3
  conv + pixel shuffle makes the HR frame, with a bicubic skip (cheaper by s²).

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) -> SR (N, T, h·s, w·s, 3) / (N, h·s, w·s, 3),
frames processed independently, any h, w.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register


@register("srcnn")
class SRCNN(nn.Module):
    """SRCNN 9-1-5.

    Attributes:
      scale: upscaling factor.
      features: channels of the first two layers (64, 32 as published).
      kernel_sizes: the three kernel sizes (9, 1, 5 as published).
      upsampler: 'bicubic' (published: convs on the bicubic-upsampled frame) or 'learned'.
      dtype: compute dtype; params and output are float32.
    """

    scale: int = 2
    features: Sequence[int] = (64, 32)
    kernel_sizes: Sequence[int] = (9, 1, 5)
    upsampler: str = "bicubic"
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if self.upsampler not in ("bicubic", "learned"):
            raise ValueError(f"srcnn: upsampler must be 'bicubic' or 'learned', got {self.upsampler!r}")
        k1, k2, k3 = self.kernel_sizes
        skip = layers.upsample_bicubic(x, self.scale)
        h = (skip if self.upsampler == "bicubic" else x).astype(self.dtype)
        h = nn.relu(nn.Conv(self.features[0], (k1, k1), dtype=self.dtype)(h))
        h = nn.relu(nn.Conv(self.features[1], (k2, k2), dtype=self.dtype)(h))
        if self.upsampler == "bicubic":
            return nn.Conv(3, (k3, k3), dtype=self.dtype)(h).astype(jnp.float32)
        h = nn.relu(nn.Conv(self.features[1], (k3, k3), dtype=self.dtype)(h))
        zeros = nn.initializers.zeros
        h = nn.Conv(3 * self.scale**2, (3, 3), kernel_init=zeros, dtype=self.dtype, name="upscale_conv")(h)
        return layers.pixel_shuffle(h, self.scale).astype(jnp.float32) + skip

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
