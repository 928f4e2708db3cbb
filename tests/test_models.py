"""Model registry and the SR-U-Net module."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax import models
from vsr_jax.models import layers


def test_registry_knows_unet_and_reports_unknown_names():
    assert "unet" in models.available()
    with pytest.raises(KeyError, match="available: .*unet"):
        models.get_model_class("nope")
    with pytest.raises(TypeError, match="no option"):
        models.create_model("unet", 2, {"featurs": (8,)})


@pytest.mark.parametrize("shape", [(2, 1, 64, 64, 3), (1, 3, 20, 36, 3), (2, 17, 23, 3)])
def test_unet_output_shape_any_size(shape):
    model = models.create_model("unet", 2, {"features": (8, 16, 32)})
    x = jax.random.uniform(jax.random.key(0), shape)
    variables = models.init_variables(model, jax.random.key(1), x)
    y = model.apply(variables, x)
    assert y.shape == shape[:-3] + (shape[-3] * 2, shape[-2] * 2, 3)


def test_untrained_residual_unet_is_bicubic():
    model = models.create_model("unet", 2, {"features": (8, 16)})
    x = jax.random.uniform(jax.random.key(0), (1, 1, 16, 16, 3))
    y = model.apply(models.init_variables(model, jax.random.key(1), x), x)
    np.testing.assert_allclose(y[:, 0], layers.upsample_bicubic(x[:, 0], 2), atol=1e-6)


def test_unet_has_contracting_and_expanding_path():
    model = models.create_model("unet", 2, {"features": (8, 16, 32), "residual": False})
    params = models.init_variables(model, jax.random.key(0), jnp.zeros((1, 1, 16, 16, 3)))["params"]
    names = set(params)
    assert sum(n.startswith("ConvTranspose") for n in names) == 2  # two expanding steps
    assert params["ConvTranspose_0"]["kernel"].shape == (2, 2, 32, 16)
    assert params["upscale_conv"]["kernel"].shape == (3, 3, 8, 3 * 4)


def test_pixel_shuffle_matches_pytorch_channel_order():
    # torch.nn.PixelShuffle(2) on NCHW: out[c, 2h+i, 2w+j] = in[c*4 + i*2 + j, h, w]
    x = np.arange(1 * 2 * 3 * 8).reshape(1, 2, 3, 8).astype(np.float32)  # NHWC, C = 2*4
    y = np.asarray(layers.pixel_shuffle(jnp.asarray(x), 2))
    assert y.shape == (1, 4, 6, 2)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                np.testing.assert_array_equal(y[0, i::2, j::2, c], x[0, :, :, c * 4 + i * 2 + j])


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matmul_conv_equals_flax_conv(k):
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 5))
    ref = nn.Conv(6, (k, k))
    params = ref.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias too
    expected = ref.apply(params, x)
    for impl in ("conv", "matmul", "auto"):
        ours = layers.Conv(6, k, impl=impl)
        assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
        np.testing.assert_allclose(ours.apply(params, x), expected, atol=2e-5, err_msg=impl)
    with pytest.raises(ValueError, match="conv_impl"):
        layers.Conv(6, k, impl="fft").init(jax.random.key(1), x)


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("k", [1, 3, 4, 7])
def test_conv2d_gradients_equal_xla_autodiff(n, k):
    """layers.conv2d's CPU backward pass (padded-input kernel gradient for 1-2 images, bias
    gradient as a matrix product) gives XLA autodiff's gradients of nn.Conv's computation."""
    keys = jax.random.split(jax.random.key(n * 10 + k), 4)
    x = jax.random.normal(keys[0], (n, 13, 17, 6))
    kernel = jax.random.normal(keys[1], (k, k, 6, 5))
    bias = jax.random.normal(keys[2], (5,))
    weights = jax.random.normal(keys[3], (n, 13, 17, 5))  # a loss that weighs every output

    def plain(x, kernel, bias):
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(jnp.sin(y + bias) * weights)

    def ours(x, kernel, bias):
        return jnp.sum(jnp.sin(layers.conv2d(x, kernel, bias)) * weights)

    np.testing.assert_allclose(jax.jit(ours)(x, kernel, bias), plain(x, kernel, bias), rtol=1e-6)
    want = jax.jit(jax.grad(plain, (0, 1, 2)))(x, kernel, bias)
    got = jax.jit(jax.grad(ours, (0, 1, 2)))(x, kernel, bias)
    for name, a, b in zip(("x", "kernel", "bias"), got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(b))), err_msg=name)
    no_bias = jax.jit(jax.grad(lambda x, kernel: jnp.sum(jnp.sin(layers.conv2d(x, kernel)) * weights), (0, 1)))
    want = jax.grad(lambda x, kernel: plain(x, kernel, jnp.zeros(5)), (0, 1))(x, kernel)
    for a, b in zip(no_bias(x, kernel), want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def test_pixel_shuffle_upsampler_stages():
    assert layers.upsample_factors(4) == [2, 2] and layers.upsample_factors(3) == [3]
    assert layers.upsample_factors(8) == [2, 2, 2]
    with pytest.raises(ValueError, match="scale 6 is not supported"):
        layers.upsample_factors(6)
    up = layers.PixelShuffleUpsampler(4, 8)
    x = jnp.ones((1, 5, 6, 3))
    params = up.init(jax.random.key(0), x)["params"]
    assert [params[f"Conv_{i}"]["kernel"].shape for i in range(2)] == [(3, 3, 3, 32), (3, 3, 8, 32)]
    assert up.apply({"params": params}, x).shape == (1, 20, 24, 8)


def test_list_models_prints_params_and_flops(capsys):
    from vsr_jax.models import __main__ as listing
    from vsr_jax.models import stats

    assert listing.main(["--list", "--json", "--height=16", "--width=16", "--frames=3"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(models.available())
    assert rows["srresnet"]["params"] == 1_517_571  # BasicSR's MSRResNet x4 count
    assert rows["srcnn"]["params"] == 20_099
    # SRCNN's convs run at HR (64x64 here): 2 FLOPs per multiply-add of its three layers;
    # XLA skips the taps that fall on the zero padding (-5.4 % for the 9x9 conv at 64x64)
    macs = 64 * 64 * (9 * 9 * 3 * 64 + 64 * 32 + 5 * 5 * 32 * 3)
    assert 0.93 * 2 * macs <= rows["srcnn"]["gflops_per_frame"] * 1e9 < 2 * macs * 1.02
    # a recurrent model's FLOPs are counted over its unrolled time loop, per frame
    model = models.create_model("convlstm_vsr", 4, {"features": 8, "flow_features": (4, 4, 4, 4)})
    per_frame = [stats.flops_per_frame(model, (1, t, 16, 16, 3)) for t in (2, 6)]
    assert abs(per_frame[1] - per_frame[0]) < 0.2 * per_frame[0]


@pytest.mark.parametrize("name", models.available())
def test_every_model_computes_in_bfloat16_with_float32_params_and_output(name):
    model = models.create_model(name, 4, {"dtype": "bfloat16"})
    lr = jax.ShapeDtypeStruct((1, 2, 16, 16, 3), jnp.float32)
    variables, out = jax.eval_shape(lambda x: (v := model.init(jax.random.key(0), x), model.apply(v, x)), lr)
    assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert out.dtype == jnp.float32 and out.shape == (1, 2, 64, 64, 3)
    lowered = jax.jit(model.apply).lower(variables, lr).as_text()
    assert "bf16" in lowered  # the convolutions really run in bfloat16
    with pytest.raises(ValueError, match="model.dtype must be one of"):
        models.create_model(name, 4, {"dtype": "int8"})
