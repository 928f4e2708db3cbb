"""Training: the TrainState, the one train-step builder, and `train_and_evaluate`.

The same code runs on one CPU, several GPUs or a TPU slice: parameters are replicated and
each global batch is split over the mesh axis 'data' (`vsr_jax.sharding`); the jitted
step donates the old state. Checkpoints (Orbax) are saved every `checkpoint_every`
steps, at the end, and on SIGTERM/SIGINT; running the same command again resumes from
the newest usable one and gives the same parameters as an uninterrupted run. A step with
a non-finite loss or gradients is skipped; a run of them sends the loop back to the last
good checkpoint with a lower learning rate (`config.nonfinite`). README: "Resuming and
preemption".
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vsr_jax import checkpointing, config_lib, evaluate, losses, metrics, models, sharding
from vsr_jax.data import degrade, pipeline
from vsr_jax.errors import ConfigError, UserError
from vsr_jax.init_from import flow_modules, starting_weights, subtree


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


# ---------------------------------------------------------------------------- config


def validate_config(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Raises ConfigError naming the key and the fix for a config that cannot run.

    Runs before anything is compiled or written: unknown keys and wrong types
    (`config_lib.check_schema`), unknown names, sizes that cannot work together (a batch
    that does not split over `num_devices` (default: all) or the processes, a scale the
    model has no upsampler for, patches too small for the discriminator, T < 1).
    """
    config_lib.check_schema(config)
    try:
        model = config_lib.build_model(config)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(str(e).strip("'\"")) from None
    scales = getattr(type(model), "SCALES", None)
    if scales is not None and config.data.scale not in scales:
        raise ConfigError(
            f"data.scale={config.data.scale} is not supported by model {config.model.name!r}; "
            f"use one of {', '.join(map(str, scales))}"
        )
    for key in ("num_frames", "patch_size", "window_stride"):
        if int(config.data[key]) < 1:
            raise ConfigError(f"data.{key} must be >= 1, got {config.data[key]}")
    for key in ("batch_frames", "frame_stride", "preview_frames"):
        if int(config.eval[key]) < 1:
            raise ConfigError(f"eval.{key} must be >= 1, got {config.eval[key]}")
    nf = config.nonfinite
    if nf.action not in NONFINITE_ACTIONS:
        raise ConfigError(f"unknown nonfinite.action {nf.action!r}; use one of {', '.join(NONFINITE_ACTIONS)}")
    if int(nf.patience) < 1:
        raise ConfigError(f"nonfinite.patience must be >= 1, got {nf.patience}")
    if not 0.0 < float(nf.lr_factor) <= 1.0:
        raise ConfigError(f"nonfinite.lr_factor must be in (0, 1], got {nf.lr_factor}")
    if int(nf.max_restores) < 0:
        raise ConfigError(f"nonfinite.max_restores must be >= 0, got {nf.max_restores}")
    if config.data.name not in pipeline.DATASETS:
        raise ConfigError(f"unknown data.name {config.data.name!r}; available: {', '.join(pipeline.DATASETS)}")
    if config.data.degradation not in degrade.DEGRADATIONS:
        raise ConfigError(
            f"unknown data.degradation {config.data.degradation!r}; available: {', '.join(degrade.DEGRADATIONS)}"
        )
    if config.data.name == "video_folder" and not config.data.path:
        raise ConfigError("data.name=video_folder needs --config.data.path=DIR (a folder of your videos)")
    if config.data.name == "vimeo90k" and not config.data.manual_dir:
        raise ConfigError(
            "data.name=vimeo90k needs --config.data.manual_dir=DIR, the folder holding vimeo_septuplet.zip "
            "or its unpacked vimeo_septuplet/ (see README: Vimeo-90K)"
        )
    if config.loss.pixel not in losses.PIXEL_LOSSES:
        raise ConfigError(f"unknown loss.pixel {config.loss.pixel!r}; available: {', '.join(losses.PIXEL_LOSSES)}")
    if config.data.scale not in (2, 3, 4, 8):
        raise ConfigError(f"data.scale must be 2, 3, 4 or 8, got {config.data.scale}")
    for field in ("batch_size", "total_steps", "checkpoint_every", "keep_checkpoints", "log_every", "eval_every"):
        if int(config[field]) < 1:
            raise ConfigError(f"{field} must be >= 1, got {config[field]}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {config.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")
    try:
        _decay_steps(config)
    except ValueError:
        raise ConfigError(
            f"lr_decay_steps must be comma-separated step numbers, got {config.lr_decay_steps!r}"
        ) from None
    if any(int(p) < 1 for p in config.lr_restart_periods):
        raise ConfigError(f"lr_restart_periods must be positive step counts, got {tuple(config.lr_restart_periods)}")
    if config.optimizer not in ("adam", "adamw"):
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; use 'adam' or 'adamw'")
    if config.gan.loss and config.gan.loss not in losses.GAN_LOSSES:
        raise ConfigError(f"unknown gan.loss {config.gan.loss!r}; available: '' (off), {', '.join(losses.GAN_LOSSES)}")
    if config.gan.loss:
        from vsr_jax.models import discriminators

        if config.gan.discriminator not in discriminators.DISCRIMINATORS:
            names = ", ".join(sorted(discriminators.DISCRIMINATORS))
            raise ConfigError(f"unknown gan.discriminator {config.gan.discriminator!r}; available: {names}")
        if config.gan.discriminator == "spatio_temporal" and config.data.num_frames < 3:
            raise ConfigError("gan.discriminator=spatio_temporal needs data.num_frames >= 3 (it sees frame triplets)")
        discriminator_features(config)  # raises on a malformed gan.d_features
        if int(config.gan.d_steps) < 1:
            raise ConfigError(f"gan.d_steps must be >= 1, got {config.gan.d_steps}")
        _validate_spatio_temporal(config)
    if not 0.0 <= float(config.ema_decay) < 1.0:
        raise ConfigError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    if config.loss.frames not in LOSS_FRAMES:
        raise ConfigError(f"loss.frames must be one of {', '.join(LOSS_FRAMES)}, got {config.loss.frames!r}")
    if config.loss.frames == "center":
        clashing = [f"loss.{k}" for k in ("pingpong_weight", "flow_weight", "temporal_weight") if config.loss[k] > 0]
        if clashing or config.gan.loss:
            what = ", ".join(clashing + (["gan.loss"] if config.gan.loss else []))
            raise ConfigError(f"loss.frames=center scores one frame per clip; {what} need every frame: turn them off")
    for key in ("pingpong_weight", "flow_weight", "temporal_weight"):
        if config.loss[key] > 0 and config.data.num_frames < 2:
            raise ConfigError(f"loss.{key} needs clips: set data.num_frames >= 2")
    for key in ("flow_weight", "temporal_weight"):
        if config.loss[key] > 0 and not estimates_flow(config):
            raise ConfigError(
                f"loss.{key} needs a model that estimates flow (recurrent_gan, convlstm_vsr with align=True); "
                f"{config.model.name!r} does not: set loss.{key}=0"
            )
    _validate_flow_options(config)
    _validate_train_only(config)
    n = jax.device_count() if num_devices is None else int(num_devices)
    if config.batch_size % n:
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the number of devices ({n})")
    if config.batch_size % jax.process_count():
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the {jax.process_count()} processes")
    if config.gan.loss:  # the discriminator's smallest input: traced, not compiled
        hr = int(config.data.patch_size) * int(config.data.scale)
        frames = jax.ShapeDtypeStruct((1, int(config.data.num_frames), hr, hr, 3), jnp.float32)
        lr = jax.ShapeDtypeStruct(
            (1, int(config.data.num_frames), config.data.patch_size, config.data.patch_size, 3), jnp.float32
        )
        try:
            jax.eval_shape(Critic(config).init, jax.random.key(0), frames, lr)
        except ValueError as e:
            raise ConfigError(
                f"data.patch_size={config.data.patch_size} (HR {hr}x{hr}) is too small for gan.discriminator="
                f"{config.gan.discriminator!r}: {str(e).splitlines()[0]}; use larger patches"
            ) from None


