"""SRResNet (SRGAN's generator without BN): shapes, layout, parameter count, fitting, bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsr_jax.models.srresnet  # noqa: F401  (registers "srresnet")
from tests import model_helpers
from tests.model_helpers import apply, bicubic
from vsr_jax import models

SMALL = {"features": 8, "num_blocks": 2}


def param_shapes(model, x=None):
    x = jnp.zeros((1, 1, 8, 8, 3)) if x is None else x
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


def count(params):
    return sum(p.size for p in jax.tree.leaves(params))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 3, 13, 19, 3), (3, 13, 19, 3)])
def test_srresnet_output_shapes(scale, shape):
    model = models.create_model("srresnet", scale, SMALL)
    x = jnp.zeros(shape)
    y = jax.eval_shape(model.apply, {"params": param_shapes(model, x)}, x)
    assert y.shape == shape[:-3] + (shape[-3] * scale, shape[-2] * scale, 3)
    assert y.dtype == jnp.float32


@pytest.mark.parametrize("scale", [1, 8])
def test_srresnet_unsupported_scale_is_named(scale):
    model = models.create_model("srresnet", scale, SMALL)
    with pytest.raises(ValueError, match=f"scale 2, 3 or 4, got scale={scale}"):
        param_shapes(model)


@pytest.mark.parametrize(("scale", "expected"), [(4, 1_517_571), (2, 1_369_859), (3, 1_554_499)])
def test_srresnet_parameter_count(scale, expected):
    # 1,517,571 at ×4 is BasicSR's MSRResNet (64 features, 16 blocks) count, by a different layout
    # with the same sizes: our 64→64 trunk conv (+ global skip, as SRGAN) stands where MSRResNet has
    # its 64→64 `conv_hr` after the upsampling, so the totals match but the weights do not port.
    # ×2 drops one 64→256 up-conv (147,712); ×3 has one 64→576 up-conv (332,352) instead of two.
    assert count(param_shapes(models.create_model("srresnet", scale, {}))) == expected


def test_srresnet_layout():
    model = models.create_model("srresnet", 4, {"features": 16, "num_blocks": 5})
    params = param_shapes(model)
    blocks = [n for n in params if n.startswith("block")]
    assert sorted(blocks) == [f"block{i}" for i in range(5)]
    for name in blocks:
        kernels = {k: v["kernel"].shape for k, v in params[name].items()}
        assert kernels == {"Conv_0": (3, 3, 16, 16), "Conv_1": (3, 3, 16, 16)}
    assert params["conv_first"]["kernel"].shape == (3, 3, 3, 16)
    assert params["conv_body"]["kernel"].shape == (3, 3, 16, 16)
    assert [params[f"upconv{k}"]["kernel"].shape for k in range(2)] == [(3, 3, 16, 64)] * 2  # two ×2 stages
    assert "upconv2" not in params
    assert params["conv_last"]["kernel"].shape == (3, 3, 16, 3)
    x3 = param_shapes(models.create_model("srresnet", 3, {"features": 16, "num_blocks": 5}))
    assert x3["upconv0"]["kernel"].shape == (3, 3, 16, 16 * 9) and "upconv1" not in x3  # one ×3 stage


@pytest.fixture(scope="module")
def small_x3():
    """The SMALL ×3 model, a clip with odd frame sizes and the model's initial variables."""
    model = models.create_model("srresnet", 3, SMALL)
    # numpy test data: an eager jax.random call compiles Threefry for each new shape (seconds on CPU)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 2, 13, 19, 3)), jnp.float32)
    return model, x, models.init_variables(model, jax.random.key(1), x)


def test_untrained_srresnet_is_bicubic(small_x3):
    model, x, variables = small_x3  # conv_last starts at zero
    np.testing.assert_allclose(apply(model, variables, x), bicubic(x, 3), atol=1e-6)


def test_srresnet_learns_a_fixed_batch():
    model = models.create_model("srresnet", 2, SMALL)
    lr, hr = model_helpers.smooth_clip(jax.random.key(0), (4, 1, 32, 32, 3), 2)
    first, last = model_helpers.fit_fixed_batch(model, lr, hr)
    assert last < 0.75 * first, (first, last)  # measured 0.58 (starts at bicubic)


def test_srresnet_bfloat16_compute(small_x3):
    model, x, variables = small_x3
    bf16 = models.create_model("srresnet", 3, {**SMALL, "dtype": "bfloat16"})
    assert bf16.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    # untrained, only the bicubic skip is left: it is computed in float32 before the cast
    np.testing.assert_allclose(apply(bf16, variables, x), bicubic(x, 3), atol=1e-6)
    # give the zero-init convs weights so that the whole network contributes
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda p: p, variables["params"])
    for conv, std in [
        (params["block0"]["Conv_1"], 0.1),
        (params["block1"]["Conv_1"], 0.1),
        (params["conv_last"], 0.03),
    ]:
        conv["kernel"] = jnp.asarray(rng.normal(scale=std, size=conv["kernel"].shape), jnp.float32)
    y16 = apply(bf16, {"params": params}, x)
    y32 = apply(model, {"params": params}, x)
    assert y16.dtype == jnp.float32
    diff = float(jnp.max(jnp.abs(y16 - y32)))
    # measured 0.0061, against a network contribution of up to 0.95 (output range ~[-0.53, 1.74])
    assert 0 < diff < 0.03, diff
