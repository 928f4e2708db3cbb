"""SRCNN: 9-1-5 on bicubic input (published) and the learned-upsampler variant."""

import jax
import jax.numpy as jnp
import pytest

from tests import model_helpers
from vsr_jax import models


@pytest.mark.parametrize("upsampler", ["bicubic", "learned"])
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shape", [(2, 1, 12, 16, 3), (1, 3, 9, 7, 3), (2, 11, 13, 3)])
def test_srcnn_shapes(upsampler, scale, shape):
    model = models.create_model("srcnn", scale, {"upsampler": upsampler, "features": (8, 4)})
    x = jax.random.uniform(jax.random.key(0), shape)
    y = model.apply(models.init_variables(model, jax.random.key(1), x), x)
    assert y.shape == shape[:-3] + (shape[-3] * scale, shape[-2] * scale, 3)


def test_srcnn_published_layers():
    model = models.create_model("srcnn", 2, {})
    params = models.init_variables(model, jax.random.key(0), jnp.zeros((1, 1, 8, 8, 3)))["params"]
    kernels = [params[f"Conv_{i}"]["kernel"].shape for i in range(3)]
    assert kernels == [(9, 9, 3, 64), (1, 1, 64, 32), (5, 5, 32, 3)]
    # 8,129 as published for Y-only input; with RGB the first and last layers are wider: 20,099
    assert sum(p.size for p in jax.tree.leaves(params)) == 20099


def test_srcnn_bad_upsampler_is_named():
    model = models.create_model("srcnn", 2, {"upsampler": "nearest"})
    with pytest.raises(ValueError, match="upsampler"):
        model.init(jax.random.key(0), jnp.zeros((1, 1, 8, 8, 3)))


@pytest.mark.parametrize("upsampler", ["bicubic", "learned"])
def test_srcnn_learns_a_fixed_batch(upsampler):
    model = models.create_model("srcnn", 2, {"upsampler": upsampler, "features": (16, 8)})
    lr, hr = model_helpers.smooth_clip(jax.random.key(0), (4, 1, 32, 32, 3), 2)
    first, last = model_helpers.fit_fixed_batch(model, lr, hr)
    assert last < 0.9 * first, (first, last)  # measured 0.82 (learned, starts at bicubic)
