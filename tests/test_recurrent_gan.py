"""The frame-recurrent generator of the video GAN (FRVSR/TecoGAN style)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import model_helpers
from vsr_jax import models
from vsr_jax.models import layers

TINY = {"features": 8, "num_blocks": 1, "flow_levels": 2, "flow_features": (8, 8, 8, 8)}


def _model(scale=4, **kw):
    return models.create_model("recurrent_gan", scale, {**TINY, **kw})


@pytest.mark.parametrize("scale, size", [(2, (13, 19)), (4, (16, 16)), (3, (9, 10))])
def test_shapes_and_recorded_flows(scale, size):
    model = _model(scale)
    lr = jax.ShapeDtypeStruct((2, 3) + size + (3,), jnp.float32)
    y, state = jax.eval_shape(
        lambda x: model.apply(model.init(jax.random.key(1), x), x, mutable=["intermediates"]), lr
    )  # shapes only: nothing is compiled
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale, 3)
    (flows,) = state["intermediates"]["flow_to_prev"]
    assert flows.shape == (2, 3) + size + (2,)


def test_untrained_generator_is_bicubic():
    model = _model()
    lr = jax.random.uniform(jax.random.key(0), (1, 3, 8, 12, 3))
    y = jax.jit(model.apply)(models.init_variables(model, jax.random.key(1), lr), lr)
    np.testing.assert_allclose(y, layers.per_frame(lambda x: layers.upsample_bicubic(x, 4), lr), atol=1e-6)


def test_previous_output_is_fed_back_and_the_generator_is_causal():
    model = _model()
    clip = jax.random.uniform(jax.random.key(0), (1, 9, 10, 10, 3))
    params = models.init_variables(model, jax.random.key(1), clip)["params"]
    params = model_helpers.perturb(params, jax.random.key(2))
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
    base = apply(params, clip)
    np.testing.assert_allclose(apply(params, clip[:, :5]), base[:, :5], atol=1e-5)  # causal
    changed = apply(params, clip.at[:, 0].set(1.0 - clip[:, 0]))
    # frame 2 never sees LR frame 0 directly: only through the fed-back SR frames
    assert float(jnp.abs(changed[:, 2] - base[:, 2]).max()) > 1e-4


def test_compiled_program_size_independent_of_t():
    model = _model()
    params = models.init_variables(model, jax.random.key(1), jnp.zeros((1, 2, 8, 8, 3)))["params"]
    sizes = {
        t: len(jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, jnp.zeros((1, t, 8, 8, 3))).as_text())
        for t in (7, 15)
    }
    assert abs(sizes[15] - sizes[7]) < 0.02 * sizes[7], sizes


def test_learns_a_fixed_batch():
    model = _model(2)
    lr, hr = model_helpers.smooth_clip(jax.random.key(0), (2, 3, 24, 24, 3), 2)
    first, last = model_helpers.fit_fixed_batch(model, lr, hr, steps=25)
    assert last < 0.95 * first, (first, last)  # measured 0.905 (starts at bicubic)


def test_unsupported_scale_is_a_clear_error():
    with pytest.raises(ValueError, match="scale 5 is not supported"):
        _model(5).init(jax.random.key(0), jnp.zeros((1, 2, 8, 8, 3)))
