"""convlstm_vsr's alignment warps the recurrent state onto the current frame, not away from it.

The clips move by whole pixels, and the flow comes from an exact block-matching estimator
written against `warp`'s documented contract (warp(supp, flow) ≈ ref) without using warp,
so the model's own wiring (which frame is ref, which way the state is warped, which flows
each pass gets) is what the tests check; the same run with the flow's sign flipped fails.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax import models
from vsr_jax.models import convlstm
from vsr_jax.models import flow as flow_lib

SHIFT = (2, 1)  # (dx, dy): each frame is the previous one moved 2 px right and 1 px down
SEARCH = 3  # the estimator's search window, in pixels


def moving_clip(t: int, h: int = 16, w: int = 20, seed: int = 0):
    """(1, t, h, w, 3): a random texture in [0, 0.5], frame k rolled by k·SHIFT."""
    base = np.random.default_rng(seed).uniform(0.0, 0.5, (h, w, 3)).astype(np.float32)
    dx, dy = SHIFT
    return jnp.asarray(np.stack([np.roll(base, (k * dy, k * dx), axis=(0, 1)) for k in range(t)])[None])


def translation_flow(ref, supp, sign: float = 1.0):
    """Exact flow for whole-pixel global motion: the (u, v) with supp[y + v, x + u] = ref[y, x]
    on the interior (`warp`'s contract), as a constant (N, h, w, 2) field times `sign`."""
    n, h, w, _ = ref.shape
    m = SEARCH
    candidates = [(u, v) for v in range(-m, m + 1) for u in range(-m, m + 1)]
    errors = jnp.stack(
        [
            jnp.abs(supp[:, m + v : h - m + v, m + u : w - m + u] - ref[:, m : h - m, m : w - m]).mean((1, 2, 3))
            for u, v in candidates
        ]
    )  # (candidates, N)
    best = jnp.asarray(candidates, jnp.float32)[jnp.argmin(errors, axis=0)]  # (N, 2)
    return sign * jnp.broadcast_to(best[:, None, None, :], (n, h, w, 2))


def test_align_state_undoes_the_frame_shift():
    lr = moving_clip(2)
    to_prev, _ = flow_lib.clip_flows(translation_flow, lr)
    # frame 1 maps onto frame 0 by (−dx, −dy): the estimator and clip_flows agree on the pairing
    np.testing.assert_array_equal(to_prev[0, 1, 0, 0], [-SHIFT[0], -SHIFT[1]])
    state = jnp.asarray(np.random.default_rng(1).uniform(0.1, 0.6, (1, 16, 20, 4)), jnp.float32)  # frame 0's
    moved = jnp.roll(state, (SHIFT[1], SHIFT[0]), axis=(1, 2))  # where frame 1's content is
    inner = (slice(None), slice(SHIFT[1], None), slice(SHIFT[0], None))  # zeros come in top/left

    c, h = convlstm.align_state((state, 2 * state), to_prev[:, 1])
    np.testing.assert_allclose(c[inner], moved[inner], atol=1e-6)
    np.testing.assert_allclose(h[inner], 2 * moved[inner], atol=1e-6)
    flipped, _ = convlstm.align_state((state, state), -to_prev[:, 1])
    assert float(jnp.abs(flipped - moved)[inner].mean()) > 0.1  # measured 0.21


def _accumulating_params(model, lr):
    """Parameters that make the model's hidden state a running, aligned sum of the frames.

    extract_conv copies RGB into the first 3 feature channels; each ConvLSTM cell keeps its
    (warped) cell state and adds tanh(features): c_t = align(c_{t−1}) + tanh(x_t), h_t = tanh(c_t).
    Aligned right, every earlier frame adds onto the current frame's pixels.
    """
    params = jax.tree.map(np.zeros_like, models.init_variables(model, jax.random.key(0), lr)["params"])
    f = model.features
    params["extract_conv"]["kernel"][1, 1, :3, :3] = np.eye(3)
    for direction in ("forward", "backward"):
        gates = params[direction]["cell"]["gates"]
        gates["kernel"][1, 1, :3, 2 * f : 2 * f + 3] = np.eye(3)  # g = x (input channels come first)
        gates["bias"][: 2 * f] = 30.0  # input and forget gates open (sigmoid(30) = 1 in float32)
        gates["bias"][3 * f :] = 30.0  # output gate open
    return params


def _hidden_states(model, params, lr):
    """The ConvLSTM outputs the reconstruction sees: the input of the `fusion` conv, (N, T, h, w, F·passes)."""
    seen = []

    def grab(next_fun, args, kwargs, context):
        if context.module.name == "fusion" and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(grab):
        model.apply({"params": params}, lr)
    return seen[0].reshape(lr.shape[:4] + seen[0].shape[-1:])


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["flow", "flipped_flow"])
def test_recurrent_state_follows_the_motion_in_both_passes(monkeypatch, sign):
    # The model's flow network replaced by the exact estimator (times `sign`).
    monkeypatch.setattr(flow_lib, "SpyNetLite", lambda **kw: lambda ref, supp: translation_flow(ref, supp, sign))
    t = 3
    lr = moving_clip(t)
    model = models.create_model(
        "convlstm_vsr", 2, {"features": 4, "extract_blocks": 0, "recon_blocks": 0, "bidirectional": True}
    )
    hidden = _hidden_states(model, _accumulating_params(model, lr), lr)
    forward, backward = hidden[..., :3], hidden[..., 4:7]
    frames = jnp.tanh(lr)
    # frame k has k+1 frames at or before it and t−k at or after it; the interior excludes
    # the (t−1)·shift band that zero padding or the roll's wrap reaches
    inner = (
        slice(None),
        slice((t - 1) * SHIFT[1], -(t - 1) * SHIFT[1]),
        slice((t - 1) * SHIFT[0], -(t - 1) * SHIFT[0]),
    )
    err_fwd = max(float(jnp.abs(forward[:, k] - jnp.tanh((k + 1) * frames[:, k]))[inner].max()) for k in range(t))
    err_bwd = max(float(jnp.abs(backward[:, k] - jnp.tanh((t - k) * frames[:, k]))[inner].max()) for k in range(t))
    if sign > 0:
        assert err_fwd < 1e-5 and err_bwd < 1e-5, (err_fwd, err_bwd)  # measured 0 (whole-pixel shifts)
    else:  # warped the wrong way, earlier frames land 2·shift off: the sums no longer line up
        assert err_fwd > 0.2 and err_bwd > 0.2, (err_fwd, err_bwd)  # measured 0.70, 0.62
