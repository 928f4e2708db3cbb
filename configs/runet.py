"""RUNet (Hu et al., 2019): a U-Net whose contracting path is made of residual blocks.

×4 single frames from the bundled sample clips; L1 loss, Adam 2e-4 with cosine decay.

Presets: `configs/runet.py` (full) and `configs/runet.py:quick` (narrower, 300 steps).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "runet"
    config.model.features = (64, 128, 256)
    config.model.blocks_per_level = 2
    config.model.dtype = "float32"

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 1
    config.data.patch_size = 32

    config.loss.pixel = "l1"
    config.learning_rate = 2e-4
    config.lr_schedule = "cosine"
    config.batch_size = 16
    config.total_steps = 100_000
    config.checkpoint_every = 1000
    config.eval_every = 1000
    if preset == "quick":  # a few minutes on a laptop CPU
        config.model.features = (32, 64, 128)
        config.model.blocks_per_level = 1
        config.learning_rate = 1e-3
        config.total_steps = 300
        config.checkpoint_every = 100
        config.eval_every = 100_000
    elif preset != "full":
        raise ValueError(f"configs/runet.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
