"""Non-finite steps: a step whose loss or gradients are NaN/inf is skipped and counted
(`skip_unless`); `nonfinite.patience` of them in a row send training back to the last good
checkpoint with a lower learning rate, or stop it (`recover`, `config.nonfinite`).

Why not `optax.apply_if_finite`: it guards one optimizer, so G and D would each skip on
their own, the EMA would still move, and its counters would live inside `opt_state` (a new
checkpoint layout). Here one test covers the generator, the discriminator and the EMA
together, and the step still advances (the batch is consumed, as in an uninterrupted run).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from vsr_jax import sharding
from vsr_jax.errors import UserError
from vsr_jax.train_state import Guard, TrainState, from_fields, state_fields


class TrainingDiverged(UserError):
    """Too many non-finite steps in a row (`config.nonfinite`)."""


def skip_unless(finite, new: TrainState, old: TrainState) -> TrainState:
    """`new` if the step was finite, else `old`'s networks and EMA (the step still
    advances); the guard counts the skipped steps."""
    keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(finite, x, y), a, b)  # noqa: E731
    guard = old.guard
    return new.replace(
        generator=keep(new.generator, old.generator),
        ema=keep(new.ema, old.ema),
        discriminator=keep(new.discriminator, old.discriminator),
        guard=guard.replace(
            bad_run=jnp.where(finite, 0, guard.bad_run + 1),
            bad_total=guard.bad_total + jnp.where(finite, 0, 1),
        ),
    )


def recover(
    config, state: TrainState, ckpt, abstract: TrainState, fresh_state, mesh, bad_step: int, bad_run: int
) -> TrainState:
    """After `nonfinite.patience` skipped steps in a row up to `bad_step`: the newest
    checkpoint saved outside such a run (or `fresh_state()`), its learning rate ×
    `nonfinite.lr_factor`; TrainingDiverged with `nonfinite.action=stop` or after
    `nonfinite.max_restores`."""
    nf = config.nonfinite
    guard = jax.device_get(state.guard)
    restores = int(guard.restores)
    what = (
        f"{bad_run} steps in a row up to step {bad_step} had a non-finite loss or gradients "
        f"(skipped; {int(guard.bad_total)} in all)"
    )
    if nf.action == "stop" or restores >= int(nf.max_restores):
        after = f" after {restores} restores with lower learning rates" if restores else ""
        raise TrainingDiverged(
            f"training diverged: {what}{after}; lower --config.learning_rate, set --config.grad_clip_norm, "
            "or check the data (nonfinite.* in the config sets this policy)"
        )
    ckpt.wait()
    found = ckpt.restore_newest(
        state_fields(abstract), accept=lambda step, meta: step <= bad_step and not meta.get("nonfinite_run")
    )
    back = from_fields(found[0], mesh) if found else fresh_state()
    lr_scale = float(guard.lr_scale) * float(nf.lr_factor)
    new = Guard(
        lr_scale=np.float32(lr_scale),
        bad_run=np.int32(0),
        bad_total=np.int32(guard.bad_total),
        restores=np.int32(restores + 1),
    )
    back = back.replace(guard=jax.device_put(new, sharding.replicated(mesh)))
    logging.warning(
        "%s: went back to %s; learning rate now x%g of the schedule (restore %d of at most %d)",
        what,
        f"the checkpoint of step {int(jax.device_get(back.step))}"
        if found
        else "the initial state (no earlier checkpoint)",
        lr_scale,
        restores + 1,
        int(nf.max_restores),
    )
    return back
