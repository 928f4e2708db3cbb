"""SRGAN's generator, SRResNet (Ledig et al., 2017; BasicSR's MSRResNet, no batch norm).

×4 single frames from the bundled sample clips, trained on pixel loss here (the PSNR-
oriented SRResNet, which is also the SRGAN warm start); the perceptual and adversarial
terms of SRGAN are added by `configs/srgan.py`. Adam 2e-4 with cosine decay, L1 (BasicSR).

Presets: `configs/srresnet.py` (full) and `configs/srresnet.py:quick` (32 wide, 4 blocks, 300 steps).
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
    config.data.patch_size = 32  # LR; HR 128×128 as BasicSR's MSRResNet recipe

    config.loss.pixel = "l1"
    config.learning_rate = 2e-4
    config.lr_schedule = "cosine"
    config.batch_size = 16
    config.total_steps = 1_000_000
    config.checkpoint_every = 5000
    config.eval_every = 5000
    if preset == "quick":  # a few minutes on a laptop CPU
        config.model.features = 32
        config.model.num_blocks = 4
        config.learning_rate = 1e-3
        config.total_steps = 300
        config.checkpoint_every = 100
        config.eval_every = 100_000
    elif preset != "full":
        raise ValueError(f"configs/srresnet.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
