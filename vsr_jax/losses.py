"""Losses: pixel (on SR/HR frames (..., H, W, C) in [0,1]), perceptual feature distances,
adversarial (on discriminator logits) and temporal. Each returns a scalar."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vsr_jax.models import warp


def mse(sr, hr):
    return jnp.mean(jnp.square(sr - hr))


def l1(sr, hr):
    return jnp.mean(jnp.abs(sr - hr))


def charbonnier(sr, hr, eps: float = 1e-3):
    """sqrt((sr − hr)² + eps²), the robust L1 of LapSRN/EDVR/BasicVSR."""
    return jnp.mean(jnp.sqrt(jnp.square(sr - hr) + eps * eps))


PIXEL_LOSSES = {"mse": mse, "l1": l1, "charbonnier": charbonnier}


def pixel_loss(loss_config):
    """The configured pixel loss as a function (sr, hr) -> scalar."""
    name = loss_config.pixel
    if name not in PIXEL_LOSSES:
        raise ValueError(f"unknown loss.pixel {name!r}; available: {', '.join(PIXEL_LOSSES)}")
    if name == "charbonnier":
        eps = float(loss_config.charbonnier_eps)
        return lambda sr, hr: charbonnier(sr, hr, eps)
    return PIXEL_LOSSES[name]


# ------------------------------------------------------------------ feature distances


def feature_distance(feats_sr: dict, feats_hr: dict, weights: dict, criterion: str = "l1"):
    """Σ_layer weight · criterion(φ_layer(SR), φ_layer(HR)): the perceptual loss of
    SRGAN/ESRGAN given feature dicts {layer: (N, h, w, C)} (see models.vgg)."""
    dist = {"l1": l1, "mse": mse, "charbonnier": charbonnier}.get(criterion)
    if dist is None:
        raise ValueError(f"unknown perceptual criterion {criterion!r}; use l1, mse or charbonnier")
    return sum(float(w) * dist(feats_sr[k], feats_hr[k]) for k, w in weights.items())


# ------------------------------------------------------------------ adversarial losses
# Logits are raw discriminator outputs of any shape (per image, per patch); every loss is a
# mean over all of them. `d_loss` is minimised by the discriminator, `g_loss` by the generator.

GAN_LOSSES = ("vanilla", "lsgan", "hinge", "ragan")


def _bce(logits, target: float):
    """Binary cross-entropy of sigmoid(logits) against a constant target, stable."""
    return jnp.mean(jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def _check(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; available: {', '.join(GAN_LOSSES)}")


def d_loss(kind: str, real, fake):
    """Discriminator loss on logits of real (HR) and fake (SR) inputs.

    vanilla: BCE(real, 1) + BCE(fake, 0); lsgan: (real−1)² + fake²; hinge: relu(1−real) +
    relu(1+fake); ragan (ESRGAN's relativistic average): [BCE(real − E fake, 1) +
    BCE(fake − E real, 0)] / 2.
    """
    _check(kind)
    if kind == "vanilla":
        return _bce(real, 1.0) + _bce(fake, 0.0)
    if kind == "lsgan":
        return jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    return 0.5 * (_bce(real - jnp.mean(fake), 1.0) + _bce(fake - jnp.mean(real), 0.0))


def g_loss(kind: str, real, fake):
    """Generator's adversarial loss (non-saturating for vanilla). `real` is used by ragan only.

    vanilla: BCE(fake, 1); lsgan: (fake−1)²; hinge: −fake; ragan: [BCE(real − E fake, 0) +
    BCE(fake − E real, 1)] / 2.
    """
    _check(kind)
    if kind == "vanilla":
        return _bce(fake, 1.0)
    if kind == "lsgan":
        return jnp.mean(jnp.square(fake - 1.0))
    if kind == "hinge":
        return -jnp.mean(fake)
    return 0.5 * (_bce(real - jnp.mean(fake), 0.0) + _bce(fake - jnp.mean(real), 1.0))


# TecoGAN's layer loss (Chu et al. 2020; code: thunil/TecoGAN lib/Teco.py, `D_LAYERLOSS`): each
# layer's L1 is divided by a hand-set average size (layer_norm) and scaled to Fix_Range = 0.02.
TECOGAN_LAYER_WEIGHTS = tuple(0.02 / norm for norm in (12.0, 14.0, 24.0, 100.0))


def feature_matching(feats_real, feats_fake, weights):
    """TecoGAN's discriminator "layer loss": Σ_i weights[i] · mean over (batch, y, x) of
    Σ_channels |φ_i(real) − φ_i(fake)|, φ_i the discriminator's i-th layer's activations
    (N, h, w, C). A generator term; stop the gradient of `feats_real` outside."""
    if len(weights) != len(feats_real) or len(feats_real) != len(feats_fake):
        raise ValueError(f"feature_matching: {len(weights)} weights for {len(feats_real)}/{len(feats_fake)} layers")
    total = jnp.zeros((), jnp.float32)
    for w, a, b in zip(weights, feats_real, feats_fake, strict=True):
        diff = jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))
        total = total + float(w) * jnp.mean(jnp.sum(diff, axis=-1))
    return total


def r1_penalty(d_apply, real):
    """R1 (Mescheder et al., 2018): E ||∇ₓ D(x)||² over real inputs, per example summed over
    the input's dimensions then averaged; weight it by γ/2. `d_apply`: inputs -> logits."""
    grads = jax.grad(lambda x: jnp.sum(d_apply(x)))(real)
    return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1))


