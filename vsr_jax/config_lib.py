"""The fields every config has, and their checks. Recipes in `configs/*.py` start here.

A recipe file is `def get_config(): config = config_lib.base_config(); ...; return config`.
The config is locked, so a misspelt key on the command line (`--config.totl_steps=5`)
is an error, not a silent new field. Lists are tuples: `--config.lr_decay_steps=100,200`,
`--config.gan.d_features="(32,64)"`, `--config.gan.d_features="()"`; names quoted,
`--config.loss.perceptual_layers="('conv2_2','conv5_4')"`.

`validate` checks a config section by section before a run compiles or writes anything
(over 500 lines with them: each check sits with the fields it reads, not in the trainer).
"""

from __future__ import annotations

import ml_collections

from vsr_jax.errors import ConfigError


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 16  # global, over all devices and processes
    c.total_steps = 10_000
    c.learning_rate = 1e-3
    c.lr_schedule = "constant"  # constant | cosine | cosine_restarts | step
    c.warmup_steps = 0  # linear warm-up from 0 (every schedule)
    c.lr_restart_every = 0  # cosine_restarts: period in steps (BasicSR's CosineAnnealingRestartLR); 0 = total_steps
    c.lr_restart_periods = ()  # cosine_restarts with periods of these lengths instead (BasicSR's `periods`)
    c.lr_min_ratio = 0.0  # cosine*: the floor as a fraction of the peak (BasicSR eta_min)
    c.lr_decay_steps = ()  # step: the steps where the rate is multiplied by lr_decay_factor
    c.lr_decay_factor = 0.5
    c.optimizer = "adam"  # adam | adamw
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.weight_decay = 0.0
    c.grad_clip_norm = 0.0  # 0 = off
    # The model's flow network (its `flow_modules`: basicvsr's spynet, convlstm_vsr's and
    # recurrent_gan's flownet) trains at learning_rate × flow_lr_mul, and not at all for the
    # first fix_flow_steps updates (params and its Adam state kept) — BasicSR's BasicVSR: 0.125, 5000.
    c.flow_lr_mul = 1.0
    c.fix_flow_steps = 0
    # For the first train_only_steps updates only these modules (top-level param names or
    # paths) learn; the rest is frozen, params and Adam state kept — BasicSR's EDVR: tsa_iter
    # 50000 with ("fusion",), the TSA module on a model started from its woTSA run.
    c.train_only_modules = ()
    c.train_only_steps = 0
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.log_every = 50
    c.eval_every = 1000
    # A fresh run starts from these weights (params only; optimizer fresh, step 0; EMA from them):
    # a run folder (its newest checkpoint), a .pth/.npz weight file, or a published model's name
    # (`python -m vsr_jax.pretrained list`). They must fit the config's model. A resumed run ignores it.
    c.init_from = ""

    c.model = ml_collections.ConfigDict()
    c.model.name = "unet"

    c.data = ml_collections.ConfigDict()
    c.data.name = "sample"
    c.data.scale = 4
    c.data.num_frames = 7
    c.data.patch_size = 64  # LR patch side; HR patches are patch_size * scale
    c.data.window_stride = 1  # frames between the starts of consecutive training windows
    c.data.degradation = "bi"  # bi (MATLAB bicubic) | bd (MATLAB blur σ1.6 + subsample) | bd_duf (BasicSR DUF)
    c.data.augment = True  # random flips and transpose (same for every frame of a clip)
    c.data.temporal_reverse = False  # also play clips backwards at random (video models)
    c.data.noise_sigma = 0.0  # Gaussian noise on LR, 0–255 scale (0 = off)
    c.data.jpeg_quality = 0  # JPEG-compress LR at this quality (0 = off)
    c.data.parallel_calls = 0  # batches built at once by the input pipeline; 0 = tf.data AUTOTUNE
    c.data.lr_cache_gb = 4.0  # whole-frame LR of array clips made once per run, up to this size (0 = off)
    # video_folder: your own videos (or folders of frames) under `path`
    c.data.path = ""
    c.data.cache_dir = ""  # decoded frames; default ~/.cache/vsr_jax
    c.data.cut_threshold = 30.0  # mean |frame difference| (0–255) above which a scene cut is declared
    c.data.val_percent = 10  # share of files held out for evaluation (by a hash of the file name)
    c.data.reds_val = "REDS4"  # reds (data.path = ROOT with train_sharp/): held-out clips, REDS4 | official (240-269)
    # TFDS datasets (vimeo90k, cats_vs_dogs)
    c.data.manual_dir = ""  # vimeo90k: where vimeo_septuplet.zip (or its unpacked folder) is
    c.data.tfds_data_dir = ""  # where TFDS keeps prepared datasets; default ~/tensorflow_datasets

    c.loss = ml_collections.ConfigDict()
    c.loss.pixel = "mse"  # mse | l1 | charbonnier
    c.loss.pixel_weight = 1.0
    # all | center: the loss sees every frame, or only each clip's middle one (EDVR's recipe:
    # its ground truth is the centre frame; models that can restore only that frame do)
    c.loss.frames = "all"
    c.loss.charbonnier_eps = 1e-3
    # perceptual loss on VGG features (SRGAN/ESRGAN); needs loss.vgg_weights (see README)
    c.loss.perceptual_weight = 0.0  # 0 = off
    c.loss.vgg_weights = ""  # Keras *_notop.h5, torchvision .pth or our .npz (vsr_jax.tools.convert_vgg)
    c.loss.vgg_depth = 19  # 16 | 19
    c.loss.perceptual_layers = ("conv5_4",)  # VGG layers (conv* before ReLU, relu* after)
    c.loss.perceptual_layer_weights = (1.0,)  # one per layer
    c.loss.perceptual_criterion = "l1"  # l1 | mse | charbonnier
    c.loss.allow_random_vgg = False  # tests and smoke runs only: random VGG weights, with a warning
    c.loss.pingpong_weight = 0.0  # TecoGAN ping-pong loss (recurrent video models); 0 = off
    c.loss.flow_weight = 0.0  # FRVSR warp loss on the model's LR flows (models that sow flow_to_prev)
    c.loss.temporal_weight = 0.0  # SR vs HR change between neighbours warped by the model's flows

    c.ema_decay = 0.0  # EMA of the generator's params, used for evaluation; 0 = off

    c.gan = ml_collections.ConfigDict()
    c.gan.loss = ""  # "" = no discriminator | vanilla | lsgan | hinge | ragan
    c.gan.weight = 5e-3  # weight of the generator's adversarial term
    c.gan.discriminator = "vgg"  # vgg | patch | spatio_temporal
    c.gan.d_features = ()  # the discriminator's block widths (() = its published ones)
    c.gan.learning_rate = 1e-4  # the discriminator's (same schedule shape as the generator's)
    c.gan.d_steps = 1  # discriminator updates per generator update
    c.gan.pretrain_steps = 0  # warm-up steps on pixel (+ flow) loss only; the other terms start after
    c.gan.r1_gamma = 0.0  # R1 gradient penalty weight γ (penalty γ/2 · E‖∇D(real)‖²); 0 = off
    # spatio_temporal: the centre fraction of the motion-compensated triplet it sees (the border
    # zeroed; TecoGAN's crop_dt 0.75); 1 = all of it
    c.gan.warp_crop = 1.0
    # spatio_temporal: TecoGAN's "layer loss", an L1 between D's features on real and fake added to
    # the generator's loss with this weight; 0 = off. Per-layer weights, one per D layer
    # (() = TecoGAN's 0.02/12, 0.02/14, 0.02/24, 0.02/100 for a 4-layer D)
    c.gan.feature_matching_weight = 0.0
    c.gan.feature_matching_layer_weights = ()

    c.eval = ml_collections.ConfigDict()
    c.eval.crop_border = -1  # pixels cut from each edge before PSNR/SSIM; -1 = data.scale
    c.eval.frame_stride = 1  # evaluate every k-th held-out frame
    c.eval.batch_frames = 8  # frames per forward pass in evaluation
    c.eval.max_clips = 0  # evaluate at most this many held-out clips (0 = all)

    # A step whose loss or gradients are not finite (NaN/inf) is skipped: params, optimizer
    # states and EMA stay as they were, and it is counted (logged as nonfinite_*).
    c.nonfinite = ml_collections.ConfigDict()
    c.nonfinite.patience = 10  # this many skipped steps in a row trigger `action`
    c.nonfinite.action = "restore"  # restore: back to the last good checkpoint, LR × lr_factor | stop
    c.nonfinite.lr_factor = 0.5  # restore: the learning rate's multiplier after each restore
    c.nonfinite.max_restores = 3  # restore: after this many, stop
    return c


