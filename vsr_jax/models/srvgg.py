"""SRVGGNetCompact: Real-ESRGAN's compact video / general model, weight for weight.

A port of ``SRVGGNetCompact`` (``basicsr/archs/srvgg_arch.py``, identical in
``realesrgan/archs/srvgg_arch.py``) that keeps the authors' computation and parameter
names, so ``realesr-animevideov3.pth`` (16 convs) and ``realesr-general-x4v3.pth`` /
``realesr-general-wdn-x4v3.pth`` (32 convs) convert 1:1 with `vsr_jax.pretrained.convert`
(``state_dict_to_params(sd, prelu=prelu_modules(num_conv))``):

* ``body`` is one list: ``body_0`` a 3×3 conv to ``features``, ``body_1`` its activation,
  then ``num_conv`` × (3×3 conv, activation), then a 3×3 conv to 3·scale² channels
  (``body_{2·num_conv+2}``); activations are PReLU with one slope per channel (param
  ``alpha``, PyTorch's init 0.25), ReLU, or LeakyReLU 0.1 (no params);
* pixel shuffle (PyTorch channel order) to h·s × w·s;
* plus the input upsampled by ``F.interpolate(mode='nearest')``: each LR pixel repeated
  s×s times (for integer factors torch's nearest index ``floor(i / s)``).

All convs are 3×3, stride 1, zero padding 1. No HR-resolution conv, which makes it fast.

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) in [0,1] -> (N, T, h·s, w·s, 3) / (N, h·s,
w·s, 3), any h, w, frames processed independently, output float32, not clipped.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register

# act name -> the authors' act_type ("lrelu" is our short name for "leakyrelu")
ACTIVATIONS = {"prelu": "prelu", "relu": "relu", "leakyrelu": "leakyrelu", "lrelu": "leakyrelu"}


def prelu_modules(num_conv: int) -> frozenset[str]:
    """The state_dict module names (``body.1``, ``body.3``, …) whose ``weight`` is a PReLU
    slope in an act_type='prelu' model with `num_conv` body convs (the ``prelu`` argument of
    `vsr_jax.pretrained.convert.state_dict_to_params`)."""
    return frozenset(f"body.{2 * k + 1}" for k in range(num_conv + 1))


class PReLU(nn.Module):
    """torch.nn.PReLU(num_parameters=C) on channels-last input: max(0,x) + alpha·min(0,x)."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        alpha = self.param("alpha", nn.initializers.constant(0.25), (self.features,), jnp.float32)
        return jnp.where(x >= 0, x, alpha.astype(self.dtype) * x)


def upsample_nearest(x, scale: int):
    """torch ``F.interpolate(x, scale_factor=scale, mode='nearest')`` for (N, h, w, C) and
    integer `scale`: output pixel (i, j) is input pixel (i // scale, j // scale)."""
    return jnp.repeat(jnp.repeat(x, scale, axis=1), scale, axis=2)


@register("srvgg")
class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact.

    Attributes:
      scale: ``upscale``, 1 to 4 (the published files are ×4).
      features: ``num_feat`` (64).
      num_conv: ``num_conv``, body convs between the first and the last (16 in
        realesr-animevideov3, 32 in realesr-general-x4v3).
      act: ``act_type``: "prelu" (published), "relu" or "leakyrelu" / "lrelu" (slope 0.1).
      dtype: compute dtype; params and output are float32.

    Parameter names: ``body_{2k}`` convs (``kernel``, ``bias``), ``body_{2k+1}`` PReLU
    slopes (``alpha``).
    """

    SCALES = (1, 2, 3, 4)
    scale: int = 4
    features: int = 64
    num_conv: int = 16
    act: str = "prelu"
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if self.scale not in self.SCALES:
            raise ValueError(f"srvgg supports scale 1 to 4, got scale={self.scale!r}")
        base = upsample_nearest(x, self.scale).astype(jnp.float32)
        y = x.astype(self.dtype)
        index = 0
        for _ in range(self.num_conv + 1):
            y = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=f"body_{index}")(y)
            kind = ACTIVATIONS.get(self.act)
            if kind == "prelu":
                y = PReLU(self.features, self.dtype, name=f"body_{index + 1}")(y)
            elif kind == "relu":
                y = nn.relu(y)
            elif kind == "leakyrelu":
                y = nn.leaky_relu(y, negative_slope=0.1)
            else:
                raise ValueError(f"srvgg act must be one of {sorted(ACTIVATIONS)}, got act={self.act!r}")
            index += 2
        channels = 3 * self.scale * self.scale
        y = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=f"body_{index}")(y)
        return layers.pixel_shuffle(y, self.scale).astype(jnp.float32) + base

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
