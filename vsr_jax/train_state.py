"""The TrainState: one holder per trained network (the generator, with a GAN the
discriminator), the EMA of the generator's params and the non-finite guard; how it starts;
and its fields as a checkpoint stores them (`state_fields` / `from_fields`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vsr_jax import sharding


@flax.struct.dataclass
class Net:
    """A trained network: its params and its optimizer's state."""

    params: Any
    opt_state: Any

    def apply_gradients(self, grads, tx: optax.GradientTransformation, lr_scale) -> Net:
        """One `tx` update, scaled by the guard's `lr_scale` (Adam's step is linear in the rate)."""
        updates, opt_state = tx.update(grads, self.opt_state, self.params)
        updates = jax.tree.map(lambda u: u * lr_scale, updates)
        return Net(optax.apply_updates(self.params, updates), opt_state)


@flax.struct.dataclass
class Guard:
    """The non-finite guard's record (`nonfinite`)."""

    lr_scale: jax.Array  # multiplies every update (lowered by each restore)
    bad_run: jax.Array  # non-finite steps in a row, skipped
    bad_total: jax.Array  # skipped steps in all
    restores: jax.Array  # times the run went back to a checkpoint

    @classmethod
    def new(cls) -> Guard:
        """The guard at the start of a run."""
        return cls(
            lr_scale=jnp.ones((), jnp.float32),
            bad_run=jnp.zeros((), jnp.int32),
            bad_total=jnp.zeros((), jnp.int32),
            restores=jnp.zeros((), jnp.int32),
        )


@flax.struct.dataclass
class TrainState:
    """Everything a step changes. `step` counts finished optimizer steps.

    `ema` is the exponential moving average of the generator's params (`ema_decay` > 0;
    evaluation and inference use it), else None; `discriminator` is set with `gan.loss`.
    """

    step: jax.Array
    generator: Net
    guard: Guard
    ema: Any = None
    discriminator: Net | None = None

    # The names the checkpoint stores them under (`state_fields`).
    @property
    def params(self):
        return self.generator.params

    @property
    def opt_state(self):
        return self.generator.opt_state

    @property
    def d_params(self):
        return None if self.discriminator is None else self.discriminator.params

    @property
    def d_opt_state(self):
        return None if self.discriminator is None else self.discriminator.opt_state


def state_fields(state: TrainState) -> dict:
    """The checkpoint's layout: {step, params, opt_state, ema, d_params, d_opt_state, guard
    {lr_scale, bad_run, bad_total, restores}} (vsr-eval and vsr-upscale read params/ema by
    these names; older runs resume from it). Works on abstract states too."""
    return {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "ema": state.ema,
        "d_params": state.d_params,
        "d_opt_state": state.d_opt_state,
        "guard": None
        if state.guard is None
        else {f.name: getattr(state.guard, f.name) for f in dataclasses.fields(Guard)},
    }


def from_fields(fields: dict, mesh=None) -> TrainState:
    """`state_fields`' inverse; a checkpoint from before the non-finite guard existed gets a
    fresh guard (replicated over `mesh` when given)."""
    guard = fields.get("guard")
    if guard is None:
        guard = Guard.new()
        if mesh is not None:
            guard = jax.device_put(guard, sharding.replicated(mesh))
    elif not isinstance(guard, Guard):
        guard = Guard(**guard)
    d_params = fields.get("d_params")
    return TrainState(
        step=fields["step"],
        generator=Net(fields["params"], fields["opt_state"]),
        guard=guard,
        ema=fields.get("ema"),
        discriminator=None if d_params is None else Net(d_params, fields["d_opt_state"]),
    )


def _init_fn(config, model, tx, critic=None, d_tx=None):
    d = config.data
    dummy = jnp.zeros((1, d.num_frames, d.patch_size, d.patch_size, 3), jnp.float32)
    hr = d.patch_size * d.scale
    dummy_hr = jnp.zeros((1, d.num_frames, hr, hr, 3), jnp.float32)

    def init(rng):
        g_rng, d_rng = jax.random.split(rng)
        params = model.init(g_rng, dummy, train=False)["params"]
        state = TrainState(step=jnp.zeros((), jnp.int32), generator=Net(params, tx.init(params)), guard=Guard.new())
        if float(config.ema_decay) > 0:
            state = state.replace(ema=params)
        if critic is not None:
            d_params = critic.init(d_rng, dummy_hr, dummy)
            state = state.replace(discriminator=Net(d_params, d_tx.init(d_params)))
        return state

    return init


def create_train_state(config, model, tx, mesh, critic=None, d_tx=None) -> TrainState:
    """Initialises parameters and optimizer states (G, EMA, D), replicated over `mesh`."""
    init = _init_fn(config, model, tx, critic, d_tx)
    with jax.threefry_partitionable(False):  # compiles in seconds instead of tens of seconds on CPU
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

    return state.replace(
        generator=state.generator.replace(params=put(state.params)),
        ema=put(state.ema) if state.ema is not None else None,
    )