_KIND_NAMES = {
    "int": "an integer",
    "number": "a number",
    "bool": "a boolean",
    "sequence": "a sequence",
    "str": "a string",
}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number" if isinstance(value, float) else "int"
    if isinstance(value, (list, tuple)):
        return "sequence"
    return type(value).__name__


def check_schema(config) -> None:
    """Raises ConfigError for a key the base config does not have (a typo) or a value of
    another type than its default's, naming the key. `model.*` holds the model's own
    options, which the model checks (`models.create_model`)."""
    import difflib

    base = flatten(base_config().to_dict(), keep_sequences=True)
    known = set(base)
    for key, value in flatten(config.to_dict(), keep_sequences=True).items():
        if key.startswith("model."):
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}")
        want, have = _kind(base[key]), _kind(value)
        if have != want and not (want == "number" and have == "int"):
            raise ConfigError(f"config key {key!r} must be {_KIND_NAMES[want]}, got {value!r} ({type(value).__name__})")


# `config.model` fields that are the trainer's, not the module's: how its params start.
# model.spynet_init: a SpyNet weight file or published name (spynet_sintel_final) loaded into
# the model's flow network when a run starts fresh (basicvsr).
TRAINING_MODEL_KEYS = ("name", "spynet_init")


def model_kwargs(config) -> dict:
    """The model's own options: every `config.model` field except `name` (and the trainer's
    TRAINING_MODEL_KEYS)."""
    return {k: v for k, v in config.model.to_dict().items() if k not in TRAINING_MODEL_KEYS}