def estimates_flow(config) -> bool:
    """Whether the config's model `sow`s its LR flows (`flow_to_prev`): recurrent_gan, convlstm_vsr with align."""
    model_class = models.get_model_class(config.model.name)
    return bool(getattr(model_class, "sows_flows", False) and config.model.get("align", True))


def _validate_spatio_temporal(config) -> None:
    """gan.warp_crop and gan.feature_matching_* (TecoGAN's D_s,t options); a warning when
    D_s,t cannot be motion-compensated (the model estimates no flow)."""
    gan, st = config.gan, config.gan.discriminator == "spatio_temporal"
    if not 0.0 < float(gan.warp_crop) <= 1.0:
        raise ConfigError(f"gan.warp_crop must be in (0, 1], got {gan.warp_crop}")
    if float(gan.feature_matching_weight) < 0:
        raise ConfigError(f"gan.feature_matching_weight must be >= 0, got {gan.feature_matching_weight}")
    for key, on in (("warp_crop", float(gan.warp_crop) != 1.0), ("feature_matching_weight", _fm_on(config))):
        if on and not st:
            raise ConfigError(f"gan.{key} needs gan.discriminator=spatio_temporal; leave it at its default")
    if _fm_on(config):
        feature_matching_weights(config)  # raises on a malformed or mis-sized list
    if st and not estimates_flow(config):
        logging.warning(
            "gan.discriminator=spatio_temporal: model %r estimates no flow, so D sees unwarped triplets "
            "(TecoGAN warps them with the generator's flow: recurrent_gan, convlstm_vsr with align=True)",
            config.model.name,
        )


# ------------------------------------------------------------------ state and step


LR_SCHEDULES = ("constant", "cosine", "cosine_restarts", "step")
LOSS_FRAMES = ("all", "center")
NONFINITE_ACTIONS = ("restore", "stop")


def _decay_steps(config) -> list[int]:
    return sorted(int(x) for x in str(config.lr_decay_steps).split(",") if x.strip())


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
        main = optax.piecewise_constant_schedule(lr, {max(s - warm, 0): factor for s in _decay_steps(config)})
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
    if flow and flow_options_set(config):
        direction = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2)
        if config.optimizer == "adamw":
            direction = optax.chain(direction, optax.add_decayed_weights(config.weight_decay))
        mul = float(config.flow_lr_mul)
        flow_tx = optax.chain(
            frozen_for(direction, int(config.fix_flow_steps)),
            optax.scale_by_learning_rate(lambda count: schedule(count) * mul),
        )
        labels = _module_labels(flow_modules(config), "flow", "rest")
        opt = optax.multi_transform({"rest": opt, "flow": flow_tx}, labels)
    elif flow and int(config.train_only_steps) > 0:
        direction = optax.scale_by_adam(b1=config.adam_b1, b2=config.adam_b2)
        if config.optimizer == "adamw":
            direction = optax.chain(direction, optax.add_decayed_weights(config.weight_decay))
        warm_tx = optax.chain(
            frozen_for(direction, int(config.train_only_steps)), optax.scale_by_learning_rate(schedule)
        )
        labels = _module_labels(config.train_only_modules, "train", "frozen")
        opt = optax.multi_transform({"train": opt, "frozen": warm_tx}, labels)
    if config.grad_clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt


def _module_labels(names, inside: str, outside: str):
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


def _abstract_model_params(config):
    """The params of the config's model at its training clip size (traced, not allocated)."""
    model = build_model(config)
    d = config.data
    lr = jax.ShapeDtypeStruct((1, int(d.num_frames), int(d.patch_size), int(d.patch_size), 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), lr)["params"]


def _validate_train_only(config) -> None:
    steps, names = int(config.train_only_steps), tuple(config.train_only_modules)
    if steps < 0:
        raise ConfigError(f"train_only_steps must be >= 0, got {steps}")
    if not steps:
        return
    if not names:
        raise ConfigError("train_only_steps needs train_only_modules (the modules that learn meanwhile)")
    if flow_options_set(config):
        raise ConfigError("train_only_steps and flow_lr_mul / fix_flow_steps cannot be combined; use one of them")
    abstract = _abstract_model_params(config)
    missing = [n for n in names if subtree(abstract, str(n)) is None]
    if missing:
        raise ConfigError(
            f"train_only_modules {missing} are not modules of {config.model.name!r} "
            f"(its top-level modules: {', '.join(sorted(abstract))})"
        )


