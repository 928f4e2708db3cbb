"""EDSR (Lim et al., CVPR 2017 workshops), weight for weight as BasicSR 1.4.2's `EDSR`.

The computation of BasicSR's `basicsr/archs/edsr_arch.py`, so its weight files
(``EDSR_Mx4_…``, ``EDSR_Lx4_…``) load 1:1 through `vsr_jax.pretrained.convert`:

* mean shift: ``x = (x − rgb_mean) · img_range`` (DIV2K's RGB mean, range 255); a
  constant, not a parameter (BasicSR keeps it as a plain attribute, outside the
  state_dict);
* ``conv_first`` (3×3 to ``features``), no activation;
* ``body.i`` (``num_blocks``): ``ResidualBlockNoBN`` with ``res_scale``, then
  ``conv_after_body``, + the ``conv_first`` output;
* ``upsample``: BasicSR's ``Upsample`` Sequential: per ×2 stage (powers of two) or one
  ×3 stage a conv to features·r² then pixel shuffle (PyTorch channel order), no
  activation; the convs are its items 0, 2, 4 (``upsample.0``, ``upsample.2``, …);
* ``conv_last`` (to 3 channels), then ``x / img_range + rgb_mean``.

No skip from the input image. Published sizes: EDSR_M 64 features, 16 blocks,
res_scale 1; EDSR_L 256 features, 32 blocks, res_scale 0.1.

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) in [0, 1] -> (N, T, h·s, w·s, 3) /
(N, h·s, w·s, 3), frames independent, any h, w. Output float32, not clipped.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register
from vsr_jax.models.msrresnet import ResidualBlockNoBN

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@register("edsr")
class EDSR(nn.Module):
    """BasicSR's EDSR (see the module docstring).

    Attributes:
      scale: upscaling factor, 2, 3, 4 or 8 (BasicSR: powers of two and 3).
      features: channels (BasicSR's ``num_feat``; 64 for EDSR_M, 256 for EDSR_L).
      num_blocks: residual blocks (``num_block``; 16 for EDSR_M, 32 for EDSR_L).
      res_scale: residual scale of the blocks (1 for EDSR_M, 0.1 for EDSR_L).
      img_range, rgb_mean: the mean shift (BasicSR's defaults).
      dtype: compute dtype; params and output are float32.

    Parameter names are BasicSR's: ``conv_first``, ``body_{i}/conv{1,2}``,
    ``conv_after_body``, ``upsample_{0,2,…}``, ``conv_last``.
    """

    SCALES = layers.UPSAMPLER_SCALES
    scale: int = 4
    features: int = 64
    num_blocks: int = 16
    res_scale: float = 1.0
    img_range: float = 255.0
    rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        factors = layers.upsample_factors(self.scale)
        conv = lambda f, name: layers.Conv(f, 3, dtype=self.dtype, name=name)  # noqa: E731
        mean = jnp.asarray(self.rgb_mean, jnp.float32)
        x = ((x.astype(jnp.float32) - mean) * self.img_range).astype(self.dtype)
        x = conv(self.features, "conv_first")(x)
        res = x
        for i in range(self.num_blocks):
            res = ResidualBlockNoBN(self.features, self.res_scale, dtype=self.dtype, name=f"body_{i}")(res)
        res = conv(self.features, "conv_after_body")(res) + x
        for k, r in enumerate(factors):
            res = layers.pixel_shuffle(conv(self.features * r * r, f"upsample_{2 * k}")(res), r)
        out = conv(3, "conv_last")(res)
        return out.astype(jnp.float32) / self.img_range + mean

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
