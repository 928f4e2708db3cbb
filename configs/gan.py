"""The recurrent video GAN (TecoGAN-style): frame-recurrent generator + spatio-temporal D.

×4 on 7-frame clips (the bundled sample clips; Vimeo-90K with
`--config.data.name=vimeo90k`). Generator objective, as TecoGAN: L2 pixel + VGG19
perceptual + ping-pong (the clip played forward then backward must give the same frames)
+ adversarial from a spatio-temporal discriminator over frame triplets (each seen warped
onto its middle frame with the generator's flow, unwarped, and as bicubic-upsampled LR)
+ TecoGAN's layer loss on the discriminator's features. The first `gan.pretrain_steps` steps
train the generator without the adversarial terms (FRVSR pretraining); evaluation uses the
EMA of the generator.

Presets:
- `configs/gan.py` (full recipe) uses torchvision's VGG19, downloaded once into the weights
  cache (`loss.vgg_weights=vgg19`); offline, `--config.loss.vgg_weights=FILE` (README: VGG weights).
- `configs/gan.py:quick` (a short CPU run on the bundled clips with no other file): a
  narrow generator and no perceptual term; pixel + ping-pong + adversarial.
- `configs/gan.py:colab` (the Colab notebook, `colab/vsr_jax_tpu.ipynb`, on a TPU v2-8 /
  v5e-8 or one GPU; sized for ≈ 10–20 minutes on the bundled clips, an estimate not yet
  timed on a TPU): the `quick` network and objective, trained 12× longer (3600 steps:
  1800 of MSE + flow warm-up, then 1800 with ping-pong and the discriminator) on 32× more
  pixels per step (batch 32 of 32×32 LR / 128×128 HR patches, the full recipe's patch).
  The batch is a multiple of 8, so it splits evenly over the 8 cores of a TPU v2-8 /
  v5e-8 (4 clips per core), and over 1, 2 or 4 GPUs. The learning rates are half the
  quick preset's, with a cosine decay (the quick preset's constant 1e-3 is tuned for 300
  steps); a checkpoint every 600 steps, so a Colab session cut off by its time limit
  resumes with little lost.
- `configs/gan.py:tiny` (the notebook's test on a 2-core CPU, a smoke run anywhere): the
  smallest network that exercises every part — 8-wide generator, 1 block, 2-level flow,
  8-16-wide discriminator, 3-frame clips of 8×8 LR — 6 steps, all with the discriminator
  (no warm-up: a warm-up phase compiles the train step a second time, ≈ 10 s of CPU in
  the notebook's test; tests/test_gan.py covers the switch), a checkpoint at the end, and
  a final evaluation of one held-out clip. Batch 8 (one clip per core on an 8-core TPU).
  Its numbers mean nothing.
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "recurrent_gan"
    config.model.features = 64
    config.model.num_blocks = 10
    config.model.flow_levels = 3
    config.model.flow_features = (32, 64, 32, 16)
    config.model.flow_kernel_size = 7
    config.model.dtype = "float32"

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 7
    config.data.patch_size = 32  # LR; HR 128×128
    config.data.temporal_reverse = True

    config.loss.pixel = "mse"
    config.loss.pixel_weight = 1.0
    config.loss.perceptual_weight = 0.2
    config.loss.vgg_depth = 19
    config.loss.vgg_weights = "vgg19"  # torchvision's file, fetched into the weights cache
    config.loss.perceptual_layers = ("conv2_2", "conv3_4", "conv4_4", "conv5_4")
    config.loss.perceptual_layer_weights = (0.1, 0.1, 1.0, 1.0)
    config.loss.pingpong_weight = 0.5
    config.loss.flow_weight = 1.0  # FRVSR's warp loss: the flow net learns alignment from the start

    config.gan.loss = "vanilla"
    config.gan.weight = 0.01
    config.gan.discriminator = "spatio_temporal"
    config.gan.learning_rate = 5e-5
    config.gan.d_steps = 1
    config.gan.pretrain_steps = 100_000
    # TecoGAN's D_s,t (thunil/TecoGAN lib/Teco.py, main.py defaults, runGan.py): its triplets are
    # motion-compensated with the generator's flow (always, for a model that estimates flow), the
    # warped triplet's centre 75 % kept (crop_dt 0.75), and its "layer loss" (D_LAYERLOSS) joins the
    # generator's loss at weight 1 (not × the adversarial ratio), per layer 0.02/12, 0.02/14,
    # 0.02/24, 0.02/100 (the default gan.feature_matching_layer_weights)
    config.gan.warp_crop = 0.75
    config.gan.feature_matching_weight = 1.0
    config.ema_decay = 0.999

    config.learning_rate = 5e-5
    config.lr_schedule = "cosine_restarts"
    config.lr_restart_every = 100_000
    config.batch_size = 4
    config.total_steps = 400_000
    config.checkpoint_every = 5000
    config.eval_every = 5000

    if preset == "quick":
        _quick_network(config)
        config.data.patch_size = 16  # HR 64×64
        config.loss.perceptual_weight = 0.0  # no VGG weights ship with the package
        config.gan.pretrain_steps = 150
        # after a 150-step warm-up the model is fragile: TecoGAN's 0.5 L1 ping-pong is minimised by
        # dropping back to bicubic (measured: ±0.00 dB at 300 steps; 0.05: +1.08 dB), and a barely
        # trained D at weight 0.01 outweighs the MSE term ten to one
        config.loss.pingpong_weight = 0.05
        config.gan.weight = 1e-3
        config.gan.learning_rate = 1e-3
        config.ema_decay = 0.99
        config.learning_rate = 1e-3
        config.lr_schedule = "constant"
        config.total_steps = 300
        config.checkpoint_every = 100
        config.log_every = 25
        config.eval_every = 100_000
    elif preset == "colab":
        _quick_network(config)
        config.data.patch_size = 32  # HR 128×128, the full recipe's patch
        config.loss.perceptual_weight = 0.0  # no VGG weights ship with the package
        config.loss.pingpong_weight = 0.05  # as :quick (0.5 drops a short run back to bicubic)
        config.gan.weight = 1e-3
        config.gan.learning_rate = 5e-4
        config.gan.pretrain_steps = 1800
        config.ema_decay = 0.995  # averages the last ≈ 200 steps
        config.learning_rate = 5e-4
        config.lr_schedule = "cosine"
        config.lr_min_ratio = 0.1
        config.batch_size = 32  # a multiple of 8: 4 clips per core on a TPU v2-8 / v5e-8
        config.total_steps = 3600
        config.checkpoint_every = 600
        config.log_every = 100
        config.eval_every = 600  # TensorBoard previews (LR / bicubic / SR / HR)
    elif preset == "tiny":
        config.model.features = 8
        config.model.num_blocks = 1
        config.model.flow_levels = 2
        config.model.flow_features = (4, 4)
        config.model.flow_kernel_size = 3
        config.data.num_frames = 3  # one triplet for the spatio-temporal discriminator
        config.data.patch_size = 8  # HR 32×32 (the discriminator needs ≥ 16)
        config.loss.perceptual_weight = 0.0
        config.loss.pingpong_weight = 0.05
        config.gan.d_features = (8, 8, 16, 16)
        config.gan.weight = 1e-3
        config.gan.learning_rate = 1e-3
        config.gan.pretrain_steps = 0  # the discriminator trains from the first step
        config.ema_decay = 0.5
        config.learning_rate = 1e-3
        config.lr_schedule = "constant"
        config.batch_size = 8
        config.total_steps = 6
        config.checkpoint_every = 6
        config.log_every = 3
        config.eval_every = 100_000
        config.eval.max_clips = 1  # the final evaluation: one held-out clip (the model sees all of it),
        config.eval.frame_stride = 25  # 2 of its frames scored
    elif preset != "full":
        raise ValueError(f"configs/gan.py: unknown preset {preset!r}; use 'full', 'quick', 'colab' or 'tiny'")
    return config


def _quick_network(config) -> None:
    """The narrow generator of the :quick and :colab presets (32 wide, 4 blocks, small flow net)."""
    config.model.features = 32
    config.model.num_blocks = 4
    config.model.flow_features = (8, 16, 8, 8)
    config.model.flow_kernel_size = 5
