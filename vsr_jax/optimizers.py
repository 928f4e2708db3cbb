"""The optimizers: the learning-rate schedules and Adam/AdamW, with the flow network's own
group (`flow_lr_mul`, `fix_flow_steps`) or a few modules learning alone (`train_only_*`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vsr_jax.init_from import flow_modules


def decay_steps(config) -> list[int]:
    return sorted(int(s) for s in config.lr_decay_steps)


def make_schedule(config, learning_rate: float | None = None) -> optax.Schedule:
    """The learning rate at each step: linear warm-up over `warmup_steps`, then

    constant; cosine (decay to `lr_min_ratio`·peak at `total_steps`); cosine_restarts
    (cosine periods of `lr_restart_every` steps, or of the lengths `lr_restart_periods`, each
    restarting at the peak, as BasicSR's CosineAnnealingRestartLR); step (× `lr_decay_factor`
    at each of `lr_decay_steps`).
    """
    lr = float(config.learning_rate if learning_rate is None else learning_rate)
    warm, total = int(config.warmup_steps), int(config.total_steps)
    floor = float(config.lr_min_ratio)
    after = max(total - warm, 1)
    kind = config.lr_schedule
    if kind == "cosine":
        main = optax.cosine_decay_schedule(lr, after, alpha=floor)
    elif kind == "cosine_restarts":
        periods = [int(p) for p in config.lr_restart_periods]
        if not periods:
            period = int(config.lr_restart_every) or after
            periods = [period] * -(-after // period)
        main = optax.join_schedules(
            [optax.cosine_decay_schedule(lr, p, alpha=floor) for p in periods],
            [sum(periods[:i]) for i in range(1, len(periods))],
        )
    elif kind == "step":
        factor = float(config.lr_decay_factor)
        main = optax.piecewise_constant_schedule(lr, {max(s - warm, 0): factor for s in decay_steps(config)})
    else:
        main = optax.constant_schedule(lr)
    if not warm:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])


def make_optimizer(config, learning_rate: float | None = None, *, flow: bool = True) -> optax.GradientTransformation:
    """Adam/AdamW on the configured schedule (peak `learning_rate`, default the generator's).

    With `flow` (the generator's optimizer) and `flow_lr_mul` != 1 or `fix_flow_steps` > 0,
    the model's flow network (`flow_modules`) is a group of its own (`optax.multi_transform`):
    its Adam (or AdamW) direction stands still for the first `fix_flow_steps` updates (zero
    update, its moments and bias-correction count not advanced: `frozen_for`), and its rate
    is the schedule's × `flow_lr_mul`, read at the run's own update count (as BasicSR's
    param groups share one LR scheduler). The state is all in `opt_state`, so a resumed run
    freezes and unfreezes at the same step as an uninterrupted one. Without those options
    the optimizer (and its state's layout) is the plain one.
    """
    schedule = make_schedule(config, learning_rate)
    if config.optimizer == "adamw":
        opt = optax.adamw(schedule, b1=config.adam_b1, b2=config.adam_b2, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2)

    def frozen_group(steps: int, rate) -> optax.GradientTransformation:
        """Adam's (AdamW's) direction, still for its first `steps` updates, times `rate(count)`."""
        direction = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2)
        if config.optimizer == "adamw":
            direction = optax.chain(direction, optax.add_decayed_weights(config.weight_decay))
        return optax.chain(frozen_for(direction, steps), optax.scale_by_learning_rate(rate))

    if flow and flow_options_set(config):
        mul = float(config.flow_lr_mul)
        flow_tx = frozen_group(int(config.fix_flow_steps), lambda count: schedule(count) * mul)
        labels = module_labels(flow_modules(config), "flow", "rest")
        opt = optax.multi_transform({"rest": opt, "flow": flow_tx}, labels)
    elif flow and int(config.train_only_steps) > 0:
        warm_tx = frozen_group(int(config.train_only_steps), schedule)
        labels = module_labels(config.train_only_modules, "train", "frozen")
        opt = optax.multi_transform({"train": opt, "frozen": warm_tx}, labels)
    if config.grad_clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt


def module_labels(names, inside: str, outside: str):
    """params -> a tree of `inside` (under one of `names`: a top-level name or a path "a/b")
    or `outside` (the rest), for `optax.multi_transform`."""
    names = tuple(str(n) for n in names)

    def labels(params):
        def label(path, _):
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            return inside if any(name == n or name.startswith(n + "/") for n in names) else outside

        return jax.tree_util.tree_map_with_path(label, params)

    return labels


class FrozenState(NamedTuple):
    count: jax.Array  # updates seen (frozen ones included)
    inner: Any


def frozen_for(inner: optax.GradientTransformation, steps: int) -> optax.GradientTransformation:
    """`inner`, except that its first `steps` updates are zero and leave `inner`'s state as
    it was (Adam's moments and count do not see those gradients: after the freeze it starts
    as a fresh Adam, as BasicSR's frozen params, which get no gradient at all)."""

    def init(params):
        return FrozenState(jnp.zeros((), jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        new_updates, new_inner = inner.update(updates, state.inner, params)
        live = state.count >= steps
        new_updates = jax.tree.map(lambda u: jnp.where(live, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda a, b: jnp.where(live, a, b), new_inner, state.inner)
        return new_updates, FrozenState(optax.safe_int32_increment(state.count), new_inner)

    return optax.GradientTransformation(init, update)


def flow_options_set(config) -> bool:
    return float(config.flow_lr_mul) != 1.0 or int(config.fix_flow_steps) > 0
