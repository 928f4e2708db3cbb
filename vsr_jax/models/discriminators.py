"""GAN discriminators for perceptual SR / VSR training (not generators: not in the model registry).

* ``"vgg"`` — `VGGStyleDiscriminator`, SRGAN's (Ledig et al. 2017) / ESRGAN's (Wang et
  al. 2018) VGG-style image classifier: real-vs-fake logit per frame.
* ``"patch"`` — `PatchDiscriminator`, pix2pix's 70×70 PatchGAN (Isola et al. 2017):
  a logit per overlapping patch.
* ``"spatio_temporal"`` — `SpatioTemporalDiscriminator`, after TecoGAN's D_s,t (Chu et
  al. 2020): a patch discriminator over frame triplets stacked along channels, optionally
  conditioned on the upsampled LR clip; `triplet_flows` and `motion_compensate` build its
  motion-compensated input from the generator's flows (used by `adversarial.Critic`).

Every discriminator is called as ``d.apply(variables, x, cond=None, train=False)`` and
returns float32 logits (apply a sigmoid / `optax.sigmoid_binary_cross_entropy` outside).
``dtype`` is the compute dtype; parameters stay float32. No normalisation layers: the
published BN (SRGAN/ESRGAN/TecoGAN) and BN/InstanceNorm (pix2pix) are replaced by no
normalisation with LeakyReLU(0.2) activations, so a discriminator has no mutable state
and its output for one sample does not depend on the rest of the batch. (No spectral
norm either; add it in the training code if the GAN needs it.)

4×4 stride-2 convs pad by 1 on each side as the PyTorch originals do, so each maps a
side n to floor(n/2) and a 4×4 stride-1 conv maps n to n − 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vsr_jax.models import compute_dtype, warp

_PAD1 = ((1, 1), (1, 1))


def _no_cond(cond, name: str):
    if cond is not None:
        raise ValueError(f"{name}: cond is only supported by spatio_temporal")


def _conv_out_side(n: int, strides, final_kernel: int) -> int:
    """Side after 4×4 pad-1 convs with `strides` and a final stride-1 conv (4×4 pad 1 or 3×3 'SAME')."""
    for s in strides:
        n = n // 2 if s == 2 else n - 1
    return n - 1 if final_kernel == 4 else n


def _triplets(x):
    """(N, T, H, W, C) -> (N·T/3, H, W, 3C): frames 3k, 3k+1, 3k+2 side by side along channels."""
    n, t, h, w, c = x.shape
    x = x.reshape(n, t // 3, 3, h, w, c).transpose(0, 1, 3, 4, 2, 5)
    return x.reshape(n * (t // 3), h, w, 3 * c)


def _flatten_frames(x, name: str):
    """(N, H, W, C) or (N, T, H, W, C) -> ((B, H, W, C), leading shape (N,) or (N, T))."""
    if x.ndim not in (4, 5):
        raise ValueError(f"{name}: expected frames (N,H,W,C) or (N,T,H,W,C), got shape {x.shape}")
    lead = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), lead


class VGGStyleDiscriminator(nn.Module):
    """SRGAN/ESRGAN VGG-style discriminator, with global average pooling.

    Five blocks, one per width in ``features`` (64, 128, 256, 512, 512 as ESRGAN's
    VGGStyleDiscriminator128): 3×3 stride-1 conv + LeakyReLU, 4×4 stride-2 conv +
    LeakyReLU. Then global average pooling, Dense(``dense_features``=100) + LeakyReLU,
    Dense(1). ESRGAN flattens a fixed 4×4×512 map (so it only takes 128×128 inputs);
    pooling makes any frame size ≥ 2^len(features) = 32 work.

    Shapes: (N, H, W, C) -> (N,) or (N, T, H, W, C) -> (N, T) (frames are independent
    samples), float32 logits.
    """

    features: Sequence[int] = (64, 128, 256, 512, 512)
    dense_features: int = 100
    negative_slope: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond=None, train: bool = False):
        del train  # no dropout / normalisation
        _no_cond(cond, "vgg")
        y, lead = _flatten_frames(x, "vgg")
        if min(y.shape[1:3]) < 2 ** len(self.features):
            raise ValueError(f"vgg: frames must be at least {2 ** len(self.features)} pixels a side, got {x.shape}")
        act = lambda v: nn.leaky_relu(v, self.negative_slope)
        y = y.astype(self.dtype)
        for i, f in enumerate(self.features):
            y = act(nn.Conv(f, (3, 3), dtype=self.dtype, name=f"conv{i}_0")(y))
            y = act(nn.Conv(f, (4, 4), strides=(2, 2), padding=_PAD1, dtype=self.dtype, name=f"conv{i}_1")(y))
        y = jnp.mean(y.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        y = act(nn.Dense(self.dense_features, dtype=self.dtype, name="linear0")(y))
        y = nn.Dense(1, dtype=self.dtype, name="linear1")(y)
        return y[:, 0].astype(jnp.float32).reshape(lead)


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN (NLayerDiscriminator, n_layers=3: 70×70 receptive field).

    4×4 convs with LeakyReLU: stride 2 for each width in ``features[:-1]`` (64, 128,
    256), stride 1 for ``features[-1]`` (512), then a 4×4 stride-1 conv to 1 channel.
    A 256×256 frame gives 30×30 logits; in general h' = floor(floor(floor(H/2)/2)/2) − 2
    for the default depth, so frames need H, W ≥ 24.

    Shapes: (N, H, W, C) -> (N, h', w', 1) or (N, T, H, W, C) -> (N, T, h', w', 1),
    float32 logits.
    """

    features: Sequence[int] = (64, 128, 256, 512)
    negative_slope: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond=None, train: bool = False):
        del train  # no dropout / normalisation
        _no_cond(cond, "patch")
        y, lead = _flatten_frames(x, "patch")
        strides = [2] * (len(self.features) - 1) + [1]
        if _conv_out_side(min(y.shape[1:3]), strides, final_kernel=4) < 1:
            raise ValueError(f"patch: frames of shape {x.shape} are too small (no patch left)")
        y = y.astype(self.dtype)
        for i, f in enumerate(self.features):
            stride = 1 if i == len(self.features) - 1 else 2
            conv = nn.Conv(f, (4, 4), strides=(stride, stride), padding=_PAD1, dtype=self.dtype, name=f"conv{i}")
            y = nn.leaky_relu(conv(y), self.negative_slope)
        y = nn.Conv(1, (4, 4), padding=_PAD1, dtype=self.dtype, name="conv_out")(y)
        return y.astype(jnp.float32).reshape(lead + y.shape[1:])


