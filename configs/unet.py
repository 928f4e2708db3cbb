"""SR-U-Net, the seed study's recipe: ×2, 64×64 LR patches -> 128×128 HR, MSE, Adam 1e-3.

Single frames (T = 1) from the bundled sample clips by default. The quick-start preset in
the README shortens it with `--config.total_steps=...`.

Presets: `configs/unet.py` (full) and `configs/unet.py:quick` (400 steps, the quick start).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "unet"
    config.model.features = (32, 64, 128)
    config.model.residual = True

    config.data.name = "sample"
    config.data.scale = 2
    config.data.num_frames = 1
    config.data.patch_size = 64

    config.loss.pixel = "mse"
    config.learning_rate = 1e-3
    config.batch_size = 16
    config.total_steps = 20_000
    config.checkpoint_every = 500
    config.log_every = 50
    config.eval_every = 500
    if preset == "quick":  # the README's quick start: ~8 minutes on a 2-core CPU
        config.total_steps = 400
    elif preset != "full":
        raise ValueError(f"configs/unet.py: unknown preset {preset!r}; use 'full' or 'quick'")
    return config
