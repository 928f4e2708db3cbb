"""IconVSR, weight for weight as BasicSR 1.4.2's `IconVSR` (`basicsr/archs/basicvsr_arch.py`).

Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution
and Beyond" (CVPR 2021): BasicVSR with *information refill* at keyframes (features of an
EDVR window fused into both propagation branches) and *coupled propagation* (the forward
branch sees the backward branch's features). The authors' computation, so their weight
files (``IconVSR_REDS-aaa5367f.pth``, ``IconVSR_Vimeo90K_BIx4-35fec07c.pth``, …) load 1:1
through `vsr_jax.pretrained.convert` (``skip=spynet.buffer_keys("spynet.")``):

* ``pad_spatial``: the frames reflect-padded at the bottom / right to multiples of 4
  (EDVR's pyramid halves them twice); everything below runs on the padded frames and the
  output is cropped back to 4h × 4w;
* flows as `basicvsr.BasicVSR` (``spynet``: ``flows_backward[i] = spynet(frame i,
  frame i+1)``, ``flows_forward[i] = spynet(frame i+1, frame i)``);
* keyframes: every ``keyframe_stride``-th frame from 0, and the last frame; at each the
  features of ``edvr`` (`EDVRFeatureExtractor`: conv_first, 5 residual blocks, the strided
  pyramid convs, `edvr.PCDAlignment` with 8 deformable groups, `edvr.TSAFusion`) on the
  window of ``2·temporal_padding + 1`` frames centred there. The clip is padded in time as
  ``get_keyframe_feature`` does: frames ``[4, 3] + clip + [-4, -5]`` for temporal_padding 2,
  ``[6, 5, 4] + clip + [-5, -6, -7]`` for 3 (frame ``tp − j`` before the start, ``2(T−1) −
  tp − j`` after the end, for position j);
* backward branch (last frame to first): the carried features warped by the flow; at a
  keyframe ``backward_fusion`` (3×3 conv of [features, keyframe features]); then
  ``backward_trunk`` (`basicvsr.ConvResidualBlocks`) on [frame, features];
* forward branch (first to last) the same with ``forward_fusion`` and ``forward_trunk`` on
  [frame, backward features, features];
* per frame, from the forward features: ``upconv1`` → pixel shuffle ×2 → LeakyReLU,
  ``upconv2`` → ×2 → LeakyReLU, ``conv_hr`` → LeakyReLU, ``conv_last``, plus the frame
  upsampled ×4 bilinearly. LeakyReLU slope 0.1.

**Short clips.** The authors' temporal padding indexes frames 3 and 4 (temporal_padding 2;
6, 5, 4 for 3), so their model fails on clips of fewer than ``2·temporal_padding + 1``
frames. Here such clips take the same positions clamped to the clip (frame ``min(tp − j,
T − 1)`` before the start, ``max(2(T−1) − tp − j, 0)`` after the end): a 2-frame clip's
window is made of its two frames. Clips of ``2·temporal_padding + 1`` frames or more are the
authors' computation exactly.

Loops. The two propagation branches are `nn.scan` over time with a keyframe flag per frame
(at every frame the fusion conv is computed and kept only where the flag is set: about 3 %
more convolution work at num_block 30, one program whose size does not grow with T); the
reconstruction in inference and the EDVR windows in inference are loops too, so only one
frame's HR features and one window's EDVR features are alive at a time. Training
(``train=True``) runs the EDVR windows and the reconstruction on all of them at once, and on
a CPU unrolls the propagation loops, as `basicvsr.BasicVSR`. The keyframes' positions
depend on T, which is static: each clip length compiles once.

Only ×4. Shapes: (N, T, h, w, 3) in [0, 1] -> (N, T, 4h, 4w, 3), float32, not clipped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax.models import layers, register
from vsr_jax.models.basicvsr import ConvResidualBlocks, upsample_x4
from vsr_jax.models.edvr import PCDAlignment, TSAFusion
from vsr_jax.models.msrresnet import ResidualBlockNoBN
from vsr_jax.models.spynet import SpyNet
from vsr_jax.models.warp import warp

DEFORM_GROUPS = 8  # EDVRFeatureExtractor's PCDAlignment(deformable_groups=8), fixed in BasicSR


def _lrelu(x):
    return nn.leaky_relu(x, 0.1)


def keyframe_indices(num_frames: int, stride: int) -> list[int]:
    """The authors' keyframes: 0, stride, 2·stride, … and the last frame."""
    idx = list(range(0, num_frames, stride))
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return idx


def window_indices(num_frames: int, temporal_padding: int, centre: int) -> list[int]:
    """The frames of the EDVR window centred on `centre` after ``get_keyframe_feature``'s
    temporal padding (see the module docstring; clamped to the clip for short clips)."""
    tp, last = temporal_padding, num_frames - 1
    out = []
    for j in range(centre - tp, centre + tp + 1):
        k = tp - j if j < 0 else 2 * last - tp - j if j > last else j
        out.append(min(max(k, 0), last))
    return out


