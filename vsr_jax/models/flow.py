"""SpyNetLite: a SpyNet-style coarse-to-fine optical-flow estimator, trained end to end.

Follows BasicSR's SpyNet (Ranjan & Black 2017, as used by BasicVSR): ImageNet-normalised
inputs, an average-pool ×2 pyramid, and at every level (coarsest first) the previous
flow upsampled ×2 (bilinear, align_corners=True, values ×2), supp warped by it (border
padding), and a basic module of 7×7 convs on concat(ref, warped supp, upsampled flow)
that predicts a residual flow. Each level has its own basic module. The last conv of every
basic module starts at zero, so an untrained network outputs exactly zero flow (a video
model built on it starts as an unaligned one).

Shapes: ref, supp (N, h, w, 3) in [0, 1] -> flow (N, h, w, 2) float32 from ref to supp
(`warp(supp, flow) ≈ ref`, BasicVSR's convention; see `vsr_jax.models.warp`). Any h, w:
inputs are edge-padded at bottom/right to a multiple of 2^(levels−1), the flow cropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vsr_jax.models.warp import warp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _align_corners_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix with align_corners=True sample positions."""
    m = np.zeros((n_out, n_in), np.float32)
    if n_in == 1 or n_out == 1:
        m[:, 0] = 1.0
        return m
    pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = (pos - i0).astype(np.float32)
    m[np.arange(n_out), i0] = 1.0 - frac
    m[np.arange(n_out), i0 + 1] += frac
    return m


def upsample_flow_x2(flow):
    """(N, h, w, 2) -> (N, 2h, 2w, 2): bilinear with align_corners=True, values ×2 (SpyNet's)."""
    _, h, w, _ = flow.shape
    mh = jnp.asarray(_align_corners_matrix(h, 2 * h))
    mw = jnp.asarray(_align_corners_matrix(w, 2 * w))
    return 2.0 * jnp.einsum("oh,nhwc,pw->nopc", mh, flow, mw)


class BasicModule(nn.Module):
    """SpyNet's basic module: 7×7 conv + ReLU per entry of `features`, then a 7×7 conv to 2.

    (N, h, w, 8) = concat(ref, warped supp, flow) -> residual flow (N, h, w, 2) float32.
    The last conv's kernel and bias start at zero.
    """

    features: Sequence[int] = (32, 64, 32, 16)
    kernel_size: int = 7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = (self.kernel_size, self.kernel_size)
        x = x.astype(self.dtype)
        for f in self.features:
            x = nn.relu(nn.Conv(f, k, dtype=self.dtype)(x))
        x = nn.Conv(2, k, kernel_init=nn.initializers.zeros, dtype=self.dtype, name="flow_conv")(x)
        return x.astype(jnp.float32)


class SpyNetLite(nn.Module):
    """Coarse-to-fine flow from `ref` to `supp`.

    Attributes:
      levels: pyramid levels (average-pool ×2 between levels; SpyNet has 6).
      features: channels of the basic module's hidden convs (SpyNet: 32, 64, 32, 16).
      kernel_size: conv kernel size (SpyNet: 7).
      dtype: compute dtype of the convs; params, warping and the flow are float32.
    """

    levels: int = 3
    features: Sequence[int] = (32, 64, 32, 16)
    kernel_size: int = 7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ref, supp):
        """ref, supp: (N, h, w, 3) in [0, 1] -> flow (N, h, w, 2) float32 (dx, dy) in pixels."""
        if ref.shape != supp.shape or ref.ndim != 4 or ref.shape[-1] != 3:
            raise ValueError(f"SpyNetLite expects ref and supp of one shape (N,h,w,3); got {ref.shape}, {supp.shape}")
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        n, h, w, _ = ref.shape
        multiple = 2 ** (self.levels - 1)
        ph, pw = (-h) % multiple, (-w) % multiple
        mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
        std = jnp.asarray(IMAGENET_STD, jnp.float32)

        def prepare(img):
            img = (img.astype(jnp.float32) - mean) / std
            if ph or pw:
                img = jnp.pad(img, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
            pyramid = [img]
            for _ in range(self.levels - 1):
                pyramid.insert(0, nn.avg_pool(pyramid[0], (2, 2), strides=(2, 2)))
            return pyramid

        refs, supps = prepare(ref), prepare(supp)
        flow = None
        for level in range(self.levels):
            r, s = refs[level], supps[level]
            if flow is None:
                flow = jnp.zeros(r.shape[:3] + (2,), jnp.float32)
            else:
                flow = upsample_flow_x2(flow)
            warped = warp(s, flow, padding_mode="border")
            residual = BasicModule(self.features, self.kernel_size, self.dtype, name=f"basic_module_{level}")(
                jnp.concatenate([r, warped, flow], axis=-1)
            )
            flow = flow + residual
        return flow[:, :h, :w]


def clip_flows(flownet, lr, bidirectional: bool = False):
    """Flows of every frame of a clip to its neighbours, the pairs batched through `flownet`.

    lr (N, T, h, w, 3), T ≥ 2 -> (to_prev, to_next), each (N, T, h, w, 2) float32: entry t
    of `to_prev` maps frame t onto frame t−1 (zero at t = 0), of `to_next` onto frame t+1
    (zero at t = T−1). `to_next` is None unless `bidirectional` (then one batched call
    serves both directions).
    """
    n, t, h, w, _ = lr.shape
    zero = jnp.zeros((n, 1, h, w, 2), jnp.float32)
    cur, prev = lr[:, 1:].reshape((-1, h, w, 3)), lr[:, :-1].reshape((-1, h, w, 3))
    if bidirectional:
        back, fwd = jnp.split(flownet(jnp.concatenate([cur, prev]), jnp.concatenate([prev, cur])), 2)
    else:
        back, fwd = flownet(cur, prev), None
    to_prev = jnp.concatenate([zero, back.reshape((n, t - 1, h, w, 2))], axis=1)
    if fwd is None:
        return to_prev, None
    return to_prev, jnp.concatenate([fwd.reshape((n, t - 1, h, w, 2)), zero], axis=1)
