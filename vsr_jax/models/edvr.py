"""EDVR, weight for weight as BasicSR 1.4.2's `EDVR` (`basicsr/archs/edvr_arch.py`).

Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks"
(CVPR workshops 2019). The computation of the authors' module, so their weight files
(``EDVR_M_x4_SR_REDS_official-32075921.pth``, ``EDVR_L_x4_SR_REDS_official-9f5f5039.pth``
etc.) load 1:1 through `vsr_jax.pretrained.convert` (parameter names are the authors'):

* per frame, features: ``conv_first`` (3×3) → LeakyReLU, or with ``with_predeblur`` the
  `PredeblurModule` (``predeblur``) → ``conv_1x1``; ``feature_extraction_{i}``
  (ResidualBlockNoBN); the pyramid L2 = LeakyReLU(``conv_l2_2``(LeakyReLU(``conv_l2_1``)))
  (the first conv of each level has stride 2, padding 1), L3 the same from L2;
* per output frame, on its window of ``num_frame`` frames: `PCDAlignment` (``pcd_align``)
  of every window frame's pyramid to the centre frame's, `TSAFusion` (``fusion``; without
  TSA ``fusion`` is a 1×1 conv of the aligned features concatenated frame after frame);
  ``reconstruction_{i}`` blocks; ``upconv1`` → pixel shuffle ×2 → LeakyReLU, ``upconv2``
  (to 256) → pixel shuffle ×2 → LeakyReLU, ``conv_hr`` → LeakyReLU, ``conv_last``; plus the
  centre frame upsampled ×4 bilinearly (``align_corners=False``). LeakyReLU slope 0.1.

The authors' network maps one window (N, num_frame, 3, h, w) to the centre frame's ×4
output; ours maps a clip (N, T, h, w, 3), any T ≥ 1, to all T frames (N, T, 4h, 4w, 3):
output frame i is EDVR on frame i's window as BasicSR's video test sets build it
(`frame_windows.gather_windows`: frames i − r … i + r, r = num_frame // 2, the clip ends
filled by ``padding``'s rule, ``reflection_circle`` for REDS, ``replicate`` for Vimeo-90K).
The per-frame features (everything before the PCD) are computed once for the T frames and
the windows gather them (the authors recompute them in every window: the same numbers).
In inference the alignment, fusion and reconstruction run one output frame after another
(an `nn.scan`: one frame's HR features alive at a time, a program that does not grow with
T); with ``train=True`` all windows in one batch.

The authors assert h and w are multiples of 4 (the pyramid's ×2 upsamplings must meet
the finer level). Other sizes are reflect-padded at the bottom and right up to the next
multiple of 4 (edge-padded when a side is too short to reflect) and the output cropped:
where the authors' network runs, no padding happens and the outputs are theirs.

Not ported: ``hr_in`` (HR input downsampled inside by strided convs, for deblurring; the
output is then the input's size, not ×4). BasicSR's `DCNv2Pack` logs a warning when the
mean absolute offset exceeds 50; ours computes the same output without that log.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import deform, frame_windows, layers, register
from vsr_jax.models.basicvsr import upsample_x4
from vsr_jax.models.msrresnet import ResidualBlockNoBN
from vsr_jax.models.spynet import resize_bilinear


def _lrelu(x):
    return nn.leaky_relu(x, 0.1)


def _up2(x):
    """``nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)`` of (N, h, w, C)."""
    return resize_bilinear(x, 2 * x.shape[1], 2 * x.shape[2], align_corners=False)


def _strided_conv(features: int, dtype, name: str) -> nn.Module:
    """torch's ``nn.Conv2d(c, features, 3, 2, 1)``: (N, h, w, C) -> (N, ⌈h/2⌉, ⌈w/2⌉, features)."""
    return nn.Conv(
        features, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), dtype=dtype, param_dtype=jnp.float32, name=name
    )


def _frames_to_channels(x):
    """(N, T, h, w, C) -> (N, h, w, T·C), frame after frame (torch's ``view(b, -1, h, w)`` of (b, t, c, h, w))."""
    n, t, h, w, c = x.shape
    return x.transpose(0, 2, 3, 1, 4).reshape(n, h, w, t * c)


