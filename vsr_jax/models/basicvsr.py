"""BasicVSR, weight for weight as BasicSR 1.4.2's `BasicVSR` (`basicsr/archs/basicvsr_arch.py`).

Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution
and Beyond" (CVPR 2021). The computation of the authors' module, so their weight files
(``BasicVSR_REDS4-543c8261.pth`` etc.) load 1:1 through `vsr_jax.pretrained.convert`
(``skip=spynet.buffer_keys("spynet.")``):

* flows (``get_flow``): `spynet.SpyNet` (``spynet``) on the pairs of neighbouring frames,
  ``flows_backward[i] = spynet(ref=frame i, supp=frame i+1)`` and
  ``flows_forward[i] = spynet(ref=frame i+1, supp=frame i)`` (one SpyNet call on both
  sets here: every pair is computed on its own);
* backward propagation from the last frame to the first: the previous (later) frame's
  features, zeros at the start, warped by ``flows_backward[i]`` (`warp.warp`: bilinear,
  zero padding, as ``flow_warp``), concatenated after frame i's RGB and passed through
  ``backward_trunk`` (``ConvResidualBlocks``: 3×3 conv ``main.0`` to ``num_feat``,
  LeakyReLU(0.1), ``num_block`` ResidualBlockNoBN ``main.2.{i}`` (conv1 → ReLU → conv2, +
  input));
* forward propagation the same way from the first frame to the last with
  ``flows_forward[i-1]`` and ``forward_trunk``;
* per frame: ``fusion`` (1×1 conv of [backward, forward] features) → LeakyReLU,
  ``upconv1`` (to 4·num_feat) → pixel shuffle ×2 → LeakyReLU, ``upconv2`` (to 256) →
  pixel shuffle ×2 → LeakyReLU, ``conv_hr`` (64→64) → LeakyReLU, ``conv_last`` (64→3),
  plus the frame upsampled ×4 bilinearly (``align_corners=False``). LeakyReLU slope 0.1;
  the reconstruction is per frame: in inference one frame after the other (as the authors'
  loop; only one frame's HR features are alive at a time: 15 frames of 180×320 at once
  would need several 3.5 GB tensors), in training (``train=True``) on all N·T frames at
  once (fewer, larger operations for the backward pass).

Only ×4 (as the authors'). Any frame size (the authors' SpyNet raises for a side of
32 px or less; `spynet.SpyNet` goes on there, see its docstring). Shapes: (N, T, h, w, 3)
in [0, 1] -> (N, T, 4h, 4w, 3), float32, not clipped.

The time loops (both propagations, and the reconstruction in inference) are `nn.scan`
(XLA while loops; params broadcast, so their names are the authors'): the program and its
compile time do not grow with T (each clip length still compiles once: shapes are static).
The first frame of each pass warps its zero features by a zero flow, which gives zeros as
the authors' skipped warp. Training on a CPU unrolls the propagation loops (faster there,
see `BasicVSR.__call__`; one program per training clip length).
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vsr_jax.models import layers, register
from vsr_jax.models.msrresnet import ResidualBlockNoBN
from vsr_jax.models.spynet import SpyNet, resize_bilinear
from vsr_jax.models.warp import warp


def _lrelu(x):
    return nn.leaky_relu(x, 0.1)


def _conv_residual_blocks(x, features: int, num_block: int, dtype):
    """ConvResidualBlocks' layers in the calling (compact) module: ``main_0``, ``main_2_{i}``."""
    x = _lrelu(layers.Conv(features, 3, dtype=dtype, name="main_0")(x))
    for i in range(num_block):
        x = ResidualBlockNoBN(features, dtype=dtype, name=f"main_2_{i}")(x)
    return x


class ConvResidualBlocks(nn.Module):
    """BasicVSR's ConvResidualBlocks: ``main_0`` conv → LeakyReLU(0.1) → ``main_2_{i}`` blocks."""

    features: int
    num_block: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        return _conv_residual_blocks(x, self.features, self.num_block, self.dtype)


class _PropagationStep(nn.Module):
    """One frame of a propagation branch, the body of its `nn.scan`: the carried features
    warped by this frame's flow, concatenated after the frame, through the trunk (its params
    are the trunk's: ``main_0``, ``main_2_{i}``). (feat, (frame, flow)) -> (feat, feat)."""

    features: int
    num_block: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, feat, inputs):
        frame, flow = inputs
        x = jnp.concatenate([frame, warp(feat, flow)], axis=-1)
        feat = _conv_residual_blocks(x, self.features, self.num_block, self.dtype).astype(jnp.float32)
        return feat, feat


def _propagation(features, num_block, dtype, *, reverse: bool, unroll: int, name: str) -> nn.Module:
    """A propagation branch over time (axis 1) as an XLA loop (`unroll` frames per iteration):
    (feat, (frames, flows)) -> (feat, feats)."""
    scanned = layers.scan_over_time(_PropagationStep, reverse=reverse, unroll=unroll)
    return scanned(features, num_block, dtype, name=name)


