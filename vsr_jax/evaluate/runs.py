"""A run's checkpoints as the evaluator sees them: the steps on disk, and a checkpoint's
model and params rebuilt from the config saved inside it (no training code, no config file), and
a published weight file's model and params (no run folder)."""

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


def load_published(weights: str = "", name: str = "", progress: bool = True):
    """(config, model, params, path, entry) of a published weight file (`weights`) or of a
    registry name (`name`, fetched into the weights cache as vsr-upscale --model does):
    `importer.load_weights` (architecture from the keys, or the registry's), no run folder.
    `entry` is the file's `registry.Entry` (None for a file the registry does not name)."""
    from vsr_jax.errors import UserError
    from vsr_jax.pretrained import importer, registry

    if name:
        from vsr_jax.upscale.sources import registry_file

        entry, path = registry_file(name, progress)
    else:
        if not os.path.isfile(weights):
            raise UserError(f"--weights: no weight file {weights}")
        path = weights
        entry = next((e for e in registry.ENTRIES.values() if e.filename == os.path.basename(path)), None)
    config, model, params = importer.load_weights(path)
    return config, model, params, path, entry
