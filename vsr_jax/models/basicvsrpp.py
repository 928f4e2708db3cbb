"""BasicVSR++, weight for weight as MMagic 1.2.0's `BasicVSRPlusPlusNet`
(``mmagic/models/editors/basicvsr_plusplus_net/basicvsr_plusplus_net.py``).

Chan et al., "BasicVSR++: Improving Video Super-Resolution with Enhanced Propagation and
Alignment" (CVPR 2022). The computation of the authors' module, so their weight files
(``basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth`` etc.) load 1:1 through
the importer's MMagic renames (`vsr_jax.pretrained.mmagic`):

* ``feat_extract``: ``ResidualBlocksWithInputConv(3, C, 5)`` on every LR frame (3×3 conv
  ``main.0``, LeakyReLU(0.1), five residual blocks ``main.2.{i}``: `basicvsr.ConvResidualBlocks`);
* flows: MMagic's SPyNet (`spynet.SpyNet`, ``spynet``) on neighbouring LR frames,
  ``flows_backward[i] = spynet(frame i, frame i+1)``, ``flows_forward[i] = spynet(frame i+1,
  frame i)``. MMagic takes ``flows_forward = flows_backward.flip(1)`` for a mirror-extended
  clip (frame i equal to frame t-1-i, ``check_if_mirror_extended``): on such a clip that is
  ``spynet(frame i+1, frame i)`` again, the very value computed here, so the output is the
  same (the parity test has such a clip); only MMagic's SpyNet work is halved there;
* second-order grid propagation: four branches in the order ``backward_1``, ``forward_1``,
  ``backward_2``, ``forward_2``; each runs over the frames (backward: last to first) and at
  frame i (its k-th step) computes, with ``p1`` / ``p2`` its outputs of the last two steps
  (zeros before) and ``f1`` the flow from frame i to the previous step's frame:
  at k ≥ 1 ``f2 = f1 + warp(f1 of the last step, f1)`` (k ≥ 2; zeros at k = 1) and the
  flow-guided deformable alignment ``a = deform_align[branch]([p1, p2], [warp(p1, f1),
  spatial_i, warp(p2, f2)], f1, f2)`` (``a`` = zeros at k = 0); then
  ``out_i = a + backbone[branch]([spatial_i, <earlier branches' out_i in that order>, a])``
  (``ResidualBlocksWithInputConv((2 + b)·C, C, num_blocks)``). Warps are `warp.warp`
  (bilinear, zero padding: MMagic's ``flow_warp``);
* ``SecondOrderDeformableAlignment``: ``conv_offset`` (3×3 convs 3C+4 → C → C → C → 27·16,
  LeakyReLU(0.1) between: ``conv_offset.{0,2,4,6}``) on [extra features, f1, f2] gives
  (o1, o2, m) in three equal channel chunks; offsets ``max_residue_magnitude · tanh([o1, o2])``,
  whose first half (deform groups 0-7, which sample ``p1``) is added to f1 and second half
  (groups 8-15, ``p2``) to f2, each as (dy, dx) repeated per tap; mask ``sigmoid(m)``; a
  modulated deformable 3×3 conv (padding 1, 16 deform groups, `deform.deform_conv2d`; the
  layer's own ``weight`` / ``bias``) of [p1, p2] (2C → C);
* per frame: ``reconstruction`` (``ResidualBlocksWithInputConv(5C, C, 5)`` of [spatial,
  backward_1, forward_1, backward_2, forward_2]), ``upsample1`` (PixelShufflePack: conv to 4C,
  pixel shuffle ×2) → LeakyReLU, ``upsample2`` (conv to 256, ×2) → LeakyReLU, ``conv_hr`` →
  LeakyReLU, ``conv_last``, plus the frame upsampled ×4 bilinearly (``align_corners=False``).

``is_low_res_input=True`` (the published SR models): ×4 (scale 4). ``False`` (MMagic's NTIRE
2021 decompression models): same-size output (scale 1), the features and flows at a quarter
of the input's size (see `BasicVSRPlusPlus`). C (mid_channels) must be a multiple of 8 (the
16 deform groups split 2C channels). Any frame size (the authors' code asserts LR frames, or
the quarter-size ones, of at least 64×64; the computation below that guard is the
same). Shapes: (N, T, h, w, 3) in [0, 1] -> (N, T, 4h, 4w, 3), float32, not clipped.

Each branch is one `nn.scan` over time (params broadcast, the authors' names; the carry
holds the last two outputs and the last flow), so the program does not grow with T; the
first two steps of a branch are the loop body with the missing terms set to zero by
`jnp.where` (the deformable conv of the first step is computed and dropped). The
reconstruction runs frame by frame in inference (one frame's HR features alive at a time),
on all frames at once in training (as `basicvsr`). Training on a CPU unrolls the loops.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax.models import layers, register
from vsr_jax.models.basicvsr import ConvResidualBlocks
from vsr_jax.models.deform import deform_conv2d
from vsr_jax.models.spynet import SpyNet, resize_bilinear
from vsr_jax.models.warp import warp

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")
DEFORM_GROUPS = 16  # the authors' (fixed in BasicVSRPlusPlusNet)


def _lrelu(x):
    return nn.leaky_relu(x, 0.1)


def _torch_bicubic_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in) float32 weights of torch's ``upsample_bicubic2d`` along one axis with a
    given ``scale_factor`` (``align_corners=False``): source ``(dst + 0.5) / scale - 0.5``
    (not clamped), the four taps ``floor - 1 … floor + 2`` with Keys' cubic (A = -0.75),
    indices clamped to the edge (their weights add up there), no antialiasing."""
    a = -0.75
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(1.0 / scale) - np.float32(0.5)
    i0 = np.floor(src)
    t = src - i0
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731  1 < |x| < 2
    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    m = np.zeros((n_out, n_in), np.float64)
    for k, wk in enumerate(weights):
        idx = np.clip(i0.astype(np.int64) - 1 + k, 0, n_in - 1)
        np.add.at(m, (np.arange(n_out), idx), wk.astype(np.float32))
    return m.astype(np.float32)


