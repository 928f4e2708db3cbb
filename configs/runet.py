"""RUNet (Hu et al., 2019): a U-Net whose contracting path is made of residual blocks.

×4 single frames from the bundled sample clips; L1 loss, Adam 2e-4 with cosine decay.
"""

from vsr_jax import config_lib


def get_config():
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
    return config
