"""Model registry and the SR-U-Net module."""

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