def _bicubic_quarter(x):
    """torch ``F.interpolate(x, scale_factor=0.25, mode='bicubic')`` of (M, h, w, C), h and w
    multiples of 4 -> (M, h/4, w/4, C)."""
    _, h, w, _ = x.shape
    my = jnp.asarray(_torch_bicubic_matrix(h, h // 4, 0.25))
    mx = jnp.asarray(_torch_bicubic_matrix(w, w // 4, 0.25))
    hi = jax.lax.Precision.HIGHEST
    return jnp.einsum("ih,jw,nhwc->nijc", my, mx, x, precision=hi)


class SecondOrderDeformableAlignment(nn.Module):
    """MMagic's SecondOrderDeformableAlignment (see the module docstring): params ``kernel``
    (3, 3, 2C, C) and ``bias`` (C,) of the deformable conv, ``conv_offset_{0,2,4,6}``.
    (x (M, h, w, 2C), extra (M, h, w, 3C), flow_1, flow_2 (M, h, w, 2)) -> (M, h, w, C)."""

    features: int
    max_residue_magnitude: float = 10.0
    deform_groups: int = DEFORM_GROUPS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, extra, flow_1, flow_2):
        c, dg = self.features, self.deform_groups
        conv = lambda f, name: layers.Conv(f, 3, dtype=self.dtype, name=name)  # noqa: E731
        h = jnp.concatenate([extra, flow_1, flow_2], axis=-1)
        h = _lrelu(conv(c, "conv_offset_0")(h))
        h = _lrelu(conv(c, "conv_offset_2")(h))
        h = _lrelu(conv(c, "conv_offset_4")(h))
        out = conv(27 * dg, "conv_offset_6")(h).astype(jnp.float32)
        k = 9 * dg  # channels of each of o1, o2, mask
        offset = self.max_residue_magnitude * jnp.tanh(out[..., : 2 * k])
        # (dx, dy) -> (dy, dx), repeated for each (group, tap) of its half
        offset = offset + jnp.concatenate(
            [jnp.tile(flow_1[..., ::-1], k // 2), jnp.tile(flow_2[..., ::-1], k // 2)], axis=-1
        )
        mask = jax.nn.sigmoid(out[..., 2 * k :])
        kernel = self.param("kernel", nn.linear.default_kernel_init, (3, 3, x.shape[-1], c), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        y = deform_conv2d(
            x.astype(self.dtype), offset, mask, kernel.astype(self.dtype), bias, padding=1, deform_groups=dg
        )
        return y.astype(jnp.float32)


class _PerBranch(nn.Module):
    """A ModuleDict of the four branches: ``deform_align/<branch>`` or ``backbone/<branch>``."""

    kind: str  # "deform_align" or "backbone"
    features: int
    num_blocks: int
    max_residue_magnitude: float
    dtype: Any = jnp.float32

    def setup(self):
        for b in BRANCHES:
            if self.kind == "deform_align":
                m = SecondOrderDeformableAlignment(self.features, self.max_residue_magnitude, dtype=self.dtype)
            else:
                m = ConvResidualBlocks(self.features, self.num_blocks, self.dtype)
            setattr(self, b, m)

    def __call__(self, branch: str, *args):
        return getattr(self, branch)(*args)


def _branch_step(mdl, branch: str, carry, xs):
    """One frame of a propagation branch (the body of its scan): carry (step, p1, p2, last
    flow), xs (spatial + earlier branches' features of this frame, this frame's flow f1)."""
    step, p1, p2, flow_last = carry
    feats, f1 = xs
    first, second = step == 0, step == 1
    c = mdl.mid_channels
    f2 = jnp.where(second, 0.0, f1 + warp(flow_last, f1))
    cond = jnp.concatenate([warp(p1, f1), feats[..., :c], warp(p2, f2)], axis=-1)
    aligned = mdl.deform_align(branch, jnp.concatenate([p1, p2], axis=-1), cond, f1, f2)
    aligned = jnp.where(first, 0.0, aligned)
    out = aligned + mdl.backbone(branch, jnp.concatenate([feats, aligned], axis=-1)).astype(jnp.float32)
    return (step + 1, out, p1, f1), out


def _reconstruct(mdl, feat, frames):
    """(M, h, w, 5C) features and their (M, h, w, 3) LR frames -> (M, 4h, 4w, 3) (or the
    (M, 4h, 4w, 3) input frames themselves when not `is_low_res_input`)."""
    x = mdl.reconstruction(feat)
    x = _lrelu(layers.pixel_shuffle(mdl.upconv1(x), 2))
    x = _lrelu(layers.pixel_shuffle(mdl.upconv2(x), 2))
    x = mdl.conv_last(_lrelu(mdl.conv_hr(x))).astype(jnp.float32)
    if not mdl.is_low_res_input:
        return x + frames
    return x + resize_bilinear(frames, 4 * frames.shape[1], 4 * frames.shape[2], align_corners=False)


@register("basicvsrpp")
class BasicVSRPlusPlus(nn.Module):
    """MMagic's BasicVSRPlusPlusNet (see the module docstring).

    Attributes:
      scale: must be 4.
      mid_channels: channels of the features (64 as published); a multiple of 8.
      num_blocks: residual blocks per propagation branch (7 as published).
      max_residue_magnitude: bound of the learnt offsets around the flow (10 as published).
      is_low_res_input: True: ×4 SR (scale 4). False: same-size restoration (scale 1, MMagic's
        NTIRE 2021 decompression models): features from two stride-2 convs (``feat_extract_0``,
        ``feat_extract_2``, LeakyReLU after each, then ``feat_extract_4`` = the five residual
        blocks), flows on the frames shrunk ×1/4 by torch's bicubic (``scale_factor=0.25``),
        and the input itself as the base of the output; h and w must be multiples of 4.
      unroll: frames per iteration of the time loops (more: faster, longer compile;
        `stats` sets it to T to count FLOPs). Training on a CPU unrolls fully.
      dtype: compute dtype of the convolutions (and of the deformable conv's matmul); flows,
        warps, offsets, the carried features and the output are float32.

    Parameter names are the authors' after the importer's MMagic renames: ``spynet/…``,
    ``feat_extract/main_{0,2_i}``, ``deform_align/<branch>/{kernel,bias,conv_offset_{0,2,4,6}}``,
    ``backbone/<branch>/main_{0,2_i}``, ``reconstruction/…``, ``upconv1`` and ``upconv2``
    (MMagic's ``upsample{1,2}.upsample_conv``), ``conv_hr``, ``conv_last``.
    """

    flow_modules: ClassVar[tuple[str, ...]] = ("spynet",)  # the flow network's params (optimizers.make_optimizer)

    scale: int = 4
    mid_channels: int = 64
    num_blocks: int = 7
    max_residue_magnitude: float = 10.0
    is_low_res_input: bool = True
    unroll: int = 1
    dtype: Any = jnp.float32

    def setup(self):
        if self.mid_channels % (DEFORM_GROUPS // 2):
            raise ValueError(f"basicvsrpp: mid_channels must be a multiple of 8, got {self.mid_channels}")
        self.spynet = SpyNet(self.dtype)
        if self.is_low_res_input:
            self.feat_extract = ConvResidualBlocks(self.mid_channels, 5, self.dtype)
        else:
            strided = dict(strides=(2, 2), padding=((1, 1), (1, 1)), dtype=self.dtype, param_dtype=jnp.float32)
            self.feat_extract_0 = nn.Conv(self.mid_channels, (3, 3), **strided)
            self.feat_extract_2 = nn.Conv(self.mid_channels, (3, 3), **strided)
            self.feat_extract_4 = ConvResidualBlocks(self.mid_channels, 5, self.dtype)
        args = (self.mid_channels, self.num_blocks, float(self.max_residue_magnitude), self.dtype)
        self.deform_align = _PerBranch("deform_align", *args)
        self.backbone = _PerBranch("backbone", *args)
        self.reconstruction = ConvResidualBlocks(self.mid_channels, 5, self.dtype)
        self.upconv1 = layers.Conv(4 * self.mid_channels, 3, dtype=self.dtype)
        self.upconv2 = layers.Conv(4 * 64, 3, dtype=self.dtype)
        self.conv_hr = layers.Conv(64, 3, dtype=self.dtype)
        self.conv_last = layers.Conv(3, 3, dtype=self.dtype)

    def __call__(self, lr, train: bool = False):
        want = 4 if self.is_low_res_input else 1
        if self.scale != want:
            raise ValueError(
                f"basicvsrpp with is_low_res_input={self.is_low_res_input} has scale {want} (as the authors'), "
                f"got scale={self.scale!r}"
            )
        if lr.ndim != 5 or lr.shape[-1] != 3:
            raise ValueError(f"basicvsrpp expects clips (N, T, h, w, 3), got shape {lr.shape}")
        lr = lr.astype(jnp.float32)
        n, t, hi, wi, _ = lr.shape
        c = self.mid_channels
        frames = lr.reshape(n * t, hi, wi, 3)
        if self.is_low_res_input:
            small, spatial = lr, self.feat_extract(frames)
        else:
            if hi % 4 or wi % 4:
                raise ValueError(f"basicvsrpp with is_low_res_input=False needs h and w multiples of 4, got {hi}x{wi}")
            small = _bicubic_quarter(frames).reshape(n, t, hi // 4, wi // 4, 3)
            x = _lrelu(self.feat_extract_0(frames.astype(self.dtype)))
            spatial = self.feat_extract_4(_lrelu(self.feat_extract_2(x)))
        h, w = small.shape[2:4]
        spatial = spatial.astype(jnp.float32).reshape(n, t, h, w, c)

        zero_flow = jnp.zeros((n, 1, h, w, 2), jnp.float32)
        if t > 1:
            x1 = small[:, :-1].reshape(n * (t - 1), h, w, 3)
            x2 = small[:, 1:].reshape(n * (t - 1), h, w, 3)
            flows = self.spynet(jnp.concatenate([x1, x2]), jnp.concatenate([x2, x1]))
            # frame i's flow f1 in each pass (to the frame of the pass's previous step); the
            # first frame of a pass has none (a zero flow, unused: its alignment is dropped)
            flows_backward = jnp.concatenate([flows[: n * (t - 1)].reshape(n, t - 1, h, w, 2), zero_flow], axis=1)
            flows_forward = jnp.concatenate([zero_flow, flows[n * (t - 1) :].reshape(n, t - 1, h, w, 2)], axis=1)
        else:
            if self.is_initializing():
                self.spynet(small[:, 0], small[:, 0])  # creates SpyNet's params for a one-frame init
            flows_backward = flows_forward = zero_flow

        unroll = t if train and jax.default_backend() == "cpu" else self.unroll
        feats = spatial
        zeros = jnp.zeros((n, h, w, c), jnp.float32)
        for branch in BRANCHES:
            backward = branch.startswith("backward")
            loop = layers.scan_over_time(
                lambda mdl, carry, xs, b=branch: _branch_step(mdl, b, carry, xs), reverse=backward, unroll=unroll
            )
            carry = (jnp.zeros((), jnp.int32), zeros, zeros, zeros[..., :2])
            _, out = loop(self, carry, (feats, flows_backward if backward else flows_forward))
            feats = jnp.concatenate([feats, out], axis=-1)  # [spatial, backward_1, forward_1, …]

        if train:
            x = _reconstruct(self, feats.reshape(n * t, h, w, 5 * c), frames)
            return x.reshape(n, t, 4 * h, 4 * w, 3)
        loop = layers.scan_over_time(lambda mdl, carry, xs: (carry, _reconstruct(mdl, *xs)), unroll=unroll)
        return loop(self, None, (feats, lr))[1]
