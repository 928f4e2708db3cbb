"""JAX's multi-process runtime: started when the command line or the environment asks.

One process per host (TPU pod slice, multi-GPU cluster), each seeing its local devices;
after `initialize`, `jax.devices()` lists every device of every process and the training
mesh spans them all. Started when:

* the command line gives `--coordinator_address`, `--num_processes` and `--process_id`
  (or the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
  JAX_PROCESS_ID), e.g. several processes on one machine or a cluster without a
  scheduler JAX knows;
* a SLURM job runs more than one task (`srun`), or a multi-host Cloud TPU slice
  (TPU_WORKER_HOSTNAMES lists several hosts, or MEGASCALE_COORDINATOR_ADDRESS is set):
  JAX reads the addresses from the environment itself.

Must run before anything touches a JAX backend (`jax.devices()`, the first array).
"""

from __future__ import annotations

import os

from vsr_jax.errors import UserError


def _cluster_env(env) -> str:
    """The multi-process scheduler the environment names ('' when none)."""
    tasks = env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS") or "1"
    if env.get("SLURM_JOB_ID") and tasks.isdigit() and int(tasks) > 1:
        return "slurm"
    if "," in env.get("TPU_WORKER_HOSTNAMES", "") or env.get("MEGASCALE_COORDINATOR_ADDRESS"):
        return "tpu"
    return ""


def plan(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1, env=None) -> dict | None:
    """The arguments `jax.distributed.initialize` gets, or None when this is a single-process run.

    Raises UserError (one line) for an incomplete or inconsistent set of flags.
    """
    env = os.environ if env is None else env
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS", "")
    num_processes = num_processes or int(env.get("JAX_NUM_PROCESSES", "0") or 0)
    if process_id < 0 and env.get("JAX_PROCESS_ID", "") != "":
        process_id = int(env["JAX_PROCESS_ID"])
    given = [bool(coordinator_address), num_processes > 0, process_id >= 0]
    if any(given):
        if not all(given):
            raise UserError(
                "a multi-process run needs all of --coordinator_address=HOST:PORT, --num_processes=N and "
                "--process_id=I (0..N-1)"
            )
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process_id={process_id} must be between 0 and --num_processes-1 = {num_processes - 1}")
        if ":" not in coordinator_address:
            raise UserError(f"--coordinator_address={coordinator_address!r} needs a port: HOST:PORT")
        return {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    if _cluster_env(env):
        return {}  # JAX's own cluster detection fills in the addresses
    return None


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
    """Starts the distributed runtime when `plan` says so; returns whether it did."""
    args = plan(coordinator_address, num_processes, process_id)
    if args is None:
        return False
    import jax

    jax.distributed.initialize(**args)
    return True