def _validate_flow_options(config) -> None:
    if float(config.flow_lr_mul) < 0:
        raise ConfigError(f"flow_lr_mul must be >= 0, got {config.flow_lr_mul}")
    if int(config.fix_flow_steps) < 0:
        raise ConfigError(f"fix_flow_steps must be >= 0, got {config.fix_flow_steps}")
    spynet_init = str(config.model.get("spynet_init", ""))
    if not (flow_options_set(config) or spynet_init):
        return
    keys = [
        k
        for k, on in (
            ("flow_lr_mul", float(config.flow_lr_mul) != 1.0),
            ("fix_flow_steps", int(config.fix_flow_steps) > 0),
            ("model.spynet_init", bool(spynet_init)),
        )
        if on
    ]
    names = flow_modules(config)
    if not names:
        with_flow = ", ".join(n for n in models.available() if getattr(models.get_model_class(n), "flow_modules", ()))
        raise ConfigError(
            f"{' and '.join(keys)} act on a model's flow network; {config.model.name!r} has none "
            f"(models with one: {with_flow}): leave {' and '.join(keys)} at their defaults"
        )
    abstract = _abstract_model_params(config)
    if all(subtree(abstract, n) is None for n in names):
        align = ", model.align=False" if "align" in config.model and not config.model.align else ""
        raise ConfigError(
            f"{' and '.join(keys)} act on the flow network of {config.model.name!r}, which this config leaves out "
            f"(data.num_frames={config.data.num_frames}{align}): use clips of 2 or more frames"
            f"{' and model.align=True' if align else ''}, or leave them at their defaults"
        )


def build_model(config):
    return config_lib.build_model(config)


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


def _has_checkpoints(workdir: str) -> bool:
    directory = checkpointing.checkpoint_dir(workdir)
    return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def _with_weights(state: TrainState, weights: dict | None, mesh) -> TrainState:
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


def build_perceptual(config):
    """(perceptual(frozen, sr, hr) -> scalar, VGG params) for `loss.perceptual_weight` > 0,
    else (None, None). Raises UserError naming the file to get when the weights are missing."""
    lc = config.loss
    if float(lc.perceptual_weight) <= 0:
        return None, None
    from vsr_jax import vgg_weights
    from vsr_jax.models.vgg import VGG_WIDTHS, VGGFeatures

    names = [x.strip() for x in str(lc.perceptual_layers).split(",") if x.strip()]
    layer_weights = [float(x) for x in str(lc.perceptual_layer_weights).split(",") if x.strip()]
    if len(names) != len(layer_weights):
        raise ConfigError(
            f"loss.perceptual_layers has {len(names)} layers but loss.perceptual_layer_weights has "
            f"{len(layer_weights)} weights; give one weight per layer"
        )
    depth = int(lc.vgg_depth)
    if lc.vgg_weights:
        path = os.path.expanduser(lc.vgg_weights)  # published widths: a narrower file is an error
        params, input_mode = vgg_weights.load_vgg_params(path, depth, VGG_WIDTHS)
    elif lc.allow_random_vgg:
        logging.warning("perceptual loss on a RANDOM VGG%d (loss.allow_random_vgg=True): only for tests", depth)
        params, input_mode = vgg_weights.random_vgg_params(depth, jax.random.key(0)), "torch"
    else:
        raise ConfigError(
            f"loss.perceptual_weight > 0 needs VGG{depth} weights: --config.loss.vgg_weights=FILE with "
            f"vgg{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras) or a torchvision .pth "
            "(see README: VGG weights)"
        )
    module = VGGFeatures(
        depth=depth, layers=tuple(names), input_mode=input_mode, dtype=config.model.get("dtype", "float32")
    )
    weights = dict(zip(names, layer_weights, strict=True))
    criterion = lc.perceptual_criterion

    def perceptual(frozen, sr, hr):
        flat = lambda x: x.reshape((-1,) + x.shape[-3:])  # noqa: E731 - (N,T,H,W,3) -> (N·T,H,W,3)
        feats = module.apply({"params": frozen}, jnp.concatenate([flat(sr), flat(hr)]))
        half = flat(sr).shape[0]
        f_sr = {k: v[:half] for k, v in feats.items()}
        f_hr = {k: jax.lax.stop_gradient(v[half:]) for k, v in feats.items()}
        return losses.feature_distance(f_sr, f_hr, weights, criterion)

    return perceptual, params


def discriminator_features(config) -> tuple[int, ...]:
    """`gan.d_features` ("32,64,128") as widths; () when empty. ConfigError when malformed."""
    text = str(config.gan.d_features)
    if not text:
        return ()
    if not all(f.strip().isdigit() for f in text.split(",")):
        raise ConfigError(f"gan.d_features must be comma-separated widths like '32,64,128', got {text!r}")
    return tuple(int(f) for f in text.split(","))


def _fm_on(config) -> bool:
    return float(config.gan.feature_matching_weight) > 0


def feature_matching_weights(config) -> tuple[float, ...]:
    """`gan.feature_matching_layer_weights` as floats, one per D layer ("" = TecoGAN's for 4 layers)."""
    n = len(discriminator_features(config) or (0,) * 4)  # spatio_temporal's own widths: 4 layers
    text = str(config.gan.feature_matching_layer_weights)
    try:
        weights = tuple(float(w) for w in text.split(",")) if text else losses.TECOGAN_LAYER_WEIGHTS
    except ValueError:
        raise ConfigError(f"gan.feature_matching_layer_weights must be comma-separated numbers, got {text!r}") from None
    if len(weights) != n:
        raise ConfigError(
            f"gan.feature_matching_layer_weights needs one weight per discriminator layer ({n}), got {len(weights)}"
            + ("" if text else ": TecoGAN's default is for 4 layers, set them")
        )
    return weights


