"""SpyNet optical flow, weight for weight as BasicSR 1.4.2's `SpyNet` (`basicsr/archs/spynet_arch.py`).

A flow network, not an SR model (so not registered): `SpyNet()(ref, supp)` takes two
batches of frames (N, h, w, 3) in [0, 1] and returns the flow (N, h, w, 2) in pixels,
``[..., 0]`` horizontal and ``[..., 1]`` vertical, that warps `supp` onto `ref` with
`warp.warp` (BasicSR's `flow_warp` convention). It computes what the authors' module
computes, so their weight files (e.g. ``spynet_sintel_final-3d2a1287.pth``, and the
``spynet.*`` part of BasicVSR's) load 1:1 through `vsr_jax.pretrained.convert`:

* ``forward``: both frames are resized to the next multiples of 32 (bilinear,
  ``align_corners=False``: half-pixel centres, source positions clamped at 0, no
  antialiasing), the flow computed there is resized back to (h, w) the same way, and
  its u and v are multiplied by w / w32 and h / h32;
* ``process``: ImageNet normalisation ((x − mean) / std, mean (0.485, 0.456, 0.406), std
  (0.229, 0.224, 0.225)); a 6-level pyramid by 2×2 average pooling (stride 2, odd sizes
  floored); from a zero flow at the coarsest level, then at each finer level from coarse to
  fine: the flow is upsampled ×2 (bilinear, ``align_corners=True``) and its values ×2,
  a missing last row / column is replicated, and ``basic_module.{level}`` maps
  [ref, supp warped by that flow (bilinear, border padding), flow] (8 channels) to a
  residual flow added to it;
* ``BasicModule``: five 7×7 convs (stride 1, zero padding 3, bias) 8→32→64→32→16→2 with
  ReLU between, named as the authors' Sequential: ``basic_module_{0,2,4,6,8}``.

Parameter paths: ``basic_module_{level}/basic_module_{j}/{kernel,bias}`` (the authors'
``basic_module.{level}.basic_module.{j}.{weight,bias}``). The ``mean`` / ``std`` buffers of
their state_dict are constants here: leave them out with ``skip=buffer_keys()`` and check
them with `check_buffers`.

Frames of 32 px or less in a dimension: the authors' code raises there (the coarsest
level is 1 px, and the flow it upsamples from is 0 px); this port starts from a zero flow
at the coarsest level's size, which is what their upsampled zero flow is at every size they
accept: it computes the same wherever theirs runs, and also runs where theirs stops. The
pyramid's sizes are static: one compiled program per frame size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vsr_jax.models import layers
from vsr_jax.models.warp import warp

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LEVELS = 6
# The authors' BasicModule Sequential: (index, out channels); ReLU after all but the last.
CONVS = ((0, 32), (2, 64), (4, 32), (6, 16), (8, 2))


def buffer_keys(prefix: str = "") -> tuple[str, ...]:
    """`state_dict_to_params(skip=...)` patterns of the normalisation buffers (``mean``, ``std``)."""
    return (re.escape(prefix) + "mean", re.escape(prefix) + "std")


def check_buffers(state_dict: Mapping[str, Any], prefix: str = "") -> None:
    """Raises ValueError unless the file's ``mean`` / ``std`` buffers (if present) are ImageNet's."""
    for key, want in ((prefix + "mean", MEAN), (prefix + "std", STD)):
        if key in state_dict:
            value = state_dict[key]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if value.size != 3 or not np.allclose(value.reshape(3), want, rtol=0, atol=1e-6):
                raise ValueError(f"SpyNet buffer {key} is {value.reshape(-1).tolist()}, expected {list(want)}")


def _taps(n_in: int, n_out: int, align_corners: bool):
    """Torch's bilinear source taps along one axis: (i0, i1, lambda1), computed in float32
    as `upsample_bilinear2d` does (scale in/out, or (in-1)/(out-1) with align_corners)."""
    dst = np.arange(n_out, dtype=np.float32)
    if align_corners:
        scale = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
        src = scale * dst
    else:
        scale = np.float32(n_in / n_out)
        src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    lam = (src - i0.astype(np.float32)).astype(np.float32)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, lam


def resize_bilinear(x, out_h: int, out_w: int, align_corners: bool):
    """torch ``F.interpolate(mode='bilinear', align_corners=...)`` to (out_h, out_w) of (N, h, w, C).

    No antialiasing (when shrinking, each output still reads 2×2 inputs), as torch's default.
    """
    n, h, w, c = x.shape
    if (h, w) == (out_h, out_w):
        return x
    i0, i1, lam = _taps(h, out_h, align_corners)
    lam = jnp.asarray(lam)[None, :, None, None]
    x = x[:, i0] * (1.0 - lam) + x[:, i1] * lam
    j0, j1, lam = _taps(w, out_w, align_corners)
    lam = jnp.asarray(lam)[None, None, :, None]
    return x[:, :, j0] * (1.0 - lam) + x[:, :, j1] * lam


def _avg_pool2(x):
    """``F.avg_pool2d(kernel_size=2, stride=2)``: odd sizes drop their last row / column."""
    n, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2, c)
    return x.sum(axis=(2, 4)) / 4.0


class BasicModule(nn.Module):
    """The authors' BasicModule: [ref, warped supp, flow] (N, h, w, 8) -> residual flow (N, h, w, 2)."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        for j, features in CONVS:
            x = layers.Conv(features, 7, dtype=self.dtype, name=f"basic_module_{j}")(x)
            if j != CONVS[-1][0]:
                x = nn.relu(x)
        return x.astype(jnp.float32)


