"""Losses against hand-computed values and their sign behaviour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax import losses


def test_pixel_losses_hand_computed():
    sr, hr = jnp.array([0.0, 0.5, 1.0]), jnp.array([0.1, 0.5, 0.7])
    assert float(losses.mse(sr, hr)) == pytest.approx((0.01 + 0 + 0.09) / 3)
    assert float(losses.l1(sr, hr)) == pytest.approx(0.4 / 3)
    expected = (math.sqrt(0.01 + 1e-6) + 1e-3 + math.sqrt(0.09 + 1e-6)) / 3
    assert float(losses.charbonnier(sr, hr, 1e-3)) == pytest.approx(expected, rel=1e-6)


def test_feature_distance_weights_layers():
    a = {"conv1": jnp.ones((1, 2, 2, 1)), "conv2": jnp.zeros((1, 1, 1, 4))}
    b = {"conv1": jnp.zeros((1, 2, 2, 1)), "conv2": jnp.full((1, 1, 1, 4), 0.5)}
    assert float(losses.feature_distance(a, b, {"conv1": 0.1, "conv2": 1.0})) == pytest.approx(0.1 + 0.5)
    assert float(losses.feature_distance(a, b, {"conv2": 2.0}, "mse")) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="criterion"):
        losses.feature_distance(a, b, {"conv1": 1.0}, "cosine")


def softplus(x):
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    "kind, real, fake, d_expected, g_expected",
    [
        ("vanilla", [2.0], [-1.0], softplus(-2.0) + softplus(-1.0), softplus(1.0)),
        ("lsgan", [0.5, 1.5], [0.2], 0.25 + 0.04, 0.64),
        ("hinge", [0.5, 2.0], [-0.5, 0.5], 0.25 + 1.0, 0.0),
        ("ragan", [1.0], [0.0], softplus(-1.0), softplus(1.0)),
    ],
)
def test_gan_losses_hand_computed(kind, real, fake, d_expected, g_expected):
    real, fake = jnp.array(real), jnp.array(fake)
    assert float(losses.d_loss(kind, real, fake)) == pytest.approx(d_expected, rel=1e-5)
    assert float(losses.g_loss(kind, real, fake)) == pytest.approx(g_expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("kind", losses.GAN_LOSSES)
def test_gan_losses_have_the_right_signs(kind):
    real = jnp.array([0.3, -0.2, 0.5])
    fake = jnp.array([0.4, 0.2, 0.6])  # (LSGAN's targets are 1 and 0: stay between them)
    d = lambda r, f: float(losses.d_loss(kind, r, f))  # noqa: E731
    g = lambda r, f: float(losses.g_loss(kind, r, f))  # noqa: E731
    # a discriminator that tells them apart better has a lower loss
    assert d(real + 0.2, fake - 0.2) < d(real, fake)
    # a generator whose fakes look more real to D has a lower loss
    assert g(real, fake + 0.2) < g(real, fake)
    # the D gradient pushes real logits up and fake logits down
    gr, gf = jax.grad(lambda r, f: losses.d_loss(kind, r, f), argnums=(0, 1))(real, fake)
    assert float(jnp.sum(gr)) < 0 < float(jnp.sum(gf))
    if kind == "hinge":  # zero once the margins are met
        assert d(jnp.array([1.0, 3.0]), jnp.array([-1.0, -2.0])) == 0.0
    if kind == "ragan":  # relativistic: only the difference between real and fake matters
        assert d(real + 5.0, fake + 5.0) == pytest.approx(d(real, fake), rel=1e-6)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.d_loss("wgan", real, fake)


def test_r1_penalty():
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
    assert float(losses.r1_penalty(lambda v: jnp.zeros(v.shape[0]) + 0.7, x)) == 0.0  # constant D
    w = jax.random.normal(jax.random.key(1), (4, 4, 2))
    linear = lambda v: jnp.sum(v * w, axis=(1, 2, 3))  # noqa: E731  ∇ = w for every example
    assert float(losses.r1_penalty(linear, x)) == pytest.approx(float(jnp.sum(w * w)), rel=1e-5)


def test_pingpong_loss():
    clip = jax.random.uniform(jax.random.key(0), (2, 4, 3, 3, 3))
    seq = losses.pingpong_sequence(clip)
    assert seq.shape[1] == 7
    np.testing.assert_array_equal(seq[:, 4:], clip[:, 2::-1])
    # a model without memory produces the same frame both ways: zero
    assert float(losses.pingpong_loss(2.0 * seq)) == 0.0
    # a recurrent model (running mean over time) depends on direction: measured exactly
    running = jnp.cumsum(seq, axis=1) / jnp.arange(1, 8)[None, :, None, None, None]
    expected = np.mean(np.abs(np.asarray(running[:, :3]) - np.asarray(running[:, 4:][:, ::-1])))
    assert float(losses.pingpong_loss(running)) == pytest.approx(expected, rel=1e-6)
    assert expected > 1e-3


def test_temporal_consistency_sees_flicker_not_motion():
    hr = jax.random.uniform(jax.random.key(0), (1, 4, 8, 8, 3))
    flow = jnp.zeros((1, 4, 8, 8, 2))
    assert float(losses.temporal_consistency(hr, hr, flow)) == 0.0
    flicker = jnp.array([0.0, 0.1, 0.0, 0.1])[None, :, None, None, None]
    # every frame-to-frame change is off by ±0.1
    assert float(losses.temporal_consistency(hr + flicker, hr, flow)) == pytest.approx(0.1, rel=1e-5)
    # a static offset is no flicker
    assert float(losses.temporal_consistency(hr + 0.05, hr, flow)) == pytest.approx(0.0, abs=1e-7)


def test_flow_warp_loss_is_zero_for_the_true_motion_and_not_for_none():
    # a smooth image panning 1 px right per frame (flat grey at the left/right edges, so the
    # column that enters the frame equals the clamped border the warp samples there)
    base = jax.random.uniform(jax.random.key(1), (1, 1, 12, 16, 3))
    base = jax.image.resize(base, (1, 1, 24, 32, 3), "linear")
    base = base.at[:, :, :, :4].set(0.5).at[:, :, :, -4:].set(0.5)
    clip = jnp.concatenate([jnp.roll(base, t, axis=3) for t in range(3)], axis=1)  # (1, 3, 24, 32, 3)
    # entry t maps frame t to t-1: frame t at x is frame t-1 at x - 1
    true_flow = jnp.zeros((1, 3, 24, 32, 2)).at[:, 1:, ..., 0].set(-1.0)
    assert float(losses.flow_warp_loss(clip, true_flow)) == pytest.approx(0.0, abs=1e-12)
    no_flow = losses.flow_warp_loss(clip, jnp.zeros_like(true_flow))
    expected = float(jnp.mean(jnp.square(clip[:, 1:] - clip[:, :-1])))
    assert float(no_flow) == pytest.approx(expected, rel=1e-6) and expected > 1e-4


def test_clip_flows_to_hr_scales_values_and_size():
    flow = jnp.full((2, 3, 4, 5, 2), 0.5)
    hr = losses.clip_flows_to_hr(flow, 4)
    assert hr.shape == (2, 3, 16, 20, 2)
    np.testing.assert_allclose(np.asarray(hr), 2.0, rtol=1e-6)