class EDVRFeatureExtractor(nn.Module):
    """BasicSR's ``EDVRFeatureExtractor``: (N, F, h, w, 3) frames (h, w multiples of 4) ->
    (N, h, w, num_feat) features of the window's centre frame (F // 2)."""

    num_frame: int
    num_feat: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, f, h, w, _ = x.shape
        nf, c = self.num_feat, self.num_frame // 2

        def strided(name):
            return nn.Conv(nf, (3, 3), (2, 2), ((1, 1), (1, 1)), dtype=self.dtype, name=name)

        def conv(name):
            return layers.Conv(nf, 3, dtype=self.dtype, name=name)

        l1 = _lrelu(conv("conv_first")(x.reshape(n * f, h, w, 3)))
        for i in range(5):
            l1 = ResidualBlockNoBN(nf, dtype=self.dtype, name=f"feature_extraction_{i}")(l1)
        l2 = _lrelu(conv("conv_l2_2")(_lrelu(strided("conv_l2_1")(l1))))
        l3 = _lrelu(conv("conv_l3_2")(_lrelu(strided("conv_l3_1")(l2))))
        levels = [a.astype(jnp.float32).reshape(n, f, *a.shape[1:]) for a in (l1, l2, l3)]
        # every frame aligned to the centre frame, all F neighbours in one batch
        nbr = [a.reshape(n * f, *a.shape[2:]) for a in levels]
        ref = [jnp.repeat(a[:, c], f, axis=0) for a in levels]  # (N·F, …) in nbr's order
        aligned = PCDAlignment(nf, DEFORM_GROUPS, self.dtype, name="pcd_align")(nbr, ref)
        aligned = aligned.astype(jnp.float32).reshape(n, f, h, w, nf)
        return TSAFusion(nf, f, c, self.dtype, name="fusion")(aligned).astype(jnp.float32)


class _EDVRWindowStep(EDVRFeatureExtractor):
    """`EDVRFeatureExtractor` as the body of a loop over windows: (carry, window) -> (carry, features)."""

    def __call__(self, carry, x):  # type: ignore[override]
        return carry, super().__call__(x)


def _conv(mdl: nn.Module, features: int, name: str):
    return layers.Conv(features, 3, dtype=mdl.dtype, parent=mdl, name=name)


def _backward_step(mdl: nn.Module, feat, xs):
    """One frame of the backward branch (params of `mdl`): warp, refill at a keyframe, trunk."""
    frame, flow, keyfeat, is_key = xs
    feat = warp(feat, flow)
    fused = _conv(mdl, mdl.num_feat, "backward_fusion")(jnp.concatenate([feat, keyfeat], axis=-1))
    feat = jnp.where(is_key[:, None, None, None], fused.astype(jnp.float32), feat)
    trunk = ConvResidualBlocks(mdl.num_feat, mdl.num_block, mdl.dtype, parent=mdl, name="backward_trunk")
    feat = trunk(jnp.concatenate([frame, feat], axis=-1)).astype(jnp.float32)
    return feat, feat


def _forward_step(mdl: nn.Module, feat, xs):
    """One frame of the forward branch: as `_backward_step`, the trunk also sees the backward features."""
    frame, flow, keyfeat, is_key, backward = xs
    feat = warp(feat, flow)
    fused = _conv(mdl, mdl.num_feat, "forward_fusion")(jnp.concatenate([feat, keyfeat], axis=-1))
    feat = jnp.where(is_key[:, None, None, None], fused.astype(jnp.float32), feat)
    trunk = ConvResidualBlocks(mdl.num_feat, mdl.num_block, mdl.dtype, parent=mdl, name="forward_trunk")
    feat = trunk(jnp.concatenate([frame, backward, feat], axis=-1)).astype(jnp.float32)
    return feat, feat


def _reconstruct(mdl: nn.Module, feat, frames):
    """(M, h, w, num_feat) forward features and their (M, h, w, 3) frames -> (M, 4h, 4w, 3)."""
    return upsample_x4(mdl, feat, frames)


