"""The TrainState (generator, EMA, discriminator, the non-finite guard), how it starts,
and its fields as saved in a checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax import sharding


@flax.struct.dataclass
class TrainState:
    """Everything a step changes. `step` counts finished optimizer steps.

    `ema` is the exponential moving average of the generator's params (`ema_decay` > 0;
    evaluation and inference use it); `d_params`/`d_opt_state` are the discriminator's
    (`gan.loss` set). Unused entries are None. `guard` is the non-finite guard's record
    (`new_guard`): the learning-rate multiplier, the skipped steps in a row and in all,
    and how many times the run went back to a checkpoint.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema: Any = None
    d_params: Any = None
    d_opt_state: Any = None
    guard: Any = None


def new_guard() -> dict:
    """The non-finite guard's scalars at the start of a run."""
    return {
        "lr_scale": jnp.ones((), jnp.float32),  # multiplies every update (lowered by each restore)
        "bad_run": jnp.zeros((), jnp.int32),  # non-finite steps in a row, skipped
        "bad_total": jnp.zeros((), jnp.int32),
        "restores": jnp.zeros((), jnp.int32),
    }


def _init_fn(config, model, tx, critic=None, d_tx=None):
    d = config.data
    dummy = jnp.zeros((1, d.num_frames, d.patch_size, d.patch_size, 3), jnp.float32)
    hr = d.patch_size * d.scale
    dummy_hr = jnp.zeros((1, d.num_frames, hr, hr, 3), jnp.float32)

    def init(rng):
        g_rng, d_rng = jax.random.split(rng)
        params = model.init(g_rng, dummy, train=False)["params"]
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), guard=new_guard())
        if float(config.ema_decay) > 0:
            state = state.replace(ema=params)
        if critic is not None:
            d_params = critic.init(d_rng, dummy_hr, dummy)
            state = state.replace(d_params=d_params, d_opt_state=d_tx.init(d_params))
        return state

    return init


def create_train_state(config, model, tx, mesh, critic=None, d_tx=None) -> TrainState:
    """Initialises parameters and optimizer states (G, EMA, D), replicated over `mesh`."""
    init = _init_fn(config, model, tx, critic, d_tx)
    with jax.threefry_partitionable(False):  # compiles in ~2 s instead of 5-20 s on CPU (models.init_variables)
        return jax.jit(init, out_shardings=sharding.replicated(mesh))(jax.random.key(config.seed))


def abstract_train_state(config, model, tx, mesh, critic=None, d_tx=None) -> TrainState:
    """`create_train_state`'s shapes, dtypes and shardings, traced, not compiled or run."""
    init = _init_fn(config, model, tx, critic, d_tx)
    with jax.threefry_partitionable(False):
        shapes = jax.eval_shape(init, jax.random.key(config.seed))
    rep = sharding.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), shapes)


def with_weights(state: TrainState, weights: dict | None, mesh) -> TrainState:
    """`state` with the params (and the EMA when kept) of the modules in `weights` ({"a/b":
    params} by path, "a" for a top-level one) replaced."""
    if not weights:
        return state
    rep = sharding.replicated(mesh)

    def put(tree):
        def replace(node, keys, value):
            node = dict(node)
            node[keys[0]] = (
                jax.tree.map(lambda a, v: jax.device_put(np.asarray(v, a.dtype), rep), node[keys[0]], value)
                if len(keys) == 1
                else replace(node[keys[0]], keys[1:], value)
            )
            return node

        for path, value in weights.items():
            tree = replace(tree, path.split("/"), value)
        return tree

    return state.replace(params=put(state.params), ema=put(state.ema) if state.ema is not None else None)


def state_fields(state: TrainState) -> dict:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def from_fields(fields: dict, abstract: TrainState, mesh) -> TrainState:
    """A TrainState from `Checkpointer.restore_newest`'s fields; a checkpoint from before
    the non-finite guard existed gets a fresh guard."""
    fields = dict(fields)
    if fields.get("guard") is None and abstract.guard is not None:
        fields["guard"] = jax.device_put(new_guard(), sharding.replicated(mesh))
    return TrainState(**fields)