class Critic:
    """The discriminator and how frames are fed to it: `critic(d_params, frames, lr, flows)` -> logits.

    frames (N, T, H, W, 3); lr (N, T, h, w, 3). `spatio_temporal` is TecoGAN's D_s,t: it sees
    the first 3·⌊T/3⌋ frames as triplets, each as 27 channels: the triplet motion-compensated
    (`flows` (N, 3·⌊T/3⌋, H, W, 2) from `discriminators.triplet_flows`: the outer frames
    warped onto the middle one; None = zero flow), its centre `gan.warp_crop` kept; the
    triplet itself; and the bicubic-upsampled LR triplet. The others see every frame on its
    own. `warps`: whether the training step passes the generator's flows.
    """

    def __init__(self, config):
        from vsr_jax.models import discriminators, layers

        self.name = config.gan.discriminator
        self.scale = int(config.data.scale)
        kwargs = {"dtype": config.model.get("dtype", "float32")}
        if config.gan.d_features:
            kwargs["features"] = discriminator_features(config)
        self.module = discriminators.create_discriminator(self.name, **kwargs)
        self._upsample = lambda x: layers.per_frame(lambda f: layers.upsample_bicubic(f, self.scale), x)
        self._compensate = discriminators.motion_compensate
        self.keep = float(config.gan.warp_crop)
        self.warps = self.name == "spatio_temporal" and estimates_flow(config)

    def _inputs(self, frames, lr, flows=None):
        if self.name != "spatio_temporal":
            return frames, None
        t = 3 * (frames.shape[1] // 3)
        x = frames[:, :t]
        return self._compensate(x, flows, self.keep), jnp.concatenate([x, self._upsample(lr[:, :t])], axis=-1)

    def init(self, rng, frames, lr):
        x, cond = self._inputs(frames, lr)
        return self.module.init(rng, x, cond=cond)["params"]

    def __call__(self, d_params, frames, lr, flows=None, features: bool = False):
        """Logits; with `features` (spatio_temporal only), (logits, D's per-layer activations)."""
        x, cond = self._inputs(frames, lr, flows)
        extra = {"return_features": True} if features else {}
        return self.module.apply({"params": d_params}, x, cond=cond, train=True, **extra)


def make_train_step(model, tx, config, *, critic: Critic | None = None, d_tx=None, perceptual=None):
    """The one train step of every model family: (state, batch, frozen) -> (state, metrics).

    `batch` is {"lr": (B,T,h,w,3), "hr": (B,T,H,W,3)}; `frozen` holds fixed networks' params
    (VGG for the perceptual loss) so they are arguments of the compiled step, not constants.
    The generator minimises Σ weight · term over the configured terms: pixel; flow (FRVSR's
    warp loss on the model's LR flows, models that `sow` `flow_to_prev`); perceptual
    (`perceptual(frozen, sr, hr)`); ping-pong (the clip is played forward then backward
    through the model, TecoGAN); temporal (SR changes between warped neighbours match HR's);
    adversarial, and with `gan.feature_matching_weight` TecoGAN's layer loss on D's features
    (what D judges: `_judged`). The first `gan.pretrain_steps` steps are a warm-up on pixel and flow only
    (FRVSR/SRResNet pretraining); the other terms join after it. During the warm-up they are
    not computed at all (logged as 0), nor is the discriminator: `jit_train_step` compiles
    the two phases as two programs. With a `critic` the same step then makes `gan.d_steps`
    discriminator updates on the generator's output. EMA of the generator's params is
    updated every step when `ema_decay` > 0.
    """
    pixel = losses.pixel_loss(config.loss)
    weights = {
        "pixel": float(config.loss.pixel_weight),
        "flow": float(config.loss.flow_weight),
        "perceptual": float(config.loss.perceptual_weight),
        "pingpong": float(config.loss.pingpong_weight),
        "temporal": float(config.loss.temporal_weight),
        "adversarial": float(config.gan.weight),
        "feature_matching": float(config.gan.feature_matching_weight),
    }
    fm_weights = feature_matching_weights(config) if critic is not None and _fm_on(config) else None
    schedule = make_schedule(config)
    ema_decay = float(config.ema_decay)
    gan_kind = config.gan.loss
    pretrain_steps = int(config.gan.pretrain_steps)
    d_steps = int(config.gan.d_steps)
    r1_gamma = float(config.gan.r1_gamma)
    scale_factor = int(config.data.scale)
    needs_flow = weights["flow"] > 0 or weights["temporal"] > 0 or (critic is not None and critic.warps)
    center_only = config.loss.frames == "center"

    def generate(params, lr, pingpong: bool):
        """(output (N,T,H,W,3), or (N,2T−1,…) of the ping-pong sequence, or (N,1,…) of the middle
        frame with loss.frames=center; ping-pong loss (0 when not run); LR flows to the previous
        frame of the same frames, or None)."""
        x = losses.pingpong_sequence(lr) if pingpong else lr
        if center_only:
            middle = lr.shape[1] // 2
            if getattr(model, "accepts_output_frames", False):  # restores only that frame (EDVR)
                out = model.apply({"params": params}, x, train=True, output_frames=(middle,))
            else:
                out = model.apply({"params": params}, x, train=True)[:, middle : middle + 1]
            return out, jnp.zeros((), jnp.float32), None
        if needs_flow:
            out, inter = model.apply({"params": params}, x, train=True, mutable=["intermediates"])
            flows = inter["intermediates"]["flow_to_prev"][0]
        else:
            out, flows = model.apply({"params": params}, x, train=True), None
        return out, (losses.pingpong_loss(out) if pingpong else jnp.zeros((), jnp.float32)), flows

    def step(state: TrainState, batch, frozen=None, adversarial: bool = True):
        """One step; `adversarial` (static, a separate program per value) is False during
        the warm-up: only pixel and flow are computed and D is left alone. (Two programs
        rather than a `lax.cond`: XLA:CPU runs convolution gradients inside a conditional
        ~10x slower, as inside a loop.)"""
        lr, hr = batch["lr"], batch["hr"]
        zero = jnp.zeros((), jnp.float32)

        def objective(params):
            # the ping-pong pass plays the clip forward then backward (~2x the generator's work)
            out, pingpong, all_flows = generate(params, lr, adversarial and weights["pingpong"] > 0)
            t = lr.shape[1]
            sr, flows = out[:, :t], None if all_flows is None else all_flows[:, :t]
            target = hr[:, t // 2 : t // 2 + 1] if center_only else hr
            terms = {"pixel": pixel(sr, target)}
            if weights["flow"] > 0:
                terms["flow"] = losses.flow_warp_loss(lr, flows)
            if perceptual is not None and weights["perceptual"] > 0:
                terms["perceptual"] = perceptual(frozen, sr, target) if adversarial else zero
            if weights["pingpong"] > 0:
                terms["pingpong"] = pingpong
            if weights["temporal"] > 0:
                hr_flows = jax.lax.stop_gradient(losses.clip_flows_to_hr(flows, scale_factor))
                terms["temporal"] = losses.temporal_consistency(sr, hr, hr_flows) if adversarial else zero
            judged = None  # what D judges this step: (real, fake, lr, flows)
            if critic is not None:
                terms.update(adversarial=zero, **({} if fm_weights is None else {"feature_matching": zero}))
                if adversarial:
                    judged = _judged(model, critic, params, lr, hr, out, all_flows, scale_factor)
                    terms.update(_adversarial_terms(critic, state.d_params, judged, gan_kind, fm_weights))
            total = sum(jnp.asarray(weights[k], jnp.float32) * v for k, v in terms.items())
            return total, (terms, (sr, target), judged)

        lr_scale = state.guard["lr_scale"]
        (loss, (terms, (sr, target), judged)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        updates = jax.tree.map(lambda u: u * lr_scale, updates)  # Adam's step is linear in the rate
        params = optax.apply_updates(state.params, updates)
        new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        if state.ema is not None:
            new = new.replace(ema=jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p, state.ema, params))
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        out = {
            "loss": loss,
            **{f"loss_{k}": v for k, v in terms.items()},
            "psnr_rgb": jnp.mean(metrics.psnr(jnp.clip(sr, 0, 1), target, y_channel=False)),
            "grad_norm": grad_norm,
            "learning_rate": schedule(state.step) * lr_scale,
        }
        if critic is not None:
            d_loss = d_real = d_fake = zero  # the warm-up: D neither trained nor run
            if adversarial:
                real, fake, d_lr, d_flows = jax.lax.stop_gradient(judged)

                def d_objective(d_params):
                    real_logits = critic(d_params, real, d_lr, d_flows)
                    fake_logits = critic(d_params, fake, d_lr, d_flows)
                    total = losses.d_loss(gan_kind, real_logits, fake_logits)
                    if r1_gamma > 0:
                        r1 = losses.r1_penalty(lambda x: critic(d_params, x, d_lr, d_flows), real)
                        total = total + 0.5 * r1_gamma * r1
                    return total, (jnp.mean(real_logits), jnp.mean(fake_logits))

                d_params, d_opt_state = state.d_params, state.d_opt_state
                for _ in range(d_steps):
                    (d_loss, (d_real, d_fake)), d_grads = jax.value_and_grad(d_objective, has_aux=True)(d_params)
                    d_updates, d_opt_state = d_tx.update(d_grads, d_opt_state, d_params)
                    d_updates = jax.tree.map(lambda u: u * lr_scale, d_updates)
                    d_params = optax.apply_updates(d_params, d_updates)
                    finite = finite & jnp.isfinite(d_loss) & jnp.isfinite(optax.global_norm(d_grads))
                new = new.replace(d_params=d_params, d_opt_state=d_opt_state)
            out.update(loss_d=d_loss, d_real_logit=d_real, d_fake_logit=d_fake)
        new = _skip_unless(finite, new, state)
        out.update(nonfinite=(~finite).astype(jnp.float32), nonfinite_run=new.guard["bad_run"])
        return new, out

    step.pretrain_steps = pretrain_steps
    return step


def _judged(model, critic: Critic, params, lr, hr, out, flows, scale: int):
    """What the critic judges in an adversarial step: (real, fake, LR, D_s,t flows or None).

    `out`, `flows`: the generator's output and LR flows (None unless it sows them) on `lr`, or
    with the ping-pong pass on its ping-pong sequence (2T−1 frames). Per-frame critics judge
    the T frames. D_s,t judges what TecoGAN's does: the whole ping-pong sequence when there is
    one (real and LR extended alike), motion-compensated with the generator's flows (the
    frame after each triplet's middle one needs the flow back to it: the ping-pong
    sequence's own, read backwards; without one, the model's flows on the reversed clip),
    gradient stopped as TecoGAN does (D trains neither the flow network nor the generator
    through the flows).
    """
    from vsr_jax.models import discriminators

    t = lr.shape[1]
    if critic.name != "spatio_temporal":
        return hr, out[:, :t], lr, None
    if out.shape[1] != t:  # the ping-pong sequence
        lr, hr = losses.pingpong_sequence(lr), losses.pingpong_sequence(hr)
    if not critic.warps:
        return hr, out, lr, None
    if out.shape[1] != t:
        back = jnp.flip(flows, axis=1)  # a ping-pong sequence is its own reverse
    else:
        _, inter = model.apply({"params": params}, jnp.flip(lr, axis=1), train=True, mutable=["intermediates"])
        back = jnp.flip(inter["intermediates"]["flow_to_prev"][0], axis=1)
    return hr, out, lr, jax.lax.stop_gradient(discriminators.triplet_flows(flows, back, scale))


def _adversarial_terms(critic: Critic, d_params, judged, gan_kind: str, fm_weights) -> dict:
    """The generator's adversarial term and, with `fm_weights`, TecoGAN's layer loss on D's features."""
    real, fake, lr, flows = judged
    if fm_weights is None:
        real_logits = jax.lax.stop_gradient(critic(d_params, real, lr, flows))
        return {"adversarial": losses.g_loss(gan_kind, real_logits, critic(d_params, fake, lr, flows))}
    real_logits, real_feats = jax.lax.stop_gradient(critic(d_params, real, lr, flows, features=True))
    fake_logits, fake_feats = critic(d_params, fake, lr, flows, features=True)
    return {
        "adversarial": losses.g_loss(gan_kind, real_logits, fake_logits),
        "feature_matching": losses.feature_matching(real_feats, fake_feats, fm_weights),
    }


def _skip_unless(finite, new: TrainState, old: TrainState) -> TrainState:
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


def jit_train_step(step_fn, mesh, frozen=None):
    """Compiles `step_fn` over `mesh` (state replicated and donated, batch split) and binds
    the fixed networks' params `frozen`: returns (state, batch) -> (state, metrics).

    A step function with a warm-up (`step_fn.pretrain_steps` > 0) is compiled once per
    phase; the phase is read from `state.step` (one scalar fetched per step then)."""
    rep, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    jitted = jax.jit(
        step_fn,
        in_shardings=(rep, data, rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
        static_argnums=(3,),  # adversarial
    )
    frozen = jax.device_put(frozen, rep) if frozen is not None else None
    pretrain = int(getattr(step_fn, "pretrain_steps", 0))

    def run(state, batch):
        adversarial = pretrain <= 0 or int(jax.device_get(state.step)) >= pretrain
        return jitted(state, batch, frozen, adversarial)

    run.lower = lambda state, batch, adversarial=True: jitted.lower(
        state, batch, frozen, adversarial
    )  # for cost analysis
    return run


# -------------------------------------------------------------------------- the loop


class Preempted(Exception):
    """A stop signal arrived where the run cannot finish its step first (a second signal,
    or during the final evaluation, after the last checkpoint is on disk)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class TrainingDiverged(UserError):
    """Too many non-finite steps in a row (`config.nonfinite`)."""


class _StopSignals:
    """SIGTERM and SIGINT become a request, checked after each step: save, then stop.

    A second signal, or one during the final evaluation (the last checkpoint is already
    on disk), raises `Preempted` at once. In a multi-process run all processes must stop
    at the same step: SIGTERM is left to JAX's preemption service, which Orbax's
    `reached_preemption` reads (`_Loop.preempted`), and SIGINT to Python.
    """

    def __init__(self, multi_process: bool):
        self.signum: int | None = None
        self.immediate = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread() and not multi_process:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signum is not None or self.immediate:
            logging.warning("%s received: stopping now", name)
            raise Preempted(signum)
        logging.warning("%s received: saving a checkpoint after this step, then stopping (again: stop at once)", name)
        self.signum = signum

    def restore(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _check_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to workdir {workdir!r} ({e.strerror}); choose a writable --workdir") from None


def _local_copy(tree):
    """This process's copy of a replicated pytree, on one local device (for evaluation)."""
    return jax.tree.map(lambda a: a.addressable_data(0), tree)


def _log_start(mesh, config, start_step, num_params):
    logging.info(
        "backend=%s devices=%d (local %d) mesh=%s processes=%d (this is %d)",
        jax.default_backend(),
        jax.device_count(),
        jax.local_device_count(),
        dict(mesh.shape),
        jax.process_count(),
        jax.process_index(),
    )
    logging.info(
        "model=%s (%s parameters) data=%s x%d",
        config.model.name,
        f"{num_params:,}",
        config.data.name,
        config.data.scale,
    )
    if start_step:
        logging.info("Resuming from step %d", start_step)
    else:
        logging.info("Starting fresh (no checkpoint in the workdir)")


def state_fields(state: TrainState) -> dict:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def _config_changes(saved: dict, ours: dict) -> list[str]:
    """'key: old -> new' for every config key that differs (JSON forms compared)."""
    a = config_lib.flatten(json.loads(json.dumps(saved)))
    b = config_lib.flatten(json.loads(json.dumps(ours)))
    return [
        f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


_SHAPE_SECTIONS = ("model", "data", "gan", "optimizer", "ema_decay", "grad_clip_norm", "flow_lr_mul", "fix_flow_steps")


def _refuse_other_model(workdir: str, abstract: TrainState, config_dict: dict):
    """The `check` of `Checkpointer.restore_newest`: refuses a checkpoint whose arrays have
    other shapes than this config's state, naming the config keys that differ."""
    want = {k: v for k, v in checkpointing.leaf_shapes(abstract).items() if not k.startswith("guard/")}

    def check(step, saved_config, saved_metadata, saved_leaves):
        have = {k: v for k, v in saved_leaves.items() if not k.startswith("guard/")}  # older checkpoints: no guard
        if have == want:
            return
        changes = _config_changes(saved_config, config_dict)
        shaping = [c for c in changes if c.split(".")[0].split(":")[0] in _SHAPE_SECTIONS]
        if changes:
            raise checkpointing.CheckpointError(
                f"{workdir} holds checkpoints (step {step}) of a model with other shapes; the config differs in "
                f"{'; '.join((shaping or changes)[:6])} (checkpoint -> now): resume with the checkpoint's values, "
                "or use a new --workdir"
            )
        differ = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise checkpointing.CheckpointError(
            f"{workdir} holds checkpoints (step {step}) whose arrays differ from this code's model for the same "
            f"config ({len(differ)} arrays, e.g. {differ[0]}): they were written by vsr_jax "
            f"{saved_metadata.get('code_version', '(unknown)')}, this is {checkpointing.code_version()}; "
            "use a new --workdir or that version"
        )

    return check


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint), then evaluates.

    Returns the final held-out metrics (also written to WORKDIR/eval/metrics.json), or
    {"step", "preempted": True, "signal"} when a stop signal ended the run early (its
    checkpoint saved: the same call resumes it).
    """
    from clu import metric_writers

    validate_config(config)
    # Data first: a missing or corrupt dataset fails before anything is written.
    train_source = pipeline.make_source(config.data, "train")
    pipeline.ExampleMaker(train_source, config.data, config.seed)  # raises if the split has no windows
    eval_pairs = pipeline.load_clip_pairs(config.data, "test", int(config.eval.max_clips))
    perceptual, frozen = build_perceptual(config)  # a missing VGG file fails before anything is written
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir)
    is_chief = jax.process_index() == 0

    mesh = sharding.make_mesh()
    model = build_model(config)
    tx = make_optimizer(config)
    critic = Critic(config) if config.gan.loss else None
    d_tx = make_optimizer(config, learning_rate=config.gan.learning_rate, flow=False) if critic else None
    abstract = abstract_train_state(config, model, tx, mesh, critic, d_tx)
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(abstract.params))
    config_dict = config.to_dict()
    metadata = {
        "model": config.model.name,
        "scale": int(config.data.scale),
        "num_params": num_params,
        "code_version": checkpointing.code_version(),
        "dataset": pipeline.signature(train_source, config.data),
    }

    wants_weights = bool(config.init_from or config.model.get("spynet_init", ""))
    weights = None
    if wants_weights and not _has_checkpoints(workdir):  # a fresh run: weights that do not fit fail here
        weights, record = starting_weights(config, abstract.params)
        metadata.update(record)
    ckpt = checkpointing.Checkpointer(workdir, save_every=config.checkpoint_every, keep=config.keep_checkpoints)
    signals = _StopSignals(multi_process=jax.process_count() > 1)
    writer, finished = None, False
    try:
        found = ckpt.restore_newest(state_fields(abstract), check=_refuse_other_model(workdir, abstract, config_dict))
        if found:
            saved_metadata = found[3] or {}
            for key in ("init_from", "spynet_init"):  # where the run's weights came from, in every checkpoint
                if key in saved_metadata:
                    metadata[key] = saved_metadata[key]
                else:
                    metadata.pop(key, None)
            if wants_weights:
                logging.warning(
                    "resuming from step %d: init_from / model.spynet_init are not used (this run started from %s)",
                    found[1],
                    {k: saved_metadata[k] for k in ("init_from", "spynet_init") if k in saved_metadata} or "random",
                )
        elif wants_weights and weights is None:  # no usable checkpoint after all (damaged ones set aside)
            weights, record = starting_weights(config, abstract.params)
            metadata.update(record)

        def fresh_state():
            return _with_weights(create_train_state(config, model, tx, mesh, critic, d_tx), weights, mesh)

        state = _state_from(found, abstract, mesh) if found else fresh_state()
        start_step = int(jax.device_get(state.step))
        _log_start(mesh, config, start_step, num_params)
        if found:
            _log_differences(found, config_dict, metadata)
        if is_chief:
            _write_text(os.path.join(workdir, "config.json"), json.dumps(config_dict, indent=2))
        writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
        if start_step == 0:
            writer.write_hparams(config_lib.flatten(config_dict))
        step_fn = make_train_step(model, tx, config, critic=critic, d_tx=d_tx, perceptual=perceptual)
        loop = _Loop(
            config=config,
            state=state,
            train_step=jit_train_step(step_fn, mesh, frozen),
            fresh_state=fresh_state,
            abstract=abstract,
            mesh=mesh,
            ckpt=ckpt,
            writer=writer,
            source=train_source,
            signals=signals,
            config_dict=config_dict,
            metadata=metadata,
            preview=lambda state, step: _preview(model, state, config, eval_pairs, writer, step),
        )
        try:
            state, step, timing = loop.run()
        except Preempted as e:  # a second signal: no save
            ckpt.wait()
            newest = ckpt.latest_step()
            logging.warning("stopped at once by %s, without saving; the newest checkpoint is of step %s", e, newest)
            finished = True
            return {"step": newest or 0, "preempted": True, "signal": e.signum}
        ckpt.wait()  # the last checkpoint is on disk before anything else
        if loop.stopped_by is not None:
            result = _stopped(loop.stopped_by, step, workdir)
        else:
            signals.immediate = True  # from here a signal stops at once: the final checkpoint is saved
            try:
                result = _final_evaluation(model, state, config, eval_pairs, writer, workdir, step, timing)
            except Preempted as e:
                result = _stopped(e.signum, step, workdir)
        finished = True
        return result
    finally:
        signals.restore()
        ckpt.close(quiet=not finished)  # after an error: do not raise a second one over it
        if writer is not None:
            writer.flush()
            writer.close()


def _stopped(signum: int, step: int, workdir: str) -> dict:
    name = signal.Signals(signum).name
    logging.warning(
        "stopped by %s at step %d; checkpoint saved in %s", name, step, checkpointing.checkpoint_dir(workdir)
    )
    logging.warning("to resume, run the same command again (same --workdir): it continues from step %d", step)
    return {"step": step, "preempted": True, "signal": int(signum)}


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror}); free disk space or choose another --workdir") from None


def _state_from(found, abstract: TrainState, mesh) -> TrainState:
    """A TrainState from `Checkpointer.restore_newest`'s fields; a checkpoint from before
    the non-finite guard existed gets a fresh guard."""
    fields = dict(found[0])
    if fields.get("guard") is None and abstract.guard is not None:
        fields["guard"] = jax.device_put(new_guard(), sharding.replicated(mesh))
    return TrainState(**fields)


def _log_differences(found, config_dict: dict, metadata: dict) -> None:
    _, step, saved_config, saved_metadata = found
    changes = _config_changes(saved_config, config_dict)
    if changes:
        logging.info("config changed since the checkpoint of step %d: %s", step, "; ".join(changes))
    saved_data = saved_metadata.get("dataset")
    if saved_data and saved_data != metadata["dataset"]:
        logging.warning(
            "the training data changed since the checkpoint of step %d (%s -> %s): the resumed run will not see "
            "the batches an uninterrupted run would have",
            step,
            saved_data,
            metadata["dataset"],
        )
    version = saved_metadata.get("code_version")
    if version and version != metadata["code_version"]:
        logging.info("the checkpoint was written by vsr_jax %s; this is %s", version, metadata["code_version"])


class _Loop:
    """The training loop: steps, logging, previews, checkpoints, stop signals, and the
    non-finite guard's way back to the last good checkpoint."""

    def __init__(
        self,
        *,
        config,
        state,
        train_step,
        fresh_state,
        abstract,
        mesh,
        ckpt,
        writer,
        source,
        signals,
        config_dict,
        metadata,
        preview,
    ):
        self.config, self.state, self.train_step = config, state, train_step
        self.fresh_state, self.abstract, self.mesh = fresh_state, abstract, mesh
        self.ckpt, self.writer, self.source, self.signals = ckpt, writer, source, signals
        self.config_dict, self.metadata, self.preview = config_dict, metadata, preview
        self.stopped_by: int | None = None
        self.multi_process = jax.process_count() > 1

    def _batches(self, step: int):
        ds = pipeline.make_train_dataset(
            self.config,
            source=self.source,
            start_step=step,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        return ds.as_numpy_iterator()

    def _save(self, step: int, *, force: bool, bad_run: int = 0) -> None:
        if bad_run and not force:
            return  # no periodic checkpoint in the middle of non-finite steps
        if force or step % self.ckpt.save_every == 0:
            run = int(jax.device_get(self.state.guard["bad_run"]))
            self.ckpt.save(step, self.state, self.config_dict, {**self.metadata, "nonfinite_run": run}, force=True)

    def _preempted(self, step: int) -> bool:
        if self.signals.signum is None and self.multi_process and self.ckpt.reached_preemption(step):
            self.signals.signum = int(signal.SIGTERM)
        return self.signals.signum is not None

    def run(self) -> tuple[TrainState, int, dict]:
        from clu import periodic_actions
        from tqdm import tqdm

        config, writer = self.config, self.writer
        total = int(config.total_steps)
        start = step = int(jax.device_get(self.state.step))
        timing: dict = {}
        if step >= total:
            return self.state, step, timing
        is_chief = jax.process_index() == 0
        batches = self._batches(step)
        progress = lambda: periodic_actions.ReportProgress(  # noqa: E731 - a new one after going back
            num_train_steps=total, writer=writer, every_secs=None, every_steps=config.log_every
        )
        report = progress()
        bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=None if is_chief else True)
        pending, input_wait, bad_run = [], 0.0, 0
        t_first = time.time()
        t_steady = None
        while step < total:
            if self._preempted(step):  # before the first step too: a signal during start-up
                self._save(step, force=True)
                self.stopped_by = self.signals.signum
                break
            t_wait = time.perf_counter()
            local = next(batches)
            input_wait += time.perf_counter() - t_wait
            self.state, m = self.train_step(self.state, sharding.global_batch(local, self.mesh))
            step += 1
            if pending:  # keep one step in flight, so progress and ETA count finished steps
                jax.block_until_ready(pending[-1])
                bad_run = int(jax.device_get(pending[-1]["nonfinite_run"]))
            pending.append(m)
            if step == start + 1:
                jax.block_until_ready(m)
                logging.info("first step (compile + run) took %.1f s", time.time() - t_first)
                t_steady = time.time()
            if bad_run >= int(config.nonfinite.patience):
                step = self._recover(step - 1, bad_run)
                batches, pending, input_wait, bad_run = self._batches(step), [], 0.0, 0
                report = progress()
                bar.n = step
                bar.refresh()
                t_steady = None  # the steps/s below would count the replayed steps
                continue
            report(step)
            bar.update(1)
            if step % config.log_every == 0 or step == total:
                summary = _summarise(jax.device_get(pending))
                summary["input_wait_ms"] = 1000 * input_wait / len(pending)  # per step: > 0 means input-bound
                pending, input_wait = [], 0.0
                writer.write_scalars(step, summary)
                bar.set_postfix(loss=f"{summary['loss']:.4g}", psnr=f"{summary['psnr_rgb']:.2f}")
            if step % config.eval_every == 0 and step < total:
                self.preview(self.state, step)
            self._save(step, force=step == total, bad_run=bad_run)
        bar.close()
        jax.block_until_ready(self.state)
        if t_steady is not None and step > start + 1:  # steady state: after the first (compiling) step
            timing["train_steps_per_sec"] = (step - start - 1) / (time.time() - t_steady)
        return self.state, step, timing

    def _recover(self, bad_step: int, bad_run: int) -> int:
        """After `nonfinite.patience` skipped steps in a row: back to the newest checkpoint
        saved outside such a run (or to the initial state) with the learning rate ×
        `nonfinite.lr_factor`; or TrainingDiverged. Returns the step to continue from."""
        nf = self.config.nonfinite
        guard = jax.device_get(self.state.guard)
        restores = int(guard["restores"])
        what = (
            f"{bad_run} steps in a row up to step {bad_step} had a non-finite loss or gradients "
            f"(skipped; {int(guard['bad_total'])} in all)"
        )
        if nf.action == "stop" or restores >= int(nf.max_restores):
            after = f" after {restores} restores with lower learning rates" if restores else ""
            raise TrainingDiverged(
                f"training diverged: {what}{after}; lower --config.learning_rate, set --config.grad_clip_norm, "
                "or check the data (nonfinite.* in the config sets this policy)"
            )
        self.ckpt.wait()
        found = self.ckpt.restore_newest(
            state_fields(self.abstract), accept=lambda step, meta: step <= bad_step and not meta.get("nonfinite_run")
        )
        state = _state_from(found, self.abstract, self.mesh) if found else self.fresh_state()
        lr_scale = float(guard["lr_scale"]) * float(nf.lr_factor)
        new = {
            "lr_scale": np.float32(lr_scale),
            "bad_run": np.int32(0),
            "bad_total": np.int32(guard["bad_total"]),
            "restores": np.int32(restores + 1),
        }
        self.state = state.replace(guard=jax.device_put(new, sharding.replicated(self.mesh)))
        step = int(jax.device_get(self.state.step))
        logging.warning(
            "%s: went back to %s; learning rate now x%g of the schedule (restore %d of at most %d)",
            what,
            f"the checkpoint of step {step}" if found else "the initial state (no earlier checkpoint)",
            lr_scale,
            restores + 1,
            int(nf.max_restores),
        )
        return step


def _summarise(pending: list[dict]) -> dict:
    """Mean of each metric over the finite steps since the last log (NaN if none was)."""
    ok = [p for p in pending if not p.get("nonfinite")] or pending
    summary = {k: float(np.mean([p[k] for p in ok])) for k in pending[0]}
    summary["nonfinite"] = float(sum(float(p.get("nonfinite", 0)) for p in pending))  # skipped steps
    summary["nonfinite_run"] = float(pending[-1].get("nonfinite_run", 0))
    return summary


def _predictor(model, state, config):
    return evaluate.make_predictor(
        model,
        _local_copy(state.ema if state.ema is not None else state.params),
        num_frames=int(config.data.num_frames),
        batch_frames=int(config.eval.batch_frames),
    )


def _preview(model, state, config, pairs, writer, step) -> None:
    """Image grids (LR / bicubic / SR / HR) and their Y-PSNR on a few held-out frames."""
    predict = _predictor(model, state, config)
    rows = evaluate.preview_rows(predict, pairs, scale=int(config.data.scale))
    writer.write_images(step, {f"preview/{name}": img[None] for name, _, img in rows})


def _final_evaluation(model, state, config, pairs, writer, workdir, step, timing: dict) -> dict:
    predict = _predictor(model, state, config)
    t0 = time.time()
    result = evaluate.evaluate_clips(
        predict,
        pairs,
        scale=int(config.data.scale),
        crop_border=config_lib.crop_border(config),
        frame_stride=int(config.eval.frame_stride),
    )
    result.update(
        step=step,
        crop_border=config_lib.crop_border(config),
        dataset=f"{config.data.name}/test",
        devices=jax.device_count(),
        **timing,
    )
    logging.info("held-out evaluation (%d frames) took %.1f s", result["num_frames"], time.time() - t0)
    keys = [k for k in result if isinstance(result[k], float)]
    writer.write_scalars(step, {f"eval/{k}": result[k] for k in keys if k in result})
    if jax.process_index() == 0:
        out = os.path.join(workdir, "eval")
        os.makedirs(out, exist_ok=True)
        evaluate.write_json(result, os.path.join(out, "metrics.json"))
        figure = os.path.join(out, f"samples_step{step}.png")
        evaluate.save_figure(evaluate.preview_rows(predict, pairs, scale=int(config.data.scale)), figure)
        table = evaluate.format_table(result)
        what = "Y-PSNR / Y-SSIM" + (" / tOF (lower is better)" if "tof" in result else "")
        print(f"\nHeld-out {what} at step {step} (crop {result['crop_border']}):\n{table}\n")
        print(f"checkpoints: {checkpointing.checkpoint_dir(workdir)}")
        print(f"metrics:     {os.path.join(out, 'metrics.json')}")
        print(f"figure:      {figure}")
        print(f"tensorboard: tensorboard --logdir {workdir}")
    return result
