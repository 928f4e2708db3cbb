"""BasicVSR++ (Chan et al., CVPR 2022) with MMagic 1.2.0's REDS recipe
(`configs/basicvsr_pp/basicvsr-pp_c64n7_8xb1-600k_reds4.py` on `basicvsr/basicvsr_2xb4_reds4.py`).

The authors' model (`vsr_jax.models.basicvsrpp`, weight for weight MMagic's
BasicVSRPlusPlusNet: mid_channels 64, 7 blocks, SpyNet flows, 16 offset groups), ×4 BI, on
REDS (`data.name=reds`, `data.path=ROOT` holding ``train_sharp/``; REDS4 = clips 000, 011,
015, 020 held out). As the recipe:

* 30-frame clips (``num_input_frames=30``), 64×64 LR patches (``gt_patch_size=256``),
  horizontal / vertical flips and transposes, no temporal reversal;
* global batch 8: MMagic's ``batch_size=1`` on its 8 GPUs (the batch is global here, split
  over the devices);
* Charbonnier loss, mean, MMagic's ``eps=1e-12`` inside the root (ours is squared: 1e-6);
* Adam 1e-4, betas (0.9, 0.99); CosineRestartLR with one 600k period, eta_min 1e-7; 600k
  iterations; no EMA (MMagic's BasicVSR model keeps none);
* SpyNet initialised from MMagic's ``spynet_20210409-c6c1bd09.pth`` (``model.spynet_init=
  spynet_mmagic``, downloaded once), frozen for the first 5,000 iterations (``fix_iter``;
  ``fix_flow_steps``), then at 0.25× the learning rate (``paramwise_cfg`` ``lr_mult``;
  ``flow_lr_mul``); the deformable layers learn at the base rate (no custom key for them);
* validation and checkpoints every 5,000 iterations; REDS4 PSNR on RGB, no border cropped.

The Vimeo-90K variants (``…_4xb2-300k_vimeo90k-{bi,bd}.py``) differ in data (7-frame
septuplets, `data.name=vimeo90k`), batch (2 × 4 GPUs = 8), 300k iterations and no SpyNet
freeze.

`configs/basicvsrpp.py:quick`: the same recipe shrunk for a CPU on the bundled sample
clips (mid_channels 16, 1 block per branch, 5 frames, 32×32 patches, batch 2, 200 steps,
offline: SpyNet starts random, is not frozen and trains at the full rate unless
`model.spynet_init` is given). Training on a CPU unrolls the four propagation loops over
the clip (one program per training clip length).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "basicvsrpp"
    config.model.mid_channels = 64
    config.model.num_blocks = 7
    config.model.max_residue_magnitude = 10.0
    config.model.spynet_init = "spynet_mmagic"
    config.model.dtype = "float32"

    config.data.name = "reds"
    config.data.scale = 4
    config.data.num_frames = 30
    config.data.patch_size = 64
    config.data.augment = True
    config.data.temporal_reverse = False

    config.loss.pixel = "charbonnier"
    config.loss.charbonnier_eps = 1e-6  # sqrt(d² + eps²): MMagic's sqrt(d² + 1e-12)
    config.learning_rate = 1e-4
    config.adam_b1 = 0.9
    config.adam_b2 = 0.99
    config.lr_schedule = "cosine_restarts"
    config.lr_restart_every = 600_000
    config.lr_min_ratio = 1e-7 / 1e-4  # eta_min 1e-7
    config.flow_lr_mul = 0.25
    config.fix_flow_steps = 5000
    config.ema_decay = 0.0
    config.batch_size = 8
    config.total_steps = 600_000
    config.checkpoint_every = 5000
    config.eval_every = 5000
    config.log_every = 100
    config.eval.crop_border = 0

    if preset == "quick":  # minutes on a CPU, offline
        config.model.mid_channels = 16
        config.model.num_blocks = 1
        config.model.spynet_init = ""
        config.data.name = "sample"
        config.data.num_frames = 5
        config.data.patch_size = 32
        config.batch_size = 2
        config.learning_rate = 1e-3
        config.lr_schedule = "cosine"
        config.lr_restart_every = 0
        config.flow_lr_mul = 1.0  # a random SpyNet learns with the rest
        config.fix_flow_steps = 0
        config.total_steps = 200
        config.checkpoint_every = 100
        config.log_every = 25
        config.eval_every = 100_000  # evaluate at the end only
        config.eval.crop_border = -1
    elif preset != "full":
        raise ValueError(f"configs/basicvsrpp.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
