"""RUNet: residual contracting path, transposed-conv expanding path, pixel-shuffle + bicubic skip."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsr_jax.models.runet  # noqa: F401  (registers "runet")
from tests import model_helpers
from tests.model_helpers import apply, bicubic
from vsr_jax import models

SMALL = {"features": (4, 8, 8, 16), "blocks_per_level": 1}  # four levels: pads to a multiple of 8


def param_shapes(model, x):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(2, 3, 13, 19, 3), (3, 13, 19, 3), (1, 1, 16, 24, 3)])
def test_runet_output_shapes(scale, shape):
    model = models.create_model("runet", scale, SMALL)
    x = jnp.zeros(shape)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    y = jax.eval_shape(model.apply, variables, x)
    assert y.shape == shape[:-3] + (shape[-3] * scale, shape[-2] * scale, 3)
    assert y.dtype == jnp.float32


@pytest.fixture(scope="module")
def small_x2():
    """The SMALL ×2 model, a clip with odd frame sizes and the model's initial variables."""
    model = models.create_model("runet", 2, SMALL)
    # numpy test data: an eager jax.random call compiles Threefry for each new shape (seconds on CPU)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 2, 13, 19, 3)), jnp.float32)
    return model, x, models.init_variables(model, jax.random.key(1), x)


def test_untrained_runet_is_bicubic_at_odd_sizes(small_x2):
    model, x, variables = small_x2
    # the skip is taken from the unpadded frame, so even the padded border is plain bicubic
    np.testing.assert_allclose(apply(model, variables, x), bicubic(x, 2), atol=1e-6)


def test_runet_has_residual_contracting_and_transposed_expanding_path():
    model = models.create_model("runet", 2, {"features": (8, 16, 32), "blocks_per_level": 2})
    params = param_shapes(model, jnp.zeros((1, 1, 16, 16, 3)))
    res = sorted(n for n in params if re.fullmatch(r"down\d_res\d", n))
    assert res == [f"down{i}_res{j}" for i in range(3) for j in range(2)]  # every level, bottleneck too
    for name in res:
        f = (8, 16, 32)[int(name[4])]
        kernels = {k: v["kernel"].shape for k, v in params[name].items()}
        assert kernels == {"Conv_0": (3, 3, f, f), "Conv_1": (3, 3, f, f)}
    assert params["down1_conv"]["kernel"].shape == (3, 3, 8, 16)  # widening conv after the pool
    assert sorted(n for n in params if "transpose" in n) == ["up0_transpose", "up1_transpose"]
    assert params["up1_transpose"]["kernel"].shape == (2, 2, 32, 16)
    assert params["up0_transpose"]["kernel"].shape == (2, 2, 16, 8)
    assert params["up0_conv0"]["kernel"].shape == (3, 3, 16, 8)  # after concatenating the skip
    assert params["upscale_conv"]["kernel"].shape == (3, 3, 8, 3 * 4)


@pytest.mark.parametrize(("scale", "count"), [(2, 17_107_404), (4, 17_128_176)])
def test_runet_default_parameter_count(scale, count):
    params = param_shapes(models.create_model("runet", scale, {}), jnp.zeros((1, 1, 16, 16, 3)))
    assert sum(p.size for p in jax.tree.leaves(params)) == count


def test_runet_learns_a_fixed_batch():
    model = models.create_model("runet", 2, {"features": (8, 16), "blocks_per_level": 1})
    lr, hr = model_helpers.smooth_clip(jax.random.key(0), (4, 1, 32, 32, 3), 2)
    first, last = model_helpers.fit_fixed_batch(model, lr, hr)
    assert last < 0.7 * first, (first, last)  # measured 0.49 (starts at bicubic)


def test_runet_bfloat16_compute(small_x2):
    model, x, variables = small_x2
    bf16 = models.create_model("runet", 2, {**SMALL, "dtype": "bfloat16"})
    assert bf16.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    # untrained, only the bicubic skip is left: it is computed in float32 before the cast
    np.testing.assert_allclose(apply(bf16, variables, x), bicubic(x, 2), atol=1e-6)
    # the zero-init upscale conv hides the network: give it weights to compare the two dtypes
    params = dict(variables["params"])
    kernel = params["upscale_conv"]["kernel"]
    noise = np.random.default_rng(1).normal(scale=0.3, size=kernel.shape)
    params["upscale_conv"] = {**params["upscale_conv"], "kernel": jnp.asarray(noise, jnp.float32)}
    y16 = apply(bf16, {"params": params}, x)
    y32 = apply(model, {"params": params}, x)
    assert y16.dtype == jnp.float32
    diff = float(jnp.max(jnp.abs(y16 - y32)))
    # measured 0.0046, against a network contribution of up to 0.62 (output range ~[-0.44, 1.34])
    assert 0 < diff < 0.03, diff