class SpyNet(nn.Module):
    """BasicSR's SpyNet (see the module docstring): (ref, supp) (N, h, w, 3) -> flow (N, h, w, 2).

    Attributes:
      dtype: compute dtype of the convolutions; the pyramid, warps and flows are float32.
    """

    dtype: Any = jnp.float32

    def setup(self):
        # A list attribute: Flax names its items basic_module_0 … basic_module_5.
        self.basic_module = [BasicModule(self.dtype) for _ in range(LEVELS)]

    def process(self, ref, supp):
        """The flow at a size whose sides are multiples of 32 (the authors' ``process``)."""
        mean = jnp.asarray(MEAN, jnp.float32)
        std = jnp.asarray(STD, jnp.float32)
        ref = [(ref - mean) / std]
        supp = [(supp - mean) / std]
        for _ in range(LEVELS - 1):
            ref.insert(0, _avg_pool2(ref[0]))
            supp.insert(0, _avg_pool2(supp[0]))
        flow = None
        for level in range(LEVELS):
            n, h, w, _ = ref[level].shape
            if flow is None:
                # The authors upsample a zero flow of half this size: zeros (see the module docstring).
                up = jnp.zeros((n, h, w, 2), jnp.float32)
            else:
                fh, fw = flow.shape[1:3]
                up = resize_bilinear(flow, 2 * fh, 2 * fw, align_corners=True) * 2.0
                up = jnp.pad(up, ((0, 0), (0, h - 2 * fh), (0, w - 2 * fw), (0, 0)), mode="edge")
            warped = warp(supp[level], up, padding_mode="border")
            flow = self.basic_module[level](jnp.concatenate([ref[level], warped, up], axis=-1)) + up
        return flow

    def __call__(self, ref, supp):
        if ref.ndim != 4 or ref.shape != supp.shape or ref.shape[-1] != 3:
            raise ValueError(f"SpyNet expects two (N, h, w, 3) batches of one shape, got {ref.shape} and {supp.shape}")
        h, w = ref.shape[1:3]
        h32, w32 = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        ref = resize_bilinear(ref.astype(jnp.float32), h32, w32, align_corners=False)
        supp = resize_bilinear(supp.astype(jnp.float32), h32, w32, align_corners=False)
        flow = resize_bilinear(self.process(ref, supp), h, w, align_corners=False)
        return flow * jnp.asarray([w / w32, h / h32], jnp.float32)
