"""The fields every config has, and their checks. Recipes in `configs/*.py` start here.

A recipe file is `def get_config(): config = config_lib.base_config(); ...; return config`.
The config is locked, so a misspelt key on the command line (`--config.totl_steps=5`)
is an error, not a silent new field.
"""

from __future__ import annotations

import ml_collections


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
    c.lr_decay_steps = ""  # step: comma-separated steps where the rate is multiplied by lr_decay_factor
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
    c.loss.perceptual_layers = "conv5_4"  # comma-separated VGG layers (conv* before ReLU, relu* after)
    c.loss.perceptual_layer_weights = "1.0"  # comma-separated, one per layer
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
    c.gan.d_features = ""  # the discriminator's block widths, comma-separated ("" = its published ones)
    c.gan.learning_rate = 1e-4  # the discriminator's (same schedule shape as the generator's)
    c.gan.d_steps = 1  # discriminator updates per generator update
    c.gan.pretrain_steps = 0  # warm-up steps on pixel (+ flow) loss only; the other terms start after
    c.gan.r1_gamma = 0.0  # R1 gradient penalty weight γ (penalty γ/2 · E‖∇D(real)‖²); 0 = off
    # spatio_temporal: the centre fraction of the motion-compensated triplet it sees (the border
    # zeroed; TecoGAN's crop_dt 0.75); 1 = all of it
    c.gan.warp_crop = 1.0
    # spatio_temporal: TecoGAN's "layer loss", an L1 between D's features on real and fake added to
    # the generator's loss with this weight; 0 = off. Per-layer weights, comma-separated, one per
    # D layer ("" = TecoGAN's 0.02/12, 0.02/14, 0.02/24, 0.02/100 for a 4-layer D)
    c.gan.feature_matching_weight = 0.0
    c.gan.feature_matching_layer_weights = ""

    c.eval = ml_collections.ConfigDict()
    c.eval.crop_border = -1  # pixels cut from each edge before PSNR/SSIM; -1 = data.scale
    c.eval.frame_stride = 1  # evaluate every k-th held-out frame
    c.eval.batch_frames = 8  # frames per forward pass in evaluation
    c.eval.preview_frames = 2  # held-out frames shown in the periodic image grids
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

    from vsr_jax.errors import ConfigError

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