# Fields that were comma-separated strings before they became tuples (the element type each
# holds): `upgrade` turns a saved config's old strings into tuples.
_FORMER_STRINGS = {
    "lr_decay_steps": int,
    "loss.perceptual_layers": str,
    "loss.perceptual_layer_weights": float,
    "gan.d_features": int,
    "gan.feature_matching_layer_weights": float,
}
_REMOVED = ("eval.preview_frames",)  # validated once, never read


def upgrade(saved: dict) -> dict:
    """A config dict as saved by an older vsr_jax, in today's form: the former
    comma-separated strings as tuples ("" -> ()), removed fields dropped. Today's form is
    returned unchanged (a copy)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in saved.items()}
    for key, kind in _FORMER_STRINGS.items():
        *group, name = key.split(".")
        node = out[group[0]] if group else out
        if isinstance(node, dict) and isinstance(node.get(name), str):
            node[name] = tuple(kind(x.strip()) for x in node[name].split(",") if x.strip())
    for key in _REMOVED:
        group, name = key.split(".")
        if isinstance(out.get(group), dict):
            out[group].pop(name, None)
    return out


def build_model(config, **overrides):
    """The config's model (`config.model.name` at `data.scale` with `model_kwargs`);
    `overrides` replace model options (e.g. dtype="bfloat16")."""
    from vsr_jax import models

    kwargs = {**model_kwargs(config), **overrides}
    return models.create_model(config.model.name, int(config.data.scale), kwargs)


def crop_border(config) -> int:
    return int(config.data.scale) if config.eval.crop_border < 0 else int(config.eval.crop_border)


def flatten(d: dict, prefix: str = "", *, keep_sequences: bool = False) -> dict:
    """{"model": {"name": "unet"}} -> {"model.name": "unet"}; sequences become strings
    (unless `keep_sequences`)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + ".", keep_sequences=keep_sequences))
        else:
            out[key] = str(v) if isinstance(v, (list, tuple)) and not keep_sequences else v
    return out


