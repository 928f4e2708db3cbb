"""Non-finite steps: a step whose loss or gradients are NaN/inf is skipped and counted;
a run of them sends training back to the last good checkpoint with a lower learning rate,
or stops it (`config.nonfinite`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vsr_jax.errors import UserError


def skip_unless(finite, new, old):
    """`new` if the step was finite, else `old`'s params, optimizer states and EMA (the
    step still advances: the batch is consumed); the guard counts the skipped steps."""
    keep = lambda a, b: jax.tree.map(lambda x, y: jnp.where(finite, x, y), a, b)  # noqa: E731
    guard = old.guard
    return new.replace(
        params=keep(new.params, old.params),
        opt_state=keep(new.opt_state, old.opt_state),
        ema=keep(new.ema, old.ema),
        d_params=keep(new.d_params, old.d_params),
        d_opt_state=keep(new.d_opt_state, old.d_opt_state),
        guard={
            **guard,
            "bad_run": jnp.where(finite, 0, guard["bad_run"] + 1),
            "bad_total": guard["bad_total"] + jnp.where(finite, 0, 1),
        },
    )


class TrainingDiverged(UserError):
    """Too many non-finite steps in a row (`config.nonfinite`)."""
