"""Backward warping (vs an independent numpy bilinear and torch grid_sample) and its helpers."""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax.models.layers import pixel_shuffle
from vsr_jax.models.warp import flow_to_hr, space_to_depth, warp

REFERENCE = pathlib.Path(__file__).parent / "data" / "warp_reference.npz"


def numpy_grid_sample(x, flow, padding_mode):
    """torch grid_sample(align_corners=True) semantics, one output pixel at a time, float64.

    Sample position (i + dy, j + dx) in pixel coordinates; 'border' clamps the position to
    the image, 'zeros' drops every bilinear tap outside it.
    """
    x = np.asarray(x, np.float64)
    flow = np.asarray(flow, np.float64)
    n, h, w, c = x.shape
    out = np.zeros((n, h, w, c))
    for b in range(n):
        for i in range(h):
            for j in range(w):
                sx = j + flow[b, i, j, 0] if w > 1 else 0.0
                sy = i + flow[b, i, j, 1] if h > 1 else 0.0
                if padding_mode == "border":
                    sx = min(max(sx, 0.0), w - 1.0)
                    sy = min(max(sy, 0.0), h - 1.0)
                left, top = math.floor(sx), math.floor(sy)
                fx, fy = sx - left, sy - top
                for yy, wy in ((top, 1.0 - fy), (top + 1, fy)):
                    for xx, wx in ((left, 1.0 - fx), (left + 1, fx)):
                        if 0 <= yy < h and 0 <= xx < w:
                            out[b, i, j] += wy * wx * x[b, yy, xx]
    return out


@pytest.fixture(scope="module")
def image():
    return jnp.asarray(np.random.default_rng(0).uniform(0.0, 1.0, (2, 9, 11, 3)), jnp.float32)


def uniform(seed, shape, low, high):
    return jnp.asarray(np.random.default_rng(seed).uniform(low, high, shape), jnp.float32)


def constant_flow(shape, dx, dy):
    n, h, w, _ = shape
    return jnp.broadcast_to(jnp.asarray([dx, dy], jnp.float32), (n, h, w, 2))


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_zero_flow_is_identity(image, mode):
    out = warp(image, jnp.zeros(image.shape[:3] + (2,)), mode)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_integer_shift_is_roll_in_interior(image, mode):
    # dx = 2, dy = -1: out[i, j] = x[i − 1, j + 2], i.e. roll by (+1, −2); exact.
    out = np.asarray(warp(image, constant_flow(image.shape, 2.0, -1.0), mode))
    rolled = np.asarray(jnp.roll(image, (1, -2), axis=(1, 2)))
    np.testing.assert_array_equal(out[:, 1:, :-2], rolled[:, 1:, :-2])
    x = np.asarray(image)
    if mode == "zeros":  # row −1 and columns W, W+1 lie outside
        assert np.all(out[:, 0] == 0) and np.all(out[:, :, -2:] == 0)
    else:  # clamped to row 0 / column W−1
        np.testing.assert_array_equal(out[:, 0, :-2], x[:, 0, 2:])
        np.testing.assert_array_equal(out[:, 1:, -2:], np.repeat(x[:, :-1, -1:], 2, axis=2))


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_subpixel_shift_matches_numpy_bilinear(image, mode):
    x = np.asarray(image, np.float64)
    out = np.asarray(warp(image, constant_flow(image.shape, 0.25, 0.6), mode))
    np.testing.assert_allclose(out, numpy_grid_sample(image, constant_flow(image.shape, 0.25, 0.6), mode), atol=1e-5)
    # One interior pixel by hand: position (4.6, 5.25).
    i, j = 4, 5
    hand = 0.4 * (0.75 * x[:, i, j] + 0.25 * x[:, i, j + 1]) + 0.6 * (0.75 * x[:, i + 1, j] + 0.25 * x[:, i + 1, j + 1])
    np.testing.assert_allclose(out[:, i, j], hand, atol=1e-6)


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_random_flow_matches_numpy_bilinear(image, mode):
    # Per-pixel flows up to ±3 px: many positions fall partly or wholly outside the 9×11 image.
    flow = uniform(1, image.shape[:3] + (2,), -3.0, 3.0)
    np.testing.assert_allclose(np.asarray(warp(image, flow, mode)), numpy_grid_sample(image, flow, mode), atol=1e-5)