class DCNv2Pack(nn.Module):
    """BasicSR's ``DCNv2Pack``: a 3×3 modulated deformable conv (padding 1) whose offsets and
    masks come from a second input. Called ``(x, feat)``: ``conv_offset`` (3×3, to
    3·deformable_groups·9 channels) of `feat` is split in three along its channels (in
    torch's order); the first two are the offsets, the third through a sigmoid the mask;
    then `deform.deform_conv2d` of `x` with ``kernel`` / ``bias``. (N, h, w, C) -> (N, h, w,
    features). Params: ``kernel`` (3, 3, C, features), ``bias``, ``conv_offset/{kernel,bias}``
    (zero-initialised, as the authors'). Without BasicSR's log warning for offsets > 50."""

    features: int
    deformable_groups: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, feat):
        dg, taps = self.deformable_groups, 9
        out = layers.Conv(
            3 * dg * taps,
            3,
            kernel_init=nn.initializers.zeros,
            dtype=self.dtype,
            name="conv_offset",
        )(feat).astype(jnp.float32)
        offset, mask = out[..., : 2 * dg * taps], nn.sigmoid(out[..., 2 * dg * taps :])
        kernel = self.param("kernel", nn.linear.default_kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return deform.deform_conv2d(
            x.astype(self.dtype),
            offset,
            mask,
            kernel.astype(self.dtype),
            bias,
            padding=1,
            deform_groups=dg,
        )


class _LevelConv(nn.Module):
    """torch's ``nn.ModuleDict`` of 3×3 convs keyed by pyramid level: called ``(level, x)``."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, level: str, x):
        return layers.Conv(self.features, 3, dtype=self.dtype, name=level)(x)


class _LevelDCN(nn.Module):
    """``nn.ModuleDict`` of `DCNv2Pack` keyed by pyramid level: called ``(level, x, feat)``."""

    features: int
    deformable_groups: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, level: str, x, feat):
        return DCNv2Pack(self.features, self.deformable_groups, self.dtype, name=level)(x, feat)


class PCDAlignment(nn.Module):
    """EDVR's Pyramid, Cascading and Deformable alignment: called ``(nbr_feat_l, ref_feat_l)``,
    two lists of three levels [L1 (N, h, w, C), L2 (h/2), L3 (h/4)], finest first ->
    the neighbour's L1 features aligned to the reference (N, h, w, num_feat).

    From L3 to L1: offset features from [nbr, ref] (``offset_conv1/l{i}``, then at L3
    ``offset_conv2/l3``, at L2/L1 ``offset_conv2/l{i}`` of [offset, upsampled offset] and
    ``offset_conv3/l{i}``), the DCN ``dcn_pack/l{i}`` of the neighbour, at L2/L1 fused with the
    upsampled coarser result (``feat_conv/l{i}``); LeakyReLU except on L1's feature; the
    offset features go up ×2 bilinearly (align_corners=False) and are doubled, the features
    go up ×2. Then the cascade: ``cas_offset_conv1/2`` of [feat, ref L1] and ``cas_dcnpack``.
    """

    num_feat: int = 64
    deformable_groups: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, nbr_feat_l, ref_feat_l):
        nf, dt = self.num_feat, self.dtype
        offset_conv1 = _LevelConv(nf, dt, name="offset_conv1")
        offset_conv2 = _LevelConv(nf, dt, name="offset_conv2")
        offset_conv3 = _LevelConv(nf, dt, name="offset_conv3")
        dcn_pack = _LevelDCN(nf, self.deformable_groups, dt, name="dcn_pack")
        feat_conv = _LevelConv(nf, dt, name="feat_conv")
        upsampled_offset = upsampled_feat = None
        for i in (3, 2, 1):
            level = f"l{i}"
            offset = _lrelu(offset_conv1(level, jnp.concatenate([nbr_feat_l[i - 1], ref_feat_l[i - 1]], axis=-1)))
            if i == 3:
                offset = _lrelu(offset_conv2(level, offset))
            else:
                offset = _lrelu(offset_conv2(level, jnp.concatenate([offset, upsampled_offset], axis=-1)))
                offset = _lrelu(offset_conv3(level, offset))
            feat = dcn_pack(level, nbr_feat_l[i - 1], offset)
            if i < 3:
                feat = feat_conv(level, jnp.concatenate([feat, upsampled_feat], axis=-1))
            if i > 1:
                feat = _lrelu(feat)
                upsampled_offset = _up2(offset) * 2  # the offsets' magnitude doubles with the size
                upsampled_feat = _up2(feat)
        offset = jnp.concatenate([feat, ref_feat_l[0]], axis=-1)
        offset = _lrelu(layers.Conv(nf, 3, dtype=dt, name="cas_offset_conv1")(offset))
        offset = _lrelu(layers.Conv(nf, 3, dtype=dt, name="cas_offset_conv2")(offset))
        return _lrelu(DCNv2Pack(nf, self.deformable_groups, dt, name="cas_dcnpack")(feat, offset))


def _max_pool(x):
    """``nn.MaxPool2d(3, stride=2, padding=1)`` (padding never wins: −inf)."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def _avg_pool(x):
    """``nn.AvgPool2d(3, stride=2, padding=1)`` (count_include_pad: always ÷ 9)."""
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)