# ------------------------------------------------------------------------ validation
# The training stack (jax, the models, the data pipeline, the discriminator) is imported inside the
# checks that need it: evaluate/ and upscale/ import this module without it.

LR_SCHEDULES = ("constant", "cosine", "cosine_restarts", "step")
LOSS_FRAMES = ("all", "center")
NONFINITE_ACTIONS = ("restore", "stop")


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
    """Raises ConfigError naming the key and the fix for a config that cannot run.

    Runs before anything is compiled or written: unknown keys and wrong types
    (`check_schema`), unknown names, sizes that cannot work together (a batch that does not
    split over `num_devices` (default: all) or the processes, a scale the model has no
    upsampler for, patches too small for the discriminator, T < 1).
    """
    check_schema(config)
    _validate_model(config)
    _validate_data(config)
    _validate_eval(config)
    _validate_nonfinite(config)
    _validate_loss(config)
    _validate_run_lengths(config)
    _validate_optimizer(config)
    _validate_gan(config)
    _validate_flow_options(config)
    _validate_train_only(config)
    _validate_devices(config, num_devices)
    _validate_critic_input(config)


def _validate_model(config) -> None:
    try:
        model = build_model(config)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(str(e).strip("'\"")) from None
    scales = getattr(type(model), "SCALES", None)
    if scales is not None and config.data.scale not in scales:
        raise ConfigError(
            f"data.scale={config.data.scale} is not supported by model {config.model.name!r}; "
            f"use one of {', '.join(map(str, scales))}"
        )


def _validate_data(config) -> None:
    from vsr_jax.data import degrade, pipeline

    _at_least(config, 1, "data.num_frames", "data.patch_size", "data.window_stride")
    _at_least(config, 0, "data.parallel_calls")
    _at_least(config, 0, "data.lr_cache_gb", kind=float)
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
    if config.data.scale not in (2, 3, 4, 8):
        raise ConfigError(f"data.scale must be 2, 3, 4 or 8, got {config.data.scale}")


def _validate_eval(config) -> None:
    _at_least(config, 1, "eval.batch_frames", "eval.frame_stride")


def _validate_nonfinite(config) -> None:
    nf = config.nonfinite
    if nf.action not in NONFINITE_ACTIONS:
        raise ConfigError(f"unknown nonfinite.action {nf.action!r}; use one of {', '.join(NONFINITE_ACTIONS)}")
    _at_least(config, 1, "nonfinite.patience")
    if not 0.0 < float(nf.lr_factor) <= 1.0:
        raise ConfigError(f"nonfinite.lr_factor must be in (0, 1], got {nf.lr_factor}")
    _at_least(config, 0, "nonfinite.max_restores")


def _validate_loss(config) -> None:
    from vsr_jax import losses

    if config.loss.pixel not in losses.PIXEL_LOSSES:
        raise ConfigError(f"unknown loss.pixel {config.loss.pixel!r}; available: {', '.join(losses.PIXEL_LOSSES)}")
    if config.loss.frames not in LOSS_FRAMES:
        raise ConfigError(f"loss.frames must be one of {', '.join(LOSS_FRAMES)}, got {config.loss.frames!r}")
    if config.loss.frames == "center":
        clashing = [f"loss.{k}" for k in ("pingpong_weight", "flow_weight", "temporal_weight") if config.loss[k] > 0]
        if clashing or config.gan.loss:
            what = ", ".join(clashing + (["gan.loss"] if config.gan.loss else []))
            raise ConfigError(f"loss.frames=center scores one frame per clip; {what} need every frame: turn them off")
    if float(config.loss.perceptual_weight) > 0:
        perceptual_layers(config.loss)
    for key in ("pingpong_weight", "flow_weight", "temporal_weight"):
        if config.loss[key] > 0 and config.data.num_frames < 2:
            raise ConfigError(f"loss.{key} needs clips: set data.num_frames >= 2")
    for key in ("flow_weight", "temporal_weight"):
        if config.loss[key] > 0 and not estimates_flow(config):
            raise ConfigError(
                f"loss.{key} needs a model that estimates flow (recurrent_gan, convlstm_vsr with align=True); "
                f"{config.model.name!r} does not: set loss.{key}=0"
            )