@register("iconvsr")
class IconVSR(nn.Module):
    """BasicSR's IconVSR (see the module docstring).

    Attributes:
      scale: must be 4.
      num_feat: channels (64 as published; a multiple of 8, EDVR's deformable groups).
      num_block: residual blocks per propagation branch (30 in the published models, 15
        the authors' default).
      keyframe_stride: frames between keyframes (5 as published).
      temporal_padding: 2 (EDVR windows of 5 frames: the REDS model) or 3 (7 frames: the
        Vimeo-90K models), the two the authors' code pads for.
      dtype: compute dtype of the convolutions; flows, warps, carried features and the
        output are float32.

    Parameter names are the authors': ``edvr/…`` (``conv_first``, ``feature_extraction_{i}``,
    ``conv_l{2,3}_{1,2}``, ``pcd_align/…``, ``fusion/…``), ``spynet/…``,
    ``{backward,forward}_fusion``, ``{backward,forward}_trunk/main_0``, ``…/main_2_{i}``,
    ``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``.
    """

    flow_modules: ClassVar[tuple[str, ...]] = ("spynet",)  # the flow network's params (optimizers.make_optimizer)

    scale: int = 4
    num_feat: int = 64
    num_block: int = 15
    keyframe_stride: int = 5
    temporal_padding: int = 2
    dtype: Any = jnp.float32

    def _check(self, lr):
        if self.scale != 4:
            raise ValueError(f"iconvsr supports only scale 4 (as the authors'), got scale={self.scale!r}")
        if self.temporal_padding not in (2, 3):
            raise ValueError(f"iconvsr: temporal_padding must be 2 or 3 (as the authors'), got {self.temporal_padding}")
        if self.num_feat % DEFORM_GROUPS:
            raise ValueError(f"iconvsr: num_feat must be a multiple of {DEFORM_GROUPS}, got {self.num_feat}")
        if self.keyframe_stride < 1:
            raise ValueError(f"iconvsr: keyframe_stride must be >= 1, got {self.keyframe_stride}")
        if lr.ndim != 5 or lr.shape[-1] != 3:
            raise ValueError(f"iconvsr expects LR clips (N, T, h, w, 3), got shape {lr.shape}")

    @nn.compact
    def __call__(self, lr, train: bool = False):
        self._check(lr)
        n, t, h_in, w_in, _ = lr.shape
        # pad_spatial: reflect at the bottom / right to multiples of 4
        x, _ = layers.pad_to_multiple(lr.astype(jnp.float32).reshape(n * t, h_in, w_in, 3), 4)
        h, w = x.shape[1:3]
        x = x.reshape(n, t, h, w, 3)
        nf = self.num_feat

        # flows (as BasicVSR); the first frame of each branch gets a zero flow (zero features)
        spynet = SpyNet(self.dtype, name="spynet")
        zero_flow = jnp.zeros((n, 1, h, w, 2), jnp.float32)
        if t > 1:
            x1 = x[:, :-1].reshape(n * (t - 1), h, w, 3)
            x2 = x[:, 1:].reshape(n * (t - 1), h, w, 3)
            flows = spynet(jnp.concatenate([x1, x2]), jnp.concatenate([x2, x1]))
            flows_backward = jnp.concatenate([flows[: n * (t - 1)].reshape(n, t - 1, h, w, 2), zero_flow], axis=1)
            flows_forward = jnp.concatenate([zero_flow, flows[n * (t - 1) :].reshape(n, t - 1, h, w, 2)], axis=1)
        else:
            if self.is_initializing():
                spynet(x[:, 0], x[:, 0])  # creates SpyNet's params for a one-frame init
            flows_backward = flows_forward = zero_flow

        # keyframe features: EDVR on each keyframe's window
        keyframes = keyframe_indices(t, self.keyframe_stride)
        frames_per_window = 2 * self.temporal_padding + 1
        windows = np.asarray([window_indices(t, self.temporal_padding, i) for i in keyframes])  # (K, F)
        win = x[:, windows]  # (N, K, F, h, w, 3)
        if train:  # all windows in one batch
            k = len(keyframes)
            edvr = EDVRFeatureExtractor(frames_per_window, nf, self.dtype, name="edvr")
            keyfeats = edvr(win.reshape(n * k, frames_per_window, h, w, 3)).reshape(n, k, h, w, nf)
        else:  # one window at a time
            edvr = layers.scan_over_time(_EDVRWindowStep)(frames_per_window, nf, self.dtype, name="edvr")
            keyfeats = edvr(None, win)[1]  # (N, K, h, w, nf)
        keyfeat = jnp.zeros((n, t, h, w, nf), jnp.float32).at[:, np.asarray(keyframes)].set(keyfeats)
        is_key = np.zeros((1, t), bool)
        is_key[0, keyframes] = True
        is_key = jnp.asarray(is_key)

        # propagation (CPU training: unrolled, as BasicVSR)
        unroll = t if train and jax.default_backend() == "cpu" else 1
        feat0 = jnp.zeros((n, h, w, nf), jnp.float32)
        backward_loop = layers.scan_over_time(_backward_step, reverse=True, unroll=unroll)
        _, backward = backward_loop(self, feat0, (x, flows_backward, keyfeat, is_key))
        forward_loop = layers.scan_over_time(_forward_step, unroll=unroll)
        _, forward = forward_loop(self, feat0, (x, flows_forward, keyfeat, is_key, backward))

        if train:  # all N·T frames in one batch
            out = _reconstruct(self, forward.reshape(n * t, h, w, nf), x.reshape(n * t, h, w, 3))
            out = out.reshape(n, t, 4 * h, 4 * w, 3)
        else:  # one frame at a time: one frame's HR features alive at once
            loop = layers.scan_over_time(lambda mdl, c, xs: (c, _reconstruct(mdl, *xs)))
            out = loop(self, None, (forward, x))[1]
        return out[:, :, : 4 * h_in, : 4 * w_in]
