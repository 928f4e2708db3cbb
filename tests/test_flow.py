"""SpyNetLite: shapes, zero-flow start, coarse-to-fine wiring, and that it learns a shift."""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vsr_jax.models.flow import SpyNetLite, upsample_flow_x2
from vsr_jax.models.warp import warp

TINY = dict(levels=3, features=(4,), kernel_size=3)  # quick to compile; wiring tests only


def init(net, ref, supp, seed=0):
    with jax.threefry_partitionable(False):  # quicker XLA:CPU compile (see models.init_variables)
        return jax.jit(net.init)(jax.random.key(seed), ref, supp)["params"]


def randomise_flow_convs(params, scale=0.05, seed=1):
    """Replaces the zero-initialised last conv of every level by small random weights."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    rng = np.random.default_rng(seed)
    for key in flat:
        if "flow_conv" in key:
            flat[key] = jnp.asarray(rng.normal(0.0, scale, flat[key].shape), jnp.float32)
    return flax.traverse_util.unflatten_dict(flat)


def images(shape, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.uniform(0.0, 1.0, shape), jnp.float32) for _ in range(2))


NET = SpyNetLite(**TINY)
APPLY = jax.jit(NET.apply)


@pytest.fixture(scope="module")
def tiny_params():
    """Untrained params (conv weights do not depend on the image size, so one init serves all)."""
    return init(NET, *images((1, 8, 8, 3)))


@pytest.mark.parametrize("hw", [(13, 19), (32, 32)])
def test_shape_and_untrained_flow_is_zero(tiny_params, hw):
    assert sorted(tiny_params) == ["basic_module_0", "basic_module_1", "basic_module_2"]  # own params per level
    ref, supp = images((2,) + hw + (3,))
    flow = APPLY({"params": tiny_params}, ref, supp)  # jitted
    assert flow.shape == (2,) + hw + (2,) and flow.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(flow), 0.0)
    # With non-zero last convs the flow is non-zero.
    flow = APPLY({"params": randomise_flow_convs(tiny_params)}, ref, supp)
    assert flow.shape == (2,) + hw + (2,) and float(jnp.abs(flow).mean()) > 1e-3


def test_odd_size_is_edge_padded_then_cropped(tiny_params):
    ref, supp = images((2, 13, 19, 3), seed=3)
    params = {"params": randomise_flow_convs(tiny_params)}
    flow = APPLY(params, ref, supp)
    pad = lambda a: jnp.pad(a, ((0, 0), (0, 3), (0, 1), (0, 0)), mode="edge")  # to 16×20
    padded_flow = APPLY(params, pad(ref), pad(supp))
    np.testing.assert_allclose(np.asarray(flow), np.asarray(padded_flow[:, :13, :19]), atol=1e-5)


def test_coarse_to_fine_upsampling_doubles_flow(tiny_params):
    # A constant residual (1, 0) at the coarsest level arrives ×4 at the finest (two ×2
    # upsamplings); one of (0, −0.25) at the finest level is added as is.
    params = flax.core.unfreeze(tiny_params)
    params["basic_module_0"]["flow_conv"]["bias"] = jnp.array([1.0, 0.0])
    params["basic_module_2"]["flow_conv"]["bias"] = jnp.array([0.0, -0.25])
    flow = APPLY({"params": params}, *images((2, 32, 32, 3), seed=4))
    np.testing.assert_allclose(np.asarray(flow[..., 0]), 4.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(flow[..., 1]), -0.25, atol=1e-6)


def test_upsample_flow_x2_is_align_corners():
    flow = jnp.asarray(np.random.default_rng(5).normal(size=(1, 3, 4, 2)), jnp.float32)
    up = np.asarray(upsample_flow_x2(flow))
    assert up.shape == (1, 6, 8, 2)
    # align_corners=True keeps the corners and doubles the values.
    np.testing.assert_allclose(
        up[:, [0, -1]][:, :, [0, -1]], 2 * np.asarray(flow)[:, [0, -1]][:, :, [0, -1]], atol=1e-6
    )
    # Row 1 of 6 sits at 1·(3−1)/(6−1) = 0.4 between input rows 0 and 1 (column 0 exactly).
    np.testing.assert_allclose(up[0, 1, 0], 2 * (0.6 * flow[0, 0, 0] + 0.4 * flow[0, 1, 0]), atol=1e-6)


def test_bfloat16_compute_returns_float32_flow(tiny_params):
    net = SpyNetLite(**TINY, dtype=jnp.bfloat16)
    ref, supp = images((2, 13, 19, 3), seed=3)
    flow = jax.jit(net.apply)({"params": randomise_flow_convs(tiny_params)}, ref, supp)
    assert flow.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(flow)))
    reference = APPLY({"params": randomise_flow_convs(tiny_params)}, ref, supp)
    np.testing.assert_allclose(np.asarray(flow), np.asarray(reference), atol=0.05)


def sinusoid_texture(h, w, dx, dy, seed=0):
    """A smooth RGB texture (sum of low-frequency sinusoids) translated by (dx, dy) pixels.

    Analytic, so a sub-pixel shift is exact: texture(dx, dy)[i + dy, j + dx] = texture(0, 0)[i, j].
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(h) - dy, np.arange(w) - dx, indexing="ij")
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(6):
            kx, ky = rng.uniform(-0.6, 0.6, 2)  # wavelengths ≥ ~7 px
            img[..., c] += np.sin(kx * xx + ky * yy + rng.uniform(0, 2 * np.pi)) / 6
    return jnp.asarray(np.clip(0.5 + 0.4 * img, 0, 1)[None], jnp.float32)


def test_training_learns_a_subpixel_shift():
    # supp is ref's content moved by (1.5, −0.75) px, so the flow from ref to supp is that
    # shift: warp(supp, (1.5, −0.75)) = ref.
    dx, dy, margin = 1.5, -0.75, 4
    ref = sinusoid_texture(32, 32, 0.0, 0.0)
    supp = sinusoid_texture(32, 32, dx, dy)
    net = SpyNetLite(levels=3, features=(8,), kernel_size=5)
    tx = optax.adam(2e-3)

    def loss_fn(params):  # Charbonnier on the interior (the edges see clamped border pixels)
        flow = net.apply({"params": params}, ref, supp)
        interior = lambda a: a[:, margin:-margin, margin:-margin]
        d = interior(warp(supp, flow, "border") - ref)
        return jnp.mean(jnp.sqrt(d * d + 1e-6)), interior(flow).mean(axis=(0, 1, 2))

    @jax.jit  # one compiled step (XLA:CPU compile time dominates this test)
    def step(params, opt):
        (loss, mean_flow), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss, mean_flow

    params = init(net, ref, supp)
    opt = tx.init(params)
    losses = []
    for _ in range(41):  # the 41st reports the loss and flow after 40 updates
        params, opt, loss, mean_flow = step(params, opt)
        losses.append(float(loss))
    first, final, mean_flow = losses[0], losses[-1], np.asarray(mean_flow)
    # Measured on a 2-core CPU: first 0.0657 (zero flow), final 0.0037 (the true flow gives
    # 0.0034: Charbonnier's ε and bilinear error on the sinusoids), mean flow (1.497, −0.746).
    assert first == pytest.approx(0.0657, abs=1e-3)  # the untrained net is the zero flow
    assert final < 0.2 * first, (first, final)
    assert 1.0 < mean_flow[0] < 2.0, mean_flow
    assert -1.1 < mean_flow[1] < -0.45, mean_flow