def perceptual_layers(lc) -> dict:
    """{VGG layer: weight} from `loss.perceptual_layers` and `loss.perceptual_layer_weights`;
    ConfigError naming the key when they do not fit."""
    from vsr_jax.models.vgg import vgg_layer_names

    if int(lc.vgg_depth) not in (16, 19):
        raise ConfigError(f"loss.vgg_depth must be 16 or 19, got {lc.vgg_depth}")
    names, weights = tuple(lc.perceptual_layers), tuple(lc.perceptual_layer_weights)
    if not names or any(n not in vgg_layer_names(int(lc.vgg_depth)) for n in names):
        raise ConfigError(
            f"loss.perceptual_layers must name VGG{lc.vgg_depth} layers like conv5_4 or relu2_2, got {names!r} "
            "(on the command line: --config.loss.perceptual_layers=\"('conv2_2','conv5_4')\")"
        )
    if not _all(weights, float):
        raise ConfigError(f"loss.perceptual_layer_weights must be numbers, got {weights!r}")
    if len(names) != len(weights):
        raise ConfigError(
            f"loss.perceptual_layers has {len(names)} layers but loss.perceptual_layer_weights has "
            f"{len(weights)} weights; give one weight per layer"
        )
    return {n: float(w) for n, w in zip(names, weights, strict=True)}


def _at_least(config, low, *keys: str, kind=int) -> None:
    """ConfigError naming the first of `keys` ("a.b") whose value is below `low`."""
    for key in keys:
        value = config
        for part in key.split("."):
            value = value[part]
        if kind(value) < low:
            raise ConfigError(f"{key} must be >= {low}, got {value}")


def _all(values, kind) -> bool:
    """Every value an int (`kind` int) or a number (`kind` float); bools are neither."""
    allowed = (int,) if kind is int else (int, float)
    return all(isinstance(v, allowed) and not isinstance(v, bool) for v in values)


def _validate_run_lengths(config) -> None:
    _at_least(config, 1, "batch_size", "total_steps", "checkpoint_every", "keep_checkpoints", "log_every", "eval_every")


