"""EDVR-M (Wang et al., CVPRW 2019) with BasicSR 1.4.2's REDS recipe, in its two stages
(`options/train/EDVR/train_EDVR_M_x4_SR_REDS_woTSA.yml`, then `train_EDVR_M_x4_SR_REDS.yml`).

The authors' model (`vsr_jax.models.edvr`, weight for weight BasicSR's EDVR: 64 features,
5-frame windows, 8 offset groups, 5 + 10 blocks, PCD alignment), ×4 BI, on REDS
(`data.name=reds`, `data.path=ROOT` holding ``train_sharp/``; REDS4 held out). As the recipe:

* 5-frame clips, 64×64 LR patches (gt_size 256), flips and rotations, no temporal reversal;
  the loss sees the centre frame only (``loss.frames=center``: BasicSR's ground truth is the
  window's centre frame, and only that window is restored in training);
* global batch 32: ``batch_size_per_gpu: 4`` on 8 GPUs;
* Charbonnier loss, BasicSR's ``eps=1e-12`` inside the root (ours is squared: 1e-6).
  BasicSR sums it over the batch's pixels (``reduction: sum``); ours averages. Adam's
  update does not depend on that constant factor, except through its ε (1e-8), which the
  summed loss's larger gradients make relatively smaller;
* Adam 4e-4, betas (0.9, 0.99); CosineAnnealingRestartLR with periods 50k, 100k, 150k,
  150k, 150k (``lr_restart_periods``), eta_min 1e-7; 600k iterations; EMA 0.999;
  ``dcn_lr_mul: 1`` (the deformable layers learn at the base rate: nothing to set);
* the full preset is the second stage: TSA fusion on, started from the first stage's run
  (``--config.init_from=RUN_DIR`` of the ``wotsa`` preset; BasicSR's
  ``pretrain_network_g``), and for the first 50k iterations only the TSA module learns
  (``train_only_modules=("fusion",)``, ``train_only_steps``: BasicSR's ``tsa_iter``);
* validation and checkpoints every 5,000 steps; REDS4 PSNR on RGB, no border cropped; the
  windows at the clip ends as BasicSR's test sets build them (``reflection_circle``).

`configs/edvr.py:wotsa`: the first stage (``with_tsa: false``, a 1×1 fusion; from scratch,
no TSA phase; otherwise the same).

`configs/edvr.py:quick`: the second stage's shape shrunk for a CPU on the bundled sample
clips (16 features, 2 offset groups, 1 + 1 blocks, 32×32 patches, batch 4, 200 steps, from
scratch, TSA-only for the first 20 steps).
"""

from vsr_jax import config_lib


def get_config(preset: str = "full"):
    config = config_lib.base_config()
    config.model.name = "edvr"
    config.model.num_feat = 64
    config.model.num_frame = 5
    config.model.deformable_groups = 8
    config.model.num_extract_block = 5
    config.model.num_reconstruct_block = 10
    config.model.with_tsa = True
    config.model.padding = "reflection_circle"
    config.model.dtype = "float32"

    config.data.name = "reds"
    config.data.scale = 4
    config.data.num_frames = 5
    config.data.patch_size = 64
    config.data.augment = True
    config.data.temporal_reverse = False

    config.loss.pixel = "charbonnier"
    config.loss.charbonnier_eps = 1e-6  # sqrt(d² + eps²): BasicSR's sqrt(d² + 1e-12)
    config.loss.frames = "center"
    config.learning_rate = 4e-4
    config.adam_b1 = 0.9
    config.adam_b2 = 0.99
    config.lr_schedule = "cosine_restarts"
    config.lr_restart_periods = (50_000, 100_000, 150_000, 150_000, 150_000)
    config.lr_min_ratio = 1e-7 / 4e-4  # eta_min 1e-7
    config.train_only_modules = ("fusion",)
    config.train_only_steps = 50_000
    config.ema_decay = 0.999
    config.batch_size = 32
    config.total_steps = 600_000
    config.checkpoint_every = 5000
    config.eval_every = 5000
    config.log_every = 100
    config.eval.crop_border = 0

    if preset == "wotsa":
        config.model.with_tsa = False
        config.train_only_modules = ()
        config.train_only_steps = 0
    elif preset == "quick":  # minutes on a CPU, offline
        config.model.num_feat = 16
        config.model.deformable_groups = 2
        config.model.num_extract_block = 1
        config.model.num_reconstruct_block = 1
        config.data.name = "sample"
        config.data.patch_size = 32
        config.batch_size = 4
        config.learning_rate = 1e-3
        config.lr_schedule = "cosine"
        config.lr_restart_periods = ()
        config.train_only_steps = 20
        config.ema_decay = 0.0
        config.total_steps = 200
        config.checkpoint_every = 100
        config.log_every = 25
        config.eval_every = 100_000  # evaluate at the end only
        config.eval.crop_border = -1
    elif preset != "full":
        raise ValueError(f"configs/edvr.py: unknown preset {preset!r}; use 'full', 'wotsa' or 'quick'")
    return config
