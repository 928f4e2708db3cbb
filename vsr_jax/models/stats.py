"""Parameter counts and FLOPs per output frame, from shapes alone (nothing is computed).

FLOPs come from XLA's cost analysis of the lowered forward pass. XLA counts the body of a
while loop once, so recurrent models (fields `unroll`) are lowered with their time loop
fully unrolled for the count. One multiply-add counts as 2 FLOPs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _abstract_variables(model, lr_shape):
    lr = jax.ShapeDtypeStruct(lr_shape, jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), lr)


def count_params(model, lr_shape=(1, 1, 32, 32, 3)) -> int:
    """Number of parameters of `model` built for LR input of `lr_shape` (N, T, h, w, 3)."""
    variables = _abstract_variables(model, lr_shape)
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(variables.get("params", {}))))


def unrolled(model, t: int):
    """`model` with its time loop unrolled over t frames (models with an `unroll` field), for
    counting FLOPs: XLA's cost analysis counts a while loop's body once. Same function and
    params; other models are returned as they are."""
    return model.clone(unroll=t) if "unroll" in model.__dataclass_fields__ else model


def program_flops(lowered) -> float:
    """FLOPs of a lowered (or compiled) program from XLA's cost analysis (0 when it has none)."""
    cost = lowered.cost_analysis()
    if isinstance(cost, list):  # older JAX: one dict per computation
        cost = cost[0]
    return float((cost or {}).get("flops", 0.0))


def flops_per_frame(model, lr_shape=(1, 7, 180, 320, 3)) -> float:
    """Forward FLOPs per output frame for LR input `lr_shape` (N, T, h, w, 3).

    Single-frame models are lowered on one frame; models with a time loop on all T frames
    (unrolled) and the total is divided by N·T.
    """
    n, t = lr_shape[:2]
    if "unroll" in model.__dataclass_fields__:
        model = unrolled(model, t)
    else:
        lr_shape, n, t = (1, 1) + tuple(lr_shape[2:]), 1, 1
    variables = _abstract_variables(model, lr_shape)
    lr = jax.ShapeDtypeStruct(lr_shape, jnp.float32)
    lowered = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, lr)
    return program_flops(lowered) / (n * t)