class SpatioTemporalDiscriminator(nn.Module):
    """TecoGAN-style spatio-temporal discriminator D_s,t over frame triplets.

    The clip (N, T, H, W, C), T a multiple of 3, is cut into T/3 non-overlapping triplets
    (frames 0-2, 3-5, …); each triplet's frames are concatenated along channels (3C = 9
    channels), and with ``cond`` (same shape as the frames: the bicubic-upsampled LR
    clip, which TecoGAN conditions on) the matching cond triplet too (18 channels). Then
    4×4 stride-2 convs (``features`` = 64, 64, 128, 256) with LeakyReLU and a 3×3 conv to
    1 channel: per-patch logits, h' = floor(H/16) (frames need H, W ≥ 16). TecoGAN ends
    with a dense layer on the flattened map instead (one logit per triplet, fixed input
    size); the patch head takes any frame size (average the per-patch losses).

    TecoGAN also motion-compensates each triplet: it warps the outer frames onto the
    middle one with the generator's estimated flow, and feeds the unwarped triplet as well.
    This module only sees frames: the GAN training code (`adversarial.Critic`) warps first
    (`triplet_flows`, `motion_compensate`) and passes the warped clip as ``x`` and the
    unwarped clip with the upsampled LR as ``cond`` (27 channels per triplet).

    With ``return_features`` it also returns the activations after each stride-2 conv (its
    LeakyReLU), TecoGAN's layers for its feature-matching "layer loss"
    (`losses.feature_matching`).

    Shapes: x (N, T, H, W, C), cond None or (N, T, H, W, C') with the same N, T, H, W
    -> (N, T//3, h', w', 1), float32 logits; with ``return_features``, (logits, [one
    (N·T/3, H/2^i, W/2^i, features[i-1]) array per conv, i = 1 … len(features)]).
    """

    features: Sequence[int] = (64, 64, 128, 256)
    negative_slope: float = 0.2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, cond=None, train: bool = False, return_features: bool = False):
        del train  # no dropout / normalisation
        if x.ndim != 5:
            raise ValueError(f"spatio_temporal: expected a clip (N,T,H,W,C), got shape {x.shape}")
        n, t, h, w, _ = x.shape
        if t % 3:
            raise ValueError(f"spatio_temporal: T must be a multiple of 3 (frame triplets), got T={t}")
        if _conv_out_side(min(h, w), [2] * len(self.features), final_kernel=3) < 1:
            raise ValueError(f"spatio_temporal: frames of {h}×{w} are too small (no patch left)")
        y = _triplets(x)
        if cond is not None:
            if cond.ndim != 5 or cond.shape[:4] != x.shape[:4]:
                raise ValueError(f"spatio_temporal: cond shape {cond.shape} does not match frames {x.shape}")
            y = jnp.concatenate([y, _triplets(cond.astype(x.dtype))], axis=-1)
        y = y.astype(self.dtype)
        features = []
        for i, f in enumerate(self.features):
            conv = nn.Conv(f, (4, 4), strides=(2, 2), padding=_PAD1, dtype=self.dtype, name=f"conv{i}")
            y = nn.leaky_relu(conv(y), self.negative_slope)
            features.append(y)
        y = nn.Conv(1, (3, 3), dtype=self.dtype, name="conv_out")(y)
        logits = y.astype(jnp.float32).reshape((n, t // 3) + y.shape[1:])
        return (logits, features) if return_features else logits


# ------------------------------------------------------------------ D_s,t's motion compensation


def triplet_flows(to_prev, to_next, scale: int):
    """TecoGAN's D_s,t motion: the HR flows (N, 3K, H, W, 2), K = ⌊T/3⌋, that warp every frame
    of triplet k (frames 3k, 3k+1, 3k+2) onto its middle frame 3k+1.

    to_prev, to_next: the generator's LR flows (N, T, h, w, 2); ``to_prev[:, t]`` warps frame
    t−1 onto frame t, ``to_next[:, t]`` frame t+1 onto frame t (`warp.warp(frame, flow)`, the
    convention of `flow_to_prev`). Frame 3k gets ``to_prev[:, 3k+1]``, the middle frame a
    zero flow, frame 3k+2 ``to_next[:, 3k+1]``; each upscaled as the generator upscales its
    flows (`warp.flow_to_hr`: bilinear, values × scale; TecoGAN's `upscale_four(flow·4)`).
    """
    n, t, h, w, _ = to_prev.shape
    mid = slice(1, 3 * (t // 3), 3)
    prev, nxt = to_prev[:, mid], to_next[:, mid]
    lr_flows = jnp.stack([prev, jnp.zeros_like(prev), nxt], axis=2).reshape(n, -1, h, w, 2)
    hr = warp.flow_to_hr(lr_flows.reshape((-1, h, w, 2)), scale)
    return hr.reshape((n, -1) + hr.shape[1:])


def motion_compensate(frames, flows=None, keep: float = 1.0):
    """Every frame of a clip warped with its flow: (N, T, H, W, C), (N, T, H, W, 2) or None -> (N, T, H, W, C).

    `warp.warp` with border padding, as the generator warps its previous output (TecoGAN's
    `dense_image_warp` also clamps to the border); ``flows=None`` is a zero flow (the frames
    themselves). With ``keep`` < 1 only the centre keeps its pixels and a border of
    ⌊(H − ⌊H·keep⌋)/2⌋ rows (columns likewise) is zero: TecoGAN's `crop_dt` (crop, then pad with
    zeros), which hides the edge where warping pulls in pixels from outside the patch.
    """
    n, t, h, w, c = frames.shape
    out = frames
    if flows is not None:
        flat = lambda a: a.reshape((n * t,) + a.shape[2:])  # noqa: E731
        out = warp.warp(flat(frames), flat(flows), padding_mode="border").reshape(frames.shape)
    if keep < 1.0:
        oy, ox = (h - int(h * keep)) // 2, (w - int(w * keep)) // 2
        inside = np.zeros((h, w, 1), np.float32)
        inside[oy : h - oy, ox : w - ox] = 1.0
        out = out * jnp.asarray(inside, out.dtype)
    return out


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "vgg": VGGStyleDiscriminator,
    "patch": PatchDiscriminator,
    "spatio_temporal": SpatioTemporalDiscriminator,
}


def create_discriminator(name: str, **kwargs) -> nn.Module:
    """Builds discriminator `name` with its fields `kwargs`; ``dtype`` may be a name ("bfloat16")."""
    if name not in DISCRIMINATORS:
        raise KeyError(f"unknown discriminator {name!r}; available: {', '.join(sorted(DISCRIMINATORS))}")
    cls = DISCRIMINATORS[name]
    if "dtype" in kwargs:
        kwargs["dtype"] = compute_dtype(kwargs["dtype"])
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise TypeError(f"discriminator {name!r} has no option(s) {unknown}; its options are {sorted(fields)}")
    return cls(**kwargs)
