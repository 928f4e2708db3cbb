"""RRDBNet: the generator of ESRGAN and Real-ESRGAN, weight for weight with BasicSR's.

A port of BasicSR's ``RRDBNet`` (``basicsr/archs/rrdbnet_arch.py``, ESRGAN: Wang et al.,
ECCV workshops 2018; the ×2/×1 variants of Real-ESRGAN: Wang et al., ICCV workshops
2021) that keeps the authors' computation and parameter names, so their weight files
(``ESRGAN_SRx4_…``, ``RealESRGAN_x4plus.pth``, ``RealESRGAN_x2plus.pth``,
``RealESRGAN_x4plus_anime_6B.pth``) convert 1:1 with `vsr_jax.pretrained.convert`:

* ×2 and ×1 first pixel-unshuffle the input (factor 2 / 4, PyTorch's channel order
  ``c·s² + i·s + j``), so ``conv_first`` sees 12 / 48 channels; ×4 takes the image as is;
* ``conv_first`` → ``body_{k}`` (``num_blocks`` RRDBs) → ``conv_body``, plus the
  ``conv_first`` output;
* an RRDB is three residual dense blocks ``rdb1..rdb3`` and ``0.2·out + x``; a dense block
  has ``conv1..conv5`` (each sees the concatenation of the block input and all earlier
  outputs; LeakyReLU 0.2 after conv1–conv4) and returns ``0.2·conv5 + x``;
* two nearest ×2 upsamplings, each followed by ``conv_up1`` / ``conv_up2`` and LeakyReLU
  0.2, then ``conv_hr`` + LeakyReLU 0.2 and ``conv_last``. No upsampled copy of the input
  is added: the network outputs the image itself.

All convs are 3×3, stride 1, zero padding 1 (PyTorch's ``Conv2d(…, 3, 1, 1)`` = Flax's
``SAME``). At ×2 / ×1 BasicSR asserts that h and w are multiples of 2 / 4; like
Real-ESRGAN's ``RealESRGANer`` (its mod pad) we reflect-pad the bottom/right edges to
the next multiple and crop the output back to h·s × w·s, so any size works (sizes that
are multiples give exactly the authors' result).

Shapes: LR (N, T, h, w, 3) or (N, h, w, 3) in [0,1] -> (N, T, h·s, w·s, 3) / (N, h·s,
w·s, 3), frames processed independently, output float32, not clipped.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register

# scale -> the pixel-unshuffle factor of the input (Real-ESRGAN's ×2 / ×1 models)
UNSHUFFLE = {1: 4, 2: 2, 4: 1}


def pixel_unshuffle(x, factor: int):
    """Space-to-depth as BasicSR's ``pixel_unshuffle`` / torch.nn.PixelUnshuffle:
    (N, h·f, w·f, C) -> (N, h, w, C·f²), output channel ``c·f² + i·f + j`` taking the pixel
    at offset (i, j) of each f×f block of input channel c."""
    n, hh, ww, c = x.shape
    h, w = hh // factor, ww // factor
    x = x.reshape(n, h, factor, w, factor, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h, w, c * factor * factor)


def upsample_nearest2(x):
    """torch ``F.interpolate(x, scale_factor=2, mode='nearest')`` for (N, h, w, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _lrelu(x):
    return nn.leaky_relu(x, negative_slope=0.2)


def _conv(features: int, dtype: Any, name: str) -> nn.Conv:
    return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, name=name)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs (``conv1..conv5``), residual scaled by 0.2."""

    features: int
    grow_features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        outs = [x]
        for k in range(1, 5):
            y = _conv(self.grow_features, self.dtype, f"conv{k}")(jnp.concatenate(outs, axis=-1))
            outs.append(_lrelu(y))
        y = _conv(self.features, self.dtype, "conv5")(jnp.concatenate(outs, axis=-1))
        return y * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: ``rdb1..rdb3``, residual scaled by 0.2."""

    features: int
    grow_features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = x
        for k in range(1, 4):
            y = ResidualDenseBlock(self.features, self.grow_features, self.dtype, name=f"rdb{k}")(y)
        return y * 0.2 + x


@register("rrdbnet")
class RRDBNet(nn.Module):
    """BasicSR's RRDBNet (ESRGAN / Real-ESRGAN generator).

    Attributes:
      scale: 1, 2 or 4 (×1 and ×2 pixel-unshuffle the input by 4 / 2 first).
      features: ``num_feat`` (64 in every published file).
      num_blocks: ``num_block``, RRDBs in the trunk (23; 6 in ``RealESRGAN_x4plus_anime_6B``).
      grow_features: ``num_grow_ch`` (32).
      dtype: compute dtype; params and output are float32.

    Parameter names are the authors' (``conv_first``, ``body_{k}/rdb{1,2,3}/conv{1..5}``,
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``).
    """

    SCALES = tuple(sorted(UNSHUFFLE))
    scale: int = 4
    features: int = 64
    num_blocks: int = 23
    grow_features: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def _single(self, x):
        if self.scale not in UNSHUFFLE:
            raise ValueError(f"rrdbnet supports scale 1, 2 or 4, got scale={self.scale!r}")
        factor = UNSHUFFLE[self.scale]
        x, (h, w) = layers.pad_to_multiple(x, factor)
        x = x.astype(self.dtype)
        if factor > 1:
            x = pixel_unshuffle(x, factor)
        feat = _conv(self.features, self.dtype, "conv_first")(x)
        y = feat
        for k in range(self.num_blocks):
            y = RRDB(self.features, self.grow_features, self.dtype, name=f"body_{k}")(y)
        feat = feat + _conv(self.features, self.dtype, "conv_body")(y)
        feat = _lrelu(_conv(self.features, self.dtype, "conv_up1")(upsample_nearest2(feat)))
        feat = _lrelu(_conv(self.features, self.dtype, "conv_up2")(upsample_nearest2(feat)))
        out = _conv(3, self.dtype, "conv_last")(_lrelu(_conv(self.features, self.dtype, "conv_hr")(feat)))
        return out[:, : h * self.scale, : w * self.scale].astype(jnp.float32)

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        return layers.per_frame(self._single, lr)
