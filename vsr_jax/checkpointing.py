"""Orbax checkpoints of a run: the train state, the config that made it, and metadata.

Layout: ``WORKDIR/checkpoints/<step>/{state,config,metadata}``. `state` is the whole
TrainState (params, optimizer state, step); `config` the run's config as JSON, so a
checkpoint can be evaluated or used for upscaling with nothing but its directory; this
module does not import the training code.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from vsr_jax.errors import UserError

CHECKPOINT_SUBDIR = "checkpoints"


class CheckpointError(UserError, ValueError):
    """A checkpoint directory that is missing, empty or from an incompatible run."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)


class Checkpointer:
    """Saves every `save_every` steps (and when forced), keeps the newest `keep`."""

    def __init__(self, workdir: str, *, save_every: int, keep: int = 3, async_save: bool = True):
        self.save_every = max(1, int(save_every))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(1, int(keep)),
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, config: dict, metadata: dict, *, force: bool = False) -> bool:
        """Starts an (async) save if `step` is a multiple of `save_every` or `force`; returns whether it saved."""
        if not force and step % self.save_every:
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            config=ocp.args.JsonSave(config),
            metadata=ocp.args.JsonSave(metadata),
        )
        return self._manager.save(int(step), args=args, force=True)

    def restore_state(self, step: int, abstract_state: Any) -> Any:
        """Restores the train state at `step` into the structure and shardings of `abstract_state`."""
        restored = self._manager.restore(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
        return restored["state"]

    def restore_json(self, step: int, item: str) -> dict:
        restored = self._manager.restore(int(step), args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
        return dict(restored[item])

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) of a pytree of arrays, as a restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def load_params(workdir: str, step: int | None = None) -> tuple[dict, Any, int]:
    """(config dict, params, step) of a run's checkpoint, for evaluation or inference.

    The params are the EMA of the generator's when the run kept one (`ema_decay` > 0).

    Raises CheckpointError with what to do when `workdir` holds no checkpoint.
    """
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise CheckpointError(f"no checkpoints in {workdir} (expected {directory}); train a model there first")
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(),
        "metadata": ocp.JsonCheckpointHandler(),
    }
    manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(read_only=True), item_handlers=handlers
    )
    try:
        step = manager.latest_step() if step is None else int(step)
        if step is None:
            raise CheckpointError(f"{directory} holds no finished checkpoint")
        if step not in manager.all_steps():
            raise CheckpointError(f"no checkpoint for step {step} in {directory}; have {list(manager.all_steps())}")
        # onto one local device, whatever mesh wrote it (8 GPUs, a TPU slice): without a target
        # Orbax restores the saved sharding and refuses another topology
        device = jax.local_devices()[0]
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=jax.sharding.SingleDeviceSharding(device)),
            manager.item_metadata(step)["state"],
        )
        restored = manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()),
        )
    finally:
        manager.close()
    state = restored["state"]
    params = state.get("ema") or state["params"]  # the generator's EMA when the run kept one
    return dict(restored["config"]), params, step
