"""A run's checkpoints as the evaluator sees them: the steps on disk, and a checkpoint's
model and params rebuilt from the config saved inside it (no training code, no config file)."""

from __future__ import annotations

import os


def load_run(workdir: str, step: int | None):
    """(config, model, params, step) of a checkpoint: `checkpointing.load_model` (the model
    from its config, sizes checked before anything is read, paths in the config not used)."""
    from vsr_jax import checkpointing

    return checkpointing.load_model(workdir, step)


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