# ------------------------------------------------------------------ temporal losses


def pingpong_sequence(lr):
    """TecoGAN's ping-pong input: (N, T, ...) -> (N, 2T−1, ...) = frames 0..T−1..0."""
    return jnp.concatenate([lr, jnp.flip(lr[:, :-1], axis=1)], axis=1)


def pingpong_loss(sr_pingpong):
    """TecoGAN's ping-pong loss on the output of `pingpong_sequence` input (N, 2T−1, H, W, C):
    mean |SR_t(forward pass) − SR_t(backward pass)| over t < T−1. Zero when the generator's
    output for a frame does not depend on the direction the clip was played in."""
    t = (sr_pingpong.shape[1] + 1) // 2
    forward, backward = sr_pingpong[:, : t - 1], jnp.flip(sr_pingpong[:, t:], axis=1)
    return l1(forward, backward)


def temporal_consistency(sr, hr, flow_to_prev):
    """Warped-difference loss: mean |(SR_t − W(SR_{t−1})) − (HR_t − W(HR_{t−1}))| for t ≥ 1,
    where W warps frame t−1 onto frame t with the HR flow `flow_to_prev` (N, T, H, W, 2)
    (entry t maps frame t to t−1). Penalises flicker the ground truth does not have."""
    n, t = sr.shape[:2]
    flow = flow_to_prev[:, 1:].reshape((-1,) + flow_to_prev.shape[2:])

    def change(x):
        prev = warp.warp(x[:, :-1].reshape((-1,) + x.shape[2:]), flow, padding_mode="border")
        return x[:, 1:] - prev.reshape((n, t - 1) + x.shape[2:])

    return l1(change(sr), change(hr))


def clip_flows_to_hr(flow_to_prev, scale: int):
    """LR flows of a clip (N, T, h, w, 2) -> HR flows (N, T, h·s, w·s, 2) (`warp.flow_to_hr`)."""
    n, t = flow_to_prev.shape[:2]
    hr = warp.flow_to_hr(flow_to_prev.reshape((n * t,) + flow_to_prev.shape[2:]), scale)
    return hr.reshape((n, t) + hr.shape[1:])


def flow_warp_loss(lr, flow_to_prev):
    """FRVSR's flow loss: mean (LR_t − W(LR_{t−1}))² for t ≥ 1, W warping with the model's LR
    flow `flow_to_prev` (N, T, h, w, 2) (entry t maps frame t to t−1); lr (N, T, h, w, C).
    Trains the flow network to align neighbours, beyond what the SR loss asks of it."""
    n, t = lr.shape[:2]
    flow = flow_to_prev[:, 1:].reshape((-1,) + flow_to_prev.shape[2:])
    prev = warp.warp(lr[:, :-1].reshape((-1,) + lr.shape[2:]), flow, padding_mode="border")
    return mse(prev.reshape((n, t - 1) + lr.shape[2:]), lr[:, 1:])
