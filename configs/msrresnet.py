"""BasicSR's MSRResNet ×4 recipe (`options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml`).

The published architecture (`msrresnet`: 64 features, 16 blocks, conv_hr at HR size,
bilinear base; BasicSR's weight files load into it) with the authors' training settings:
batch 16 of 128×128 HR (32×32 LR) patches, L1, Adam 2e-4 with betas (0.9, 0.99),
CosineAnnealingRestartLR with four periods of 250k steps down to eta_min 1e-7, 1M steps,
EMA of the weights with decay 0.999. The authors train on DIV2K; here the data is the
bundled sample clips (`--config.data.name=...` for another dataset).

Presets: `configs/msrresnet.py` (full) and `configs/msrresnet.py:quick` (32 wide, 4 blocks,
300 steps, no restarts).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "msrresnet"
    config.model.features = 64
    config.model.num_blocks = 16

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 1
    config.data.patch_size = 32  # LR; GT 128×128 (gt_size 128)

    config.loss.pixel = "l1"
    config.batch_size = 16
    config.learning_rate = 2e-4
    config.adam_b1 = 0.9
    config.adam_b2 = 0.99
    config.lr_schedule = "cosine_restarts"
    config.lr_restart_every = 250_000
    config.lr_min_ratio = 1e-7 / 2e-4  # eta_min
    config.total_steps = 1_000_000
    config.ema_decay = 0.999
    config.checkpoint_every = 5000
    config.eval_every = 5000
    if preset == "quick":  # a few minutes on a laptop CPU
        config.model.features = 32
        config.model.num_blocks = 4
        config.learning_rate = 1e-3
        config.lr_restart_every = 0  # one cosine period over the run
        config.lr_min_ratio = 0.0
        config.total_steps = 300
        config.checkpoint_every = 100
        config.eval_every = 100_000
    elif preset != "full":
        raise ValueError(f"configs/msrresnet.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