def upsample_x4(mdl: nn.Module, x, frames):
    """BasicVSR's upsampling tail, shared by EDVR and IconVSR (params of `mdl`: ``upconv1``
    (to 4·num_feat) → pixel shuffle ×2 → LeakyReLU, ``upconv2`` (to 256) → ×2 → LeakyReLU,
    ``conv_hr`` → LeakyReLU, ``conv_last``), plus `frames` upsampled ×4 bilinearly
    (``align_corners=False``): (M, h, w, num_feat), (M, h, w, 3) -> (M, 4h, 4w, 3)."""
    conv = lambda f, name: layers.Conv(f, 3, dtype=mdl.dtype, parent=mdl, name=name)  # noqa: E731
    x = _lrelu(layers.pixel_shuffle(conv(mdl.num_feat * 4, "upconv1")(x), 2))
    x = _lrelu(layers.pixel_shuffle(conv(64 * 4, "upconv2")(x), 2))
    x = conv(3, "conv_last")(_lrelu(conv(64, "conv_hr")(x))).astype(jnp.float32)
    return x + resize_bilinear(frames, 4 * frames.shape[1], 4 * frames.shape[2], align_corners=False)


def _reconstruct(mdl: nn.Module, feat, frames):
    """The reconstruction (the same layers, params of `mdl`, for every frame):
    (M, h, w, 2·num_feat) features and their (M, h, w, 3) LR frames -> (M, 4h, 4w, 3)."""
    x = _lrelu(layers.Conv(mdl.num_feat, 1, dtype=mdl.dtype, parent=mdl, name="fusion")(feat))
    return upsample_x4(mdl, x, frames)


@register("basicvsr")
class BasicVSR(nn.Module):
    """BasicSR's BasicVSR (see the module docstring).

    Attributes:
      scale: must be 4.
      num_feat: channels of the propagation branches (64 as published).
      num_block: residual blocks per branch (30 in the published REDS/Vimeo models, 15 the
        authors' default).
      dtype: compute dtype of the convolutions; flows, warps and the output are float32.

    Parameter names are the authors': ``spynet/basic_module_{k}/basic_module_{j}``,
    ``{backward,forward}_trunk/main_0``, ``…/main_2_{i}/conv{1,2}``, ``fusion``,
    ``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``.
    """

    flow_modules: ClassVar[tuple[str, ...]] = ("spynet",)  # the flow network's params (optimizers.make_optimizer)

    scale: int = 4
    num_feat: int = 64
    num_block: int = 15
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, lr, train: bool = False):
        if self.scale != 4:
            raise ValueError(f"basicvsr supports only scale 4 (as the authors'), got scale={self.scale!r}")
        if lr.ndim != 5 or lr.shape[-1] != 3:
            raise ValueError(f"basicvsr expects LR clips (N, T, h, w, 3), got shape {lr.shape}")
        lr = lr.astype(jnp.float32)
        n, t, h, w, _ = lr.shape
        spynet = SpyNet(self.dtype, name="spynet")
        # Training on a CPU: the propagation loops fully unrolled (XLA:CPU computes a
        # convolution's weight gradient inside a while loop slowly, and for this model the
        # im2col matmul of layers.loop_conv_impl was slower than unrolled convolutions).
        # Training clips have one length, so this compiles once.
        unroll = t if train and jax.default_backend() == "cpu" else 1
        backward_trunk = _propagation(
            self.num_feat, self.num_block, self.dtype, reverse=True, unroll=unroll, name="backward_trunk"
        )
        forward_trunk = _propagation(
            self.num_feat, self.num_block, self.dtype, reverse=False, unroll=unroll, name="forward_trunk"
        )

        zero_flow = jnp.zeros((n, 1, h, w, 2), jnp.float32)
        if t > 1:
            x1 = lr[:, :-1].reshape(n * (t - 1), h, w, 3)
            x2 = lr[:, 1:].reshape(n * (t - 1), h, w, 3)
            flows = spynet(jnp.concatenate([x1, x2]), jnp.concatenate([x2, x1]))
            flows_backward = flows[: n * (t - 1)].reshape(n, t - 1, h, w, 2)
            flows_forward = flows[n * (t - 1) :].reshape(n, t - 1, h, w, 2)
            # frame i's flow in each pass; the first frame of a pass gets a zero flow, which
            # warps its zero features to zeros (the authors' first step warps nothing)
            flows_backward = jnp.concatenate([flows_backward, zero_flow], axis=1)
            flows_forward = jnp.concatenate([zero_flow, flows_forward], axis=1)
        else:
            if self.is_initializing():
                spynet(lr[:, 0], lr[:, 0])  # creates SpyNet's params for a one-frame init
            flows_backward = flows_forward = zero_flow

        feat0 = jnp.zeros((n, h, w, self.num_feat), jnp.float32)
        _, backward = backward_trunk(feat0, (lr, flows_backward))  # (N, T, h, w, num_feat)
        _, forward = forward_trunk(feat0, (lr, flows_forward))

        if train:
            # training: all N·T frames in one batch (fewer, larger ops for the backward pass)
            feats = jnp.concatenate([backward, forward], axis=-1)
            x = _reconstruct(self, feats.reshape(n * t, h, w, 2 * self.num_feat), lr.reshape(n * t, h, w, 3))
            return x.reshape(n, t, 4 * h, 4 * w, 3)
        # inference: one frame at a time (a loop), so that only one frame's HR features are
        # alive at once (15 frames of 180×320 at once would hold several 3.5 GB tensors)
        feats = jnp.concatenate([backward, forward], axis=-1)
        loop = layers.scan_over_time(lambda mdl, c, xs: (c, _reconstruct(mdl, *xs)))
        return loop(self, None, (feats, lr))[1]