class TSAFusion(nn.Module):
    """EDVR's Temporal and Spatial Attention fusion: called ``(aligned_feat)`` (N, T, h, w, C),
    T = num_frame, -> (N, h, w, num_feat); h and w even, their halves even.

    Temporal: each frame's ``temporal_attn2`` embedding · the centre frame's
    ``temporal_attn1`` embedding, summed over channels, through a sigmoid, weighs that
    frame. ``feat_fusion`` (1×1) of the weighted frames (concatenated frame after frame).
    Spatial: a two-level pyramid of max and average pools (3×3, stride 2, padding 1),
    ``spatial_attn{1..5}``, ``spatial_attn_l{1,2,3}``, ``spatial_attn_add{1,2}``, bilinear ×2
    upsamplings; out = feat · sigmoid(attn) · 2 + attn_add.
    """

    num_feat: int = 64
    num_frame: int = 5
    center_frame_idx: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, aligned_feat):
        n, t, h, w, c = aligned_feat.shape
        if t != self.num_frame:
            raise ValueError(f"TSAFusion: expected {self.num_frame} frames, got {t}")
        conv = lambda f, k, name: layers.Conv(f, k, dtype=self.dtype, name=name)  # noqa: E731
        nf = self.num_feat
        embedding_ref = conv(nf, 3, "temporal_attn1")(aligned_feat[:, self.center_frame_idx])
        embedding = conv(nf, 3, "temporal_attn2")(aligned_feat.reshape(n * t, h, w, c)).reshape(n, t, h, w, nf)
        corr = jnp.sum(
            embedding.astype(jnp.float32) * embedding_ref.astype(jnp.float32)[:, None], axis=-1, keepdims=True
        )
        weighted = _frames_to_channels(aligned_feat * nn.sigmoid(corr).astype(aligned_feat.dtype))

        feat = _lrelu(conv(nf, 1, "feat_fusion")(weighted))
        attn = _lrelu(conv(nf, 1, "spatial_attn1")(weighted))
        attn = _lrelu(conv(nf, 1, "spatial_attn2")(jnp.concatenate([_max_pool(attn), _avg_pool(attn)], axis=-1)))
        attn_level = _lrelu(conv(nf, 1, "spatial_attn_l1")(attn))
        pooled = jnp.concatenate([_max_pool(attn_level), _avg_pool(attn_level)], axis=-1)
        attn_level = _lrelu(conv(nf, 3, "spatial_attn_l2")(pooled))
        attn_level = _up2(_lrelu(conv(nf, 3, "spatial_attn_l3")(attn_level)))
        attn = _lrelu(conv(nf, 3, "spatial_attn3")(attn)) + attn_level
        attn = _up2(_lrelu(conv(nf, 1, "spatial_attn4")(attn)))
        attn = conv(nf, 3, "spatial_attn5")(attn)
        attn_add = conv(nf, 1, "spatial_attn_add2")(_lrelu(conv(nf, 1, "spatial_attn_add1")(attn)))
        return feat * nn.sigmoid(attn) * 2 + attn_add


