"""Device mesh and shardings: parameters replicated, batches split over the `data` axis."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process), axis name 'data'."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Host-local NumPy batch (B/P, ...) -> global jax.Arrays (B, ...) sharded on 'data'."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
