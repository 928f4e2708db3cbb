"""BasicVSR (Chan et al., CVPR 2021) with BasicSR 1.4.2's REDS recipe (`train_BasicVSR_REDS.yml`).

The authors' model (`vsr_jax.models.basicvsr`, weight for weight BasicSR's BasicVSR: num_feat
64, num_block 30, SpyNet flows), ×4 BI, on REDS (`data.name=reds`, `data.path=ROOT` holding
``train_sharp/``; REDS4 = clips 000, 011, 015, 020 held out). As the recipe:

* 15-frame clips, 64×64 LR patches (gt_size 256), flips and rotations, no temporal reversal;
* global batch 32: BasicSR's ``batch_size_per_gpu: 4`` on its official 8 GPUs (the batch is
  global here, split over the devices: `--config.batch_size=8` is one GPU's share of it);
* Charbonnier loss, BasicSR's ``eps=1e-12`` inside the root (ours is squared: 1e-6);
* Adam 2e-4, betas (0.9, 0.99); CosineAnnealingRestartLR with one 300k period, eta_min 1e-7;
  300k iterations; EMA 0.999 (``ema_decay``; evaluation uses it);
* SpyNet initialised from ``spynet_sintel_final`` (``model.spynet_init``; BasicSR's
  ``spynet_path``), frozen for the first 5,000 steps (``fix_flow_steps``; BasicSR's
  ``fix_flow``), then trained at 0.125× the learning rate (``flow_lr_mul``);
* validation and checkpoints every 5,000 steps; PSNR on RGB with no border cropped
  (``crop_border: 0``; our tables also give Y).

The SpyNet file is published on Google Drive only: put ``spynet_sintel_final-3d2a1287.pth`` in
the weights cache as `python -m vsr_jax.pretrained list` says, or give its path:
`--config.model.spynet_init=/path/to/spynet_sintel_final-3d2a1287.pth`.

`configs/basicvsr.py:quick`: the same recipe shrunk for a CPU on the bundled sample clips
(num_feat 16, 2 blocks per branch, 7 frames, 32×32 patches, batch 4, 300 steps, offline: SpyNet
starts random, is not frozen and trains at the full rate unless `model.spynet_init` is given).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "basicvsr"
    config.model.num_feat = 64
    config.model.num_block = 30
    config.model.spynet_init = "spynet_sintel_final"
    config.model.dtype = "float32"

    config.data.name = "reds"
    config.data.scale = 4
    config.data.num_frames = 15
    config.data.patch_size = 64
    config.data.augment = True
    config.data.temporal_reverse = False

    config.loss.pixel = "charbonnier"
    config.loss.charbonnier_eps = 1e-6  # sqrt(d² + eps²): BasicSR's sqrt(d² + 1e-12)
    config.learning_rate = 2e-4
    config.adam_b1 = 0.9
    config.adam_b2 = 0.99
    config.lr_schedule = "cosine_restarts"
    config.lr_restart_every = 300_000
    config.lr_min_ratio = 1e-7 / 2e-4  # eta_min 1e-7
    config.flow_lr_mul = 0.125
    config.fix_flow_steps = 5000
    config.ema_decay = 0.999
    config.batch_size = 32
    config.total_steps = 300_000
    config.checkpoint_every = 5000
    config.eval_every = 5000
    config.log_every = 100
    config.eval.crop_border = 0

    if preset == "quick":  # minutes on a CPU, offline
        config.model.num_feat = 16
        config.model.num_block = 2
        config.model.spynet_init = ""
        config.data.name = "sample"
        config.data.num_frames = 7
        config.data.patch_size = 32
        config.batch_size = 4
        config.learning_rate = 1e-3
        config.lr_schedule = "cosine"
        config.lr_restart_every = 0
        config.flow_lr_mul = 1.0  # a random SpyNet learns with the rest
        config.fix_flow_steps = 0
        config.ema_decay = 0.0
        config.total_steps = 300
        config.checkpoint_every = 100
        config.log_every = 25
        config.eval_every = 100_000  # evaluate at the end only
        config.eval.crop_border = -1
    elif preset != "full":
        raise ValueError(f"configs/basicvsr.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