class PredeblurModule(nn.Module):
    """EDVR's pre-deblurring module (``with_predeblur``; ``hr_in`` False): (N, h, w, 3) ->
    (N, h, w, num_feat), h and w multiples of 4. ``conv_first`` → LeakyReLU; L2, L3 by
    ``stride_conv_l2`` / ``stride_conv_l3`` (stride 2) → LeakyReLU; ``resblock_l3`` up ×2 added
    to ``resblock_l2_1``(L2), through ``resblock_l2_2`` up ×2, added to L1 after
    ``resblock_l1_0``/``_1``; then ``resblock_l1_2``…``_4``."""

    num_feat: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        nf, dt = self.num_feat, self.dtype
        block = lambda name: ResidualBlockNoBN(nf, dtype=dt, name=name)  # noqa: E731
        feat_l1 = _lrelu(layers.Conv(nf, 3, dtype=dt, name="conv_first")(x))
        feat_l2 = _lrelu(_strided_conv(nf, dt, "stride_conv_l2")(feat_l1))
        feat_l3 = _lrelu(_strided_conv(nf, dt, "stride_conv_l3")(feat_l2))
        feat_l3 = _up2(block("resblock_l3")(feat_l3))
        feat_l2 = block("resblock_l2_1")(feat_l2) + feat_l3
        feat_l2 = _up2(block("resblock_l2_2")(feat_l2))
        for i in range(2):
            feat_l1 = block(f"resblock_l1_{i}")(feat_l1)
        feat_l1 = feat_l1 + feat_l2
        for i in range(2, 5):
            feat_l1 = block(f"resblock_l1_{i}")(feat_l1)
        return feat_l1


def _restore(mdl: EDVR, l1, l2, l3, center):
    """One window per batch row (params of `mdl`): the window's pyramid features
    (M, num_frame, h, w, C), (…, h/2, …), (…, h/4, …) and its centre LR frame (M, h, w, 3)
    -> the centre frame ×4 (M, 4h, 4w, 3), float32."""
    m, nfr = l1.shape[:2]
    c = mdl.center_index
    flat = lambda f: f.reshape((m * nfr,) + f.shape[2:])  # noqa: E731
    ref = [jnp.repeat(f[:, c], nfr, axis=0) for f in (l1, l2, l3)]
    pcd = PCDAlignment(mdl.num_feat, mdl.deformable_groups, mdl.dtype, parent=mdl, name="pcd_align")
    aligned = pcd([flat(l1), flat(l2), flat(l3)], ref).reshape(l1.shape[:-1] + (mdl.num_feat,))
    if mdl.with_tsa:
        feat = TSAFusion(mdl.num_feat, mdl.num_frame, c, mdl.dtype, parent=mdl, name="fusion")(aligned)
    else:
        feat = layers.Conv(mdl.num_feat, 1, dtype=mdl.dtype, parent=mdl, name="fusion")(_frames_to_channels(aligned))
    x = feat
    for i in range(mdl.num_reconstruct_block):
        x = ResidualBlockNoBN(mdl.num_feat, dtype=mdl.dtype, parent=mdl, name=f"reconstruction_{i}")(x)
    return upsample_x4(mdl, x, center)


