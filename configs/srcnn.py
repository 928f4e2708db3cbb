"""SRCNN 9-1-5 (Dong et al.), as published: convolutions on the bicubic-upsampled frame.

×4 single frames from the bundled sample clips; MSE, Adam. `--config.model.upsampler=learned`
runs the three layers at LR resolution with a pixel-shuffle upscale instead (s² cheaper).

Presets: `configs/srcnn.py` (full) and `configs/srcnn.py:quick` (300 steps, a few CPU minutes).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "srcnn"
    config.model.features = (64, 32)
    config.model.kernel_sizes = (9, 1, 5)
    config.model.upsampler = "bicubic"
    config.model.dtype = "float32"

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 1
    config.data.patch_size = 32  # LR; HR patches 128×128

    config.loss.pixel = "mse"
    config.learning_rate = 1e-3
    config.batch_size = 16
    config.total_steps = 20_000
    config.checkpoint_every = 1000
    config.eval_every = 1000
    if preset == "quick":  # a few minutes on a laptop CPU
        config.total_steps = 300
        config.checkpoint_every = 100
        config.eval_every = 100_000
    elif preset != "full":
        raise ValueError(f"configs/srcnn.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
