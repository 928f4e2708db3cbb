"""SRGAN (Ledig et al., 2017) as BasicSR trains it: SRResNet + VGG19 perceptual + adversarial.

×4 single frames from the bundled sample clips (cats_vs_dogs with
`--config.data.name=cats_vs_dogs`, Vimeo-90K frames with `vimeo90k`). The generator is
SRResNet (`configs/srresnet.py`); the first `gan.pretrain_steps` steps train it on L1 alone
(the PSNR-oriented warm start SRGAN needs), then the objective becomes BasicSR's
`train_SRGAN_x4`: 0.01 · L1 + 1.0 · VGG19 conv5_4 (before activation, L1) + 0.005 ·
vanilla adversarial from the VGG-style discriminator, both at Adam 1e-4. Evaluation and
the checkpoints' `ema` use the EMA of the generator (decay 0.999).

Presets:
- `configs/srgan.py` (full recipe) uses torchvision's VGG19, downloaded once into the weights
  cache (`loss.vgg_weights=vgg19`); offline, `--config.loss.vgg_weights=FILE` (README: VGG weights).
- `configs/srgan.py:quick` (a short CPU run on the bundled clips with no other file): 32 wide,
  4 blocks, a quarter-width discriminator, 150 warm-up steps then 150 adversarial ones;
  no perceptual term.
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "srresnet"
    config.model.features = 64
    config.model.num_blocks = 16
    config.model.dtype = "float32"

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 1
    config.data.patch_size = 32  # LR; HR 128×128

    config.loss.pixel = "l1"
    config.loss.pixel_weight = 0.01
    config.loss.perceptual_weight = 1.0
    config.loss.vgg_depth = 19
    config.loss.vgg_weights = "vgg19"  # torchvision's file, fetched into the weights cache
    config.loss.perceptual_layers = ("conv5_4",)
    config.loss.perceptual_layer_weights = (1.0,)
    config.loss.perceptual_criterion = "l1"

    config.gan.loss = "vanilla"
    config.gan.weight = 5e-3
    config.gan.discriminator = "vgg"
    config.gan.learning_rate = 1e-4
    config.gan.d_steps = 1
    config.gan.pretrain_steps = 200_000
    config.ema_decay = 0.999

    config.learning_rate = 1e-4
    config.lr_schedule = "step"
    config.lr_decay_steps = (250000, 300000, 350000)
    config.lr_decay_factor = 0.5
    config.batch_size = 16
    config.total_steps = 600_000
    config.checkpoint_every = 5000
    config.eval_every = 5000

    if preset == "quick":
        config.model.features = 32
        config.model.num_blocks = 4
        config.loss.pixel_weight = 1.0
        config.loss.perceptual_weight = 0.0  # no VGG weights ship with the package
        config.gan.pretrain_steps = 150
        config.gan.weight = 1e-3
        config.gan.d_features = (16, 32, 64, 128, 128)  # 1/16 of the published D's compute: ~25x G's at full width
        config.ema_decay = 0.99
        config.learning_rate = 1e-3
        config.lr_schedule = "constant"
        config.total_steps = 300
        config.checkpoint_every = 100
        config.eval_every = 100_000
    elif preset != "full":
        raise ValueError(f"configs/srgan.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