@register("edvr")
class EDVR(nn.Module):
    """BasicSR's EDVR (see the module docstring).

    Attributes:
      scale: must be 4 (as the authors').
      num_feat: channels (M: 64, L: 128 in the published files).
      num_frame: frames per window, odd (5 for REDS, 7 for Vimeo-90K).
      deformable_groups: DCN offset groups (8 as published).
      num_extract_block / num_reconstruct_block: residual blocks before the pyramid / after
        the fusion (5 / 10 for M, 5 / 40 for L).
      center_frame_idx: the reference frame's place in the window (None: num_frame // 2;
        output frame i is restored from the window centred on i whatever this is).
      with_tsa: TSA fusion (True) or a 1×1 conv fusion.
      with_predeblur: the pre-deblurring module instead of ``conv_first`` (the SRblur files).
      padding: how windows are filled at the clip ends (`frame_windows.PADDINGS`).
      dtype: compute dtype of the convolutions; DCN sampling and the output are float32.
    """

    scale: int = 4
    num_feat: int = 64
    num_frame: int = 5
    deformable_groups: int = 8
    num_extract_block: int = 5
    num_reconstruct_block: int = 10
    center_frame_idx: int | None = None
    with_tsa: bool = True
    with_predeblur: bool = False
    padding: str = "reflection_circle"
    dtype: Any = jnp.float32

    @property
    def temporal_radius(self) -> int:
        """r: output frame i reads input frames i − r … i + r. Within r frames of the clip's
        first / last frame the `padding` rule replaces the missing ones by frames of the clip
        up to 2r away (``reflection_circle``: frame 0 reads frames 4, 3, 0, 1, 2 for r = 2), so
        a stream cut into chunks is exact when each chunk holds r frames of context on either
        side, its outputs there are dropped, and only the video's real ends are clip ends."""
        return self.num_frame // 2

    @property
    def center_index(self) -> int:
        return self.num_frame // 2 if self.center_frame_idx is None else self.center_frame_idx

    def _features(self, x):
        """(M, h, w, 3), h and w multiples of 4 -> the pyramid (L1, L2, L3) of each frame."""
        nf, dt = self.num_feat, self.dtype
        if self.with_predeblur:
            feat = PredeblurModule(nf, dt, name="predeblur")(x)
            feat = layers.Conv(nf, 1, dtype=dt, name="conv_1x1")(feat)
        else:
            feat = _lrelu(layers.Conv(nf, 3, dtype=dt, name="conv_first")(x))
        for i in range(self.num_extract_block):
            feat = ResidualBlockNoBN(nf, dtype=dt, name=f"feature_extraction_{i}")(feat)
        l2 = _lrelu(_strided_conv(nf, dt, "conv_l2_1")(feat))
        l2 = _lrelu(layers.Conv(nf, 3, dtype=dt, name="conv_l2_2")(l2))
        l3 = _lrelu(_strided_conv(nf, dt, "conv_l3_1")(l2))
        l3 = _lrelu(layers.Conv(nf, 3, dtype=dt, name="conv_l3_2")(l3))
        return feat, l2, l3

    # `output_frames`: the trainer's centre-frame loss asks for the middle frame only
    accepts_output_frames: ClassVar[bool] = True

    @nn.compact
    def __call__(self, lr, train: bool = False, output_frames: tuple[int, ...] | None = None):
        """lr (N, T, h, w, 3) -> (N, T, 4h, 4w, 3); with `output_frames` (static indices into
        T) only those frames' windows are restored: (N, len(output_frames), 4h, 4w, 3)."""
        if self.scale != 4:
            raise ValueError(f"edvr supports only scale 4 (as the authors'), got scale={self.scale!r}")
        if lr.ndim != 5 or lr.shape[-1] != 3:
            raise ValueError(f"edvr expects LR clips (N, T, h, w, 3), got shape {lr.shape}")
        if self.num_frame % 2 != 1 or not 0 <= self.center_index < self.num_frame:
            raise ValueError(
                f"edvr: num_frame must be odd and center_frame_idx in [0, num_frame), got "
                f"num_frame={self.num_frame}, center_frame_idx={self.center_frame_idx}"
            )
        n, t, h, w, _ = lr.shape
        frames, _ = layers.pad_to_multiple(lr.astype(jnp.float32).reshape(n * t, h, w, 3), 4)
        hp, wp = frames.shape[1:3]
        pyramid = [f.reshape((n, t) + f.shape[1:]) for f in self._features(frames)]
        frames = frames.reshape(n, t, hp, wp, 3)
        index = frame_windows.window_indices(t, self.num_frame, self.padding)  # (T, num_frame), static
        if output_frames is not None:
            if not all(0 <= i < t for i in output_frames):
                raise ValueError(f"edvr: output_frames {output_frames} are not frames of a {t}-frame clip")
            index = index[list(output_frames)]
        centers = index[:, self.center_index]
        t_out = index.shape[0]

        if train:
            # all T windows in one batch (fewer, larger operations for the backward pass)
            windows = [
                jnp.take(f, index, axis=1).reshape((n * t_out,) + index.shape[1:] + f.shape[2:]) for f in pyramid
            ]
            center = jnp.take(frames, centers, axis=1).reshape(n * t_out, hp, wp, 3)
            out = _restore(self, *windows, center).reshape(n, t_out, 4 * hp, 4 * wp, 3)
        else:
            # one output frame after another: the features stay in the carry, each step
            # gathers its window (only one frame's HR features are alive at a time)
            def step(mdl, carry, xs):
                idx, ctr = xs  # (1, num_frame), (1,)
                windows = [jnp.take(f, idx[0], axis=1) for f in carry[:3]]
                return carry, _restore(mdl, *windows, jnp.take(carry[3], ctr[0], axis=1))

            loop = layers.scan_over_time(step)
            xs = (jnp.asarray(index)[None], jnp.asarray(centers)[None])
            out = loop(self, (*pyramid, frames), xs)[1]
        return out[:, :, : 4 * h, : 4 * w]
