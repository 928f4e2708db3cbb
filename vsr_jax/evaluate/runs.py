"""A run's checkpoints as the evaluator sees them: the steps on disk, and a checkpoint's
model and params rebuilt from the config saved inside it (no training code, no config file)."""

from __future__ import annotations

import os


def load_run(workdir: str, step: int | None):
    """(config, model, params, step) of a checkpoint; refuses params of another model."""
    import jax
    import jax.numpy as jnp
    import ml_collections

    from vsr_jax import checkpointing, config_lib, models

    config_dict, params, step = checkpointing.load_params(workdir, step)
    config = ml_collections.ConfigDict(config_dict)
    name = config.model.name
    try:
        model = models.create_model(name, int(config.data.scale), config_lib.model_kwargs(config))
    except (KeyError, TypeError, ValueError) as e:
        raise checkpointing.CheckpointError(f"{workdir}: its config's model cannot be built ({e})") from None
    t, s = int(config.data.num_frames), int(config.data.patch_size)
    dummy = jnp.zeros((1, t, s, s, 3), jnp.float32)
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0), dummy)["params"])
    want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(expected)}
    have = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(params)}
    if want != have:
        differ = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise checkpointing.CheckpointError(
            f"the checkpoint at step {step} in {workdir} does not hold the {name!r} model its config names "
            f"({len(differ)} parameters differ, e.g. {differ[0]}); was it copied from another run?"
        )
    return config, model, params, step


def checkpoint_steps(workdir: str) -> list[int]:
    """Finished checkpoint steps of a run, oldest first (re-read from disk on every call)."""
    import orbax.checkpoint as ocp

    from vsr_jax import checkpointing

    directory = checkpointing.checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        return []
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True))
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()
