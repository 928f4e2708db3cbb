"""Self-ensemble (EDSR's ×8 test-time ensemble): the mean of a model's outputs for the 8
flips/transposes of its input, each output transformed back. The one implementation, used by
`vsr_jax.evaluate` (vsr-eval) and `vsr_jax.upscale.engine` (vsr-upscale); jax only, so the
upscaler can import it without the training stack or TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vsr_jax.models import layers

ALL = tuple(range(8))


def transforms(self_ensemble: bool) -> tuple[int, ...]:
    """The dihedral transforms a prediction averages over: all 8, or the identity alone."""
    return ALL if self_ensemble else (0,)


def dihedral_mean(fn: Callable, x, ks: Sequence[int] = ALL, states: Sequence | None = None):
    """(mean over k in `ks` of dihedral⁻¹(fn(dihedral(x, k))), new states or None).

    `x` has its spatial axes at (−3, −2). With `states` (one per transform: a recurrent
    model's state, kept per transform since each sees a differently oriented video),
    `fn(x_k, state_k)` returns (y_k, new state_k) and the new states come back in order.
    """
    total, new_states = 0.0, []
    for i, k in enumerate(ks):
        xk = layers.dihedral(x, k)
        if states is None:
            y = fn(xk)
        else:
            y, s = fn(xk, states[i])
            new_states.append(s)
        total = total + layers.dihedral(y, k, inverse=True)
    return total / len(ks), (new_states if states is not None else None)
