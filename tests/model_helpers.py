"""Helpers shared by the model tests: smooth synthetic frames and a fixed-batch fit."""

from __future__ import annotations

import functools

import jax
import optax

from vsr_jax import losses, models
from vsr_jax.models import layers


@functools.partial(jax.jit, static_argnums=0)
def apply(model, variables, x):
    """`model.apply(variables, x)`, compiled once per model and input shape."""
    return model.apply(variables, x)


@functools.partial(jax.jit, static_argnums=1)
def bicubic(x, scale):
    """The bicubic skip of the residual models, frame by frame: (N, T, h, w, C) -> ×scale."""
    return layers.per_frame(lambda f: layers.upsample_bicubic(f, scale), x)


def smooth_clip(key, shape, scale: int):
    """A smooth random HR clip of `shape` (N, T, H, W, 3) and its ×scale box-free LR (strided)."""
    n, t, h, w, c = shape
    coarse = jax.random.uniform(key, (n, t, h // 2, w // 2, c))
    hr = jax.image.resize(coarse, shape, "linear")
    return hr[:, :, ::scale, ::scale], hr


def fit_fixed_batch(model, lr, hr, *, steps: int = 30, learning_rate: float = 1e-3, seed: int = 1):
    """Adam on MSE for `steps` steps on one batch; returns (first loss, last loss)."""
    params = models.init_variables(model, jax.random.key(seed), lr)["params"]
    tx = optax.adam(learning_rate)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt):
        loss, g = jax.value_and_grad(lambda p: losses.mse(model.apply({"params": p}, lr, train=True), hr))(params)
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    losses_seen = []
    for _ in range(steps):
        params, opt, loss = step(params, opt)
        losses_seen.append(float(loss))
    return losses_seen[0], losses_seen[-1]


def perturb(params, key, scale: float = 0.05):
    """Adds N(0, scale²) noise to every parameter, so zero-initialised layers are active too."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    )


def trace_counter(fn):
    """jax.jit(fn) plus a list that grows by one each time JAX traces (compiles) it."""
    traces = []

    def counted(*args):
        traces.append(1)
        return fn(*args)

    return jax.jit(counted), traces