def test_border_behaviour(image):
    x = np.asarray(image)
    far = constant_flow(image.shape, -100.0, 0.0)  # every position far left of column 0
    assert np.all(np.asarray(warp(image, far, "zeros")) == 0)
    np.testing.assert_array_equal(np.asarray(warp(image, far, "border")), np.repeat(x[:, :, :1], x.shape[2], axis=2))
    # Half a pixel outside: one of the two horizontal taps is outside and weighs 0.5.
    left = np.asarray(warp(image, constant_flow(image.shape, -0.5, 0.0), "zeros"))
    np.testing.assert_allclose(left[:, :, 0], 0.5 * x[:, :, 0], atol=1e-7)
    np.testing.assert_allclose(left[:, :, 1], 0.5 * (x[:, :, 0] + x[:, :, 1]), atol=1e-7)
    left_border = np.asarray(warp(image, constant_flow(image.shape, -0.5, 0.0), "border"))
    np.testing.assert_array_equal(left_border[:, :, 0], x[:, :, 0])
    down = np.asarray(warp(image, constant_flow(image.shape, 0.0, 0.5), "zeros"))
    np.testing.assert_allclose(down[:, -1], 0.5 * x[:, -1], atol=1e-7)
    np.testing.assert_array_equal(
        np.asarray(warp(image, constant_flow(image.shape, 0.0, 0.5), "border"))[:, -1], x[:, -1]
    )
    # A corner a quarter pixel out in both directions: only the corner tap, weight 0.75².
    corner = np.asarray(warp(image, constant_flow(image.shape, 0.25, 0.25), "zeros"))
    np.testing.assert_allclose(corner[:, -1, -1], 0.5625 * x[:, -1, -1], atol=1e-7)


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_gradient_wrt_flow_matches_finite_differences(image, mode):
    weights = uniform(2, image.shape, -1.0, 1.0)
    flow = constant_flow(image.shape, 0.3, -0.45) + uniform(3, image.shape[:3] + (2,), -0.1, 0.1)
    loss = jax.jit(lambda f: jnp.sum(warp(image, f, mode) * weights))
    grad = np.asarray(jax.grad(loss)(flow))
    assert np.all(np.isfinite(grad))
    eps = 1e-2  # the warp is linear in each flow component inside a cell: central differences are exact
    for n, i, j in ((0, 4, 5), (1, 2, 7)):
        for k in (0, 1):
            delta = np.zeros(flow.shape, np.float32)
            delta[n, i, j, k] = eps
            fd = (float(loss(flow + delta)) - float(loss(flow - delta))) / (2 * eps)
            assert abs(fd) > 1e-3
            np.testing.assert_allclose(grad[n, i, j, k], fd, rtol=2e-3, atol=1e-4)


def test_gradient_wrt_x_conserves_mass(image):
    # With every position inside the image the bilinear weights of each output sum to 1,
    # so d(sum out)/dx sums to the number of output values.
    flow = np.array(uniform(4, image.shape[:3] + (2,), 0.0, 0.9))  # pointing inwards:
    flow[:, :, 6:, 0] *= -1  # right half looks left
    flow[:, 5:, :, 1] *= -1  # bottom half looks up
    grad = jax.grad(lambda x: jnp.sum(warp(x, flow, "zeros")))(image)
    np.testing.assert_allclose(float(grad.sum()), image.size, rtol=1e-5)


def test_jit_vmap_and_dtype(image):
    flow = uniform(5, image.shape[:3] + (2,), -2.0, 2.0)
    eager = np.asarray(warp(image, flow, "border"))
    np.testing.assert_allclose(np.asarray(jax.jit(lambda a, b: warp(a, b, "border"))(image, flow)), eager, atol=1e-6)
    stacked = jax.vmap(lambda a, b: warp(a, b, "border"))(image[None].repeat(2, 0), flow[None].repeat(2, 0))
    np.testing.assert_allclose(np.asarray(stacked[1]), eager, atol=1e-6)
    half = warp(image.astype(jnp.bfloat16), flow, "border")
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half, np.float32), eager, atol=1e-2)
    with pytest.raises(ValueError, match="padding_mode"):
        warp(image, flow, "reflection")


@pytest.fixture(scope="module")
def torch_reference():
    return dict(np.load(REFERENCE))


@pytest.mark.parametrize("mode", ["zeros", "border"])
@pytest.mark.parametrize("case", ["small", "large", "edge", "row"])
def test_matches_torch_flow_warp(torch_reference, case, mode):
    # BasicSR's flow_warp through torch grid_sample (tests/data/make_warp_reference.py).
    r = torch_reference
    x = r["x_row"] if case == "row" else r["x"]
    out = np.asarray(warp(jnp.asarray(x), jnp.asarray(r[f"flow_{case}"]), mode))
    np.testing.assert_allclose(out, r[f"out_{case}_{mode}"], atol=1e-5)


def test_flow_to_hr(torch_reference):
    r = torch_reference
    out = flow_to_hr(jnp.asarray(r["lr_flow"]), 4)
    assert out.shape == (1, 20, 28, 2)
    np.testing.assert_allclose(np.asarray(out), r["up4_half_pixel"], atol=1e-5)  # torch align_corners=False
    const = flow_to_hr(constant_flow((2, 3, 5, 2), 0.5, -1.25), 3)
    np.testing.assert_allclose(np.asarray(const), np.asarray(constant_flow((2, 9, 15, 2), 1.5, -3.75)), atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3])
def test_space_to_depth_round_trip(scale):
    x = uniform(6, (2, 6 * scale, 4 * scale, 3), 0.0, 1.0)
    d = space_to_depth(x, scale)
    assert d.shape == (2, 6, 4, 3 * scale * scale)
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(d, scale)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(space_to_depth(pixel_shuffle(d, scale), scale)), np.asarray(d))
    # torch channel order: channel c·s² + a·s + b holds pixel (s·i + a, s·j + b) of channel c.
    c, a, b = 2, scale - 1, 1
    np.testing.assert_array_equal(
        np.asarray(d[:, :, :, c * scale * scale + a * scale + b]), np.asarray(x[:, a::scale, b::scale, c])
    )
    with pytest.raises(ValueError):
        space_to_depth(x[:, :-1], scale)


def test_space_to_depth_matches_torch_pixel_unshuffle(torch_reference):
    r = torch_reference
    np.testing.assert_array_equal(np.asarray(space_to_depth(jnp.asarray(r["unshuffle_in"]), 2)), r["unshuffle2"])
