"""Recurrent VSR: flow-aligned ConvLSTM propagation over 7-frame clips (BasicVSR's recipe).

×4, septuplets from the bundled sample clips (Vimeo-90K with
`--config.data.name=vimeo90k`), Charbonnier loss, Adam 2e-4 with cosine decay, clips also
played backwards at random. `--config.model.bidirectional=True` adds the backward pass.

Presets: `configs/convlstm.py` is the full recipe; `configs/convlstm.py:quick` is the short
CPU run of the model tables (a narrower network, 32×32 LR patches, 300 steps);
`configs/convlstm.py:cpu` is the README quick start's video model: `:quick` in both
directions at learning rate 2e-3 for 480 steps (≈ 12 minutes on 2 cores; the `quick_curve`
table of `experiments/quick_curve.py` is its gain per minute).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "convlstm_vsr"
    config.model.features = 64
    config.model.extract_blocks = 2
    config.model.recon_blocks = 5
    config.model.bidirectional = False
    config.model.align = True
    config.model.flow_levels = 3
    config.model.flow_features = (32, 64, 32, 16)
    config.model.flow_kernel_size = 7
    config.model.dtype = "float32"

    config.data.name = "sample"
    config.data.scale = 4
    config.data.num_frames = 7
    config.data.patch_size = 64
    config.data.temporal_reverse = True

    config.loss.pixel = "charbonnier"
    config.learning_rate = 2e-4
    config.lr_schedule = "cosine"
    config.batch_size = 8
    config.total_steps = 300_000
    config.checkpoint_every = 5000
    config.eval_every = 5000

    if preset in ("quick", "cpu"):
        config.model.features = 32
        config.model.extract_blocks = 1
        config.model.recon_blocks = 2
        config.model.flow_features = (16, 32, 16, 8)
        config.model.flow_kernel_size = 5
        config.data.patch_size = 32
        config.batch_size = 4
        config.learning_rate = 1e-3
        config.total_steps = 300
        config.checkpoint_every = 100
        config.log_every = 25
        config.eval_every = 100_000  # evaluate at the end only
    if preset == "cpu":  # the quick start's video model: both directions, more steps, a higher rate
        config.model.bidirectional = True
        config.learning_rate = 2e-3
        config.total_steps = 480
        config.checkpoint_every = 80
    elif preset not in ("full", "quick"):
        raise ValueError(f"configs/convlstm.py: unknown preset {preset!r}; use 'full', 'quick' or 'cpu'")
    return config
