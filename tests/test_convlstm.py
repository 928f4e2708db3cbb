"""The recurrent ConvLSTM VSR model: shapes, scan wiring, causality, compile-once, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import model_helpers
from vsr_jax import models
from vsr_jax.models import convlstm, layers

TINY = {"features": 8, "extract_blocks": 1, "recon_blocks": 1, "flow_levels": 2, "flow_features": (8, 8, 8, 8)}


def _model(scale=4, **kw):
    return models.create_model("convlstm_vsr", scale, {**TINY, **kw})


def _apply(model, variables, lr):
    return jax.jit(model.apply)(variables, lr)


def _active_params(model, lr, seed=1):
    """Initialised params with noise on every leaf (the zero-initialised output and flow layers too)."""
    params = models.init_variables(model, jax.random.key(seed), lr)["params"]
    return model_helpers.perturb(params, jax.random.key(seed + 100))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("scale, size", [(2, (13, 19)), (4, (16, 16)), (3, (9, 10))])
def test_shapes(bidirectional, scale, size):
    model = _model(scale, bidirectional=bidirectional)
    lr = jax.ShapeDtypeStruct((2, 3) + size + (3,), jnp.float32)
    y = jax.eval_shape(lambda x: model.apply(model.init(jax.random.key(1), x), x), lr)  # no compile
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale, 3)
    assert y.dtype == jnp.float32


def test_unsupported_scale_and_single_frames_are_clear_errors():
    lr = jnp.zeros((1, 2, 8, 8, 3))
    with pytest.raises(ValueError, match="scale 5 is not supported"):
        _model(5).init(jax.random.key(0), lr)
    with pytest.raises(ValueError, match=r"\(N,T,h,w,3\)"):
        _model().init(jax.random.key(0), lr[:, 0])


def test_untrained_model_is_bicubic():
    model = _model(bidirectional=True)
    lr = jax.random.uniform(jax.random.key(0), (1, 3, 8, 12, 3))
    y = _apply(model, models.init_variables(model, jax.random.key(1), lr), lr)
    np.testing.assert_allclose(y, layers.per_frame(lambda x: layers.upsample_bicubic(x, 4), lr), atol=1e-6)


def test_scanned_cell_equals_a_python_loop():
    cell = convlstm.ConvLSTMCell(features=6)
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 9, 4))  # (N, T, h, w, C)
    carry = cell.initialize_carry((2, 7, 9), 6)
    params = cell.init(jax.random.key(1), carry, x[:, 0])["params"]
    params = model_helpers.perturb(params, jax.random.key(2), 0.3)
    scanned = convlstm.scan_propagate(6, 3, False, jnp.float32, reverse=False, unroll=1, name="p")
    flows = jnp.zeros(x.shape[:4] + (2,))
    _, hs = scanned.apply({"params": {"cell": params}}, carry, (x, flows))
    expected = []
    for t in range(5):
        carry, h = cell.apply({"params": params}, carry, x[:, t])
        expected.append(h)
    np.testing.assert_allclose(hs, jnp.stack(expected, 1), atol=1e-6)
    # the forget gate's bias starts at 1, the others at 0
    bias = cell.init(jax.random.key(1), cell.initialize_carry((2, 7, 9), 6), x[:, 0])["params"]["gates"]["bias"]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])


def test_forward_model_is_causal_and_bidirectional_is_not():
    clip = jax.random.uniform(jax.random.key(0), (1, 15, 12, 12, 3))
    fwd = _model()
    params = _active_params(fwd, clip[:, :7])
    apply = jax.jit(lambda p, x: fwd.apply({"params": p}, x))
    short, long = apply(params, clip[:, :7]), apply(params, clip)
    np.testing.assert_allclose(short, long[:, :7], atol=1e-5)
    assert float(jnp.abs(long[:, 7:] - long[:, 6:7]).max()) > 1e-3  # later frames are not copies

    bi = _model(bidirectional=True)
    bparams = _active_params(bi, clip[:, :7])
    bapply = jax.jit(lambda p, x: bi.apply({"params": p}, x))
    bshort, blong = bapply(bparams, clip[:, :7]), bapply(bparams, clip)
    # the backward pass carries the future: frame 0 changes when frames 7..14 exist
    assert float(jnp.abs(bshort[:, 0] - blong[:, 0]).max()) > 1e-4


def test_compiled_once_per_shape_and_program_size_independent_of_t():
    model = _model()
    params = models.init_variables(model, jax.random.key(1), jnp.zeros((1, 2, 8, 8, 3)))["params"]
    apply, traces = model_helpers.trace_counter(lambda p, x: model.apply({"params": p}, x))
    for t in (7, 7, 15, 15):
        apply(params, jax.random.uniform(jax.random.key(t), (1, t, 8, 8, 3)))
    assert len(traces) == 2  # one per clip length
    hlo = {
        t: jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, jnp.zeros((1, t, 8, 8, 3)))
        for t in (7, 15)
    }
    sizes = {t: len(lo.as_text()) for t, lo in hlo.items()}
    assert abs(sizes[15] - sizes[7]) < 0.02 * sizes[7], sizes  # a loop, not T copies of the step


def test_learns_a_fixed_batch():
    model = _model(2)
    lr, hr = model_helpers.smooth_clip(jax.random.key(0), (2, 3, 24, 24, 3), 2)
    first, last = model_helpers.fit_fixed_batch(model, lr, hr, steps=25)
    assert last < 0.92 * first, (first, last)  # measured 0.848 (starts at bicubic)


def test_bfloat16_compute_keeps_float32_params_and_output():
    lr = jax.random.uniform(jax.random.key(0), (1, 3, 12, 12, 3))
    f32, b16 = _model(), _model(dtype="bfloat16")
    params = _active_params(f32, lr)
    y32 = _apply(f32, {"params": params}, lr)
    y16 = _apply(b16, {"params": params}, lr)
    assert y16.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(jax.eval_shape(b16.init, jax.random.key(1), lr)))
    assert float(jnp.abs(y16 - y32).max()) < 0.05