def _validate_optimizer(config) -> None:
    if config.lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {config.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")
    if not _all(config.lr_decay_steps, int):
        raise ConfigError(f"lr_decay_steps must be step numbers like (100000, 200000), got {config.lr_decay_steps!r}")
    if any(int(p) < 1 for p in config.lr_restart_periods):
        raise ConfigError(f"lr_restart_periods must be positive step counts, got {tuple(config.lr_restart_periods)}")
    if config.optimizer not in ("adam", "adamw"):
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; use 'adam' or 'adamw'")
    if not 0.0 <= float(config.ema_decay) < 1.0:
        raise ConfigError(f"ema_decay must be in [0, 1), got {config.ema_decay}")


def _validate_gan(config) -> None:
    """gan.*: names, d_features, d_steps, and TecoGAN's D_s,t options (warp_crop,
    feature_matching_*); a warning when D_s,t cannot be motion-compensated."""
    from vsr_jax import adversarial, losses
    from vsr_jax.models import discriminators

    gan = config.gan
    if gan.loss and gan.loss not in losses.GAN_LOSSES:
        raise ConfigError(f"unknown gan.loss {gan.loss!r}; available: '' (off), {', '.join(losses.GAN_LOSSES)}")
    if not gan.loss:
        return
    if gan.discriminator not in discriminators.DISCRIMINATORS:
        names = ", ".join(sorted(discriminators.DISCRIMINATORS))
        raise ConfigError(f"unknown gan.discriminator {gan.discriminator!r}; available: {names}")
    st = gan.discriminator == "spatio_temporal"
    if st and config.data.num_frames < 3:
        raise ConfigError("gan.discriminator=spatio_temporal needs data.num_frames >= 3 (it sees frame triplets)")
    adversarial.discriminator_features(config)  # raises on a malformed gan.d_features
    _at_least(config, 1, "gan.d_steps")
    if not 0.0 < float(gan.warp_crop) <= 1.0:
        raise ConfigError(f"gan.warp_crop must be in (0, 1], got {gan.warp_crop}")
    _at_least(config, 0, "gan.feature_matching_weight", kind=float)
    fm_on = float(gan.feature_matching_weight) > 0
    for key, on in (("warp_crop", float(gan.warp_crop) != 1.0), ("feature_matching_weight", fm_on)):
        if on and not st:
            raise ConfigError(f"gan.{key} needs gan.discriminator=spatio_temporal; leave it at its default")
    if fm_on:
        adversarial.feature_matching_weights(config)  # raises on a malformed or mis-sized list
    if st and not estimates_flow(config):
        from absl import logging

        logging.warning(
            "gan.discriminator=spatio_temporal: model %r estimates no flow, so D sees unwarped triplets "
            "(TecoGAN warps them with the generator's flow: recurrent_gan, convlstm_vsr with align=True)",
            config.model.name,
        )


def _validate_flow_options(config) -> None:
    """flow_lr_mul, fix_flow_steps, model.spynet_init: the model must have a flow network, in this config."""
    from vsr_jax import models, optimizers
    from vsr_jax.init_from import flow_modules, subtree

    _at_least(config, 0, "flow_lr_mul", kind=float)
    _at_least(config, 0, "fix_flow_steps")
    spynet_init = str(config.model.get("spynet_init", ""))
    if not (optimizers.flow_options_set(config) or spynet_init):
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


def _validate_train_only(config) -> None:
    from vsr_jax import optimizers
    from vsr_jax.init_from import subtree

    _at_least(config, 0, "train_only_steps")
    steps, names = int(config.train_only_steps), tuple(config.train_only_modules)
    if not steps:
        return
    if not names:
        raise ConfigError("train_only_steps needs train_only_modules (the modules that learn meanwhile)")
    if optimizers.flow_options_set(config):
        raise ConfigError("train_only_steps and flow_lr_mul / fix_flow_steps cannot be combined; use one of them")
    abstract = _abstract_model_params(config)
    missing = [n for n in names if subtree(abstract, str(n)) is None]
    if missing:
        raise ConfigError(
            f"train_only_modules {missing} are not modules of {config.model.name!r} "
            f"(its top-level modules: {', '.join(sorted(abstract))})"
        )


def _validate_devices(config, num_devices: int | None) -> None:
    import jax

    n = jax.device_count() if num_devices is None else int(num_devices)
    if config.batch_size % n:
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the number of devices ({n})")
    if config.batch_size % jax.process_count():
        raise ConfigError(f"batch_size={config.batch_size} must be a multiple of the {jax.process_count()} processes")


def _validate_critic_input(config) -> None:
    """The discriminator's smallest input (gan.loss set): traced, not compiled."""
    if not config.gan.loss:
        return
    import jax
    import jax.numpy as jnp

    from vsr_jax.adversarial import Critic

    t, s = int(config.data.num_frames), int(config.data.patch_size)
    hr = s * int(config.data.scale)
    frames = jax.ShapeDtypeStruct((1, t, hr, hr, 3), jnp.float32)
    lr = jax.ShapeDtypeStruct((1, t, s, s, 3), jnp.float32)
    try:
        jax.eval_shape(Critic(config).init, jax.random.key(0), frames, lr)
    except ValueError as e:
        raise ConfigError(
            f"data.patch_size={config.data.patch_size} (HR {hr}x{hr}) is too small for gan.discriminator="
            f"{config.gan.discriminator!r}: {str(e).splitlines()[0]}; use larger patches"
        ) from None


def estimates_flow(config) -> bool:
    """Whether the config's model `sow`s its LR flows (`flow_to_prev`): recurrent_gan, convlstm_vsr with align."""
    from vsr_jax import models

    model_class = models.get_model_class(config.model.name)
    return bool(getattr(model_class, "sows_flows", False) and config.model.get("align", True))


def _abstract_model_params(config):
    """The params of the config's model at its training clip size (traced, not allocated)."""
    import jax
    import jax.numpy as jnp

    model = build_model(config)
    d = config.data
    lr = jax.ShapeDtypeStruct((1, int(d.num_frames), int(d.patch_size), int(d.patch_size), 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), lr)["params"]
