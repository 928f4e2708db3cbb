"""Multi-process training through JAX's distributed runtime: when it starts, and a
two-process run on localhost (Gloo collectives on the CPU) that agrees with one process.
The processes run with the XLA settings users run (`optimised_env`), not the suite's."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from tests.conftest import ROOT, assert_user_xla_flags, optimised_env
from vsr_jax import checkpointing, distributed
from vsr_jax.errors import UserError


def test_plan_reads_flags_environment_and_schedulers():
    assert distributed.plan(env={}) is None
    assert distributed.plan("10.0.0.1:1234", 4, 2, env={}) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 2,
    }
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}
    assert distributed.plan(env=env) == {"coordinator_address": "h:1", "num_processes": 2, "process_id": 0}
    assert distributed.plan(env={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) == {}  # JAX reads SLURM itself
    assert distributed.plan(env={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    assert distributed.plan(env={"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}) == {}
    assert distributed.plan(env={"TPU_WORKER_HOSTNAMES": "localhost"}) is None
    with pytest.raises(UserError, match="needs all of"):
        distributed.plan("h:1", 0, -1, env={})
    with pytest.raises(UserError, match="between 0"):
        distributed.plan("h:1", 2, 2, env={})
    with pytest.raises(UserError, match="port"):
        distributed.plan("localhost", 2, 0, env={})


_RUN = textwrap.dedent(
    """
    import json, sys
    pid, port, workdir, overrides = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    from vsr_jax import distributed
    if pid >= 0:
        distributed.initialize(f"127.0.0.1:{port}", 2, pid)
    import jax, os
    from tests.conftest import tiny_unet_config
    from vsr_jax import train
    config = tiny_unet_config(**{"eval.max_clips": 1, "eval.frame_stride": 25, **overrides})
    result = train.train_and_evaluate(config, workdir)
    print("RESULT " + json.dumps({"process": jax.process_index(), "count": jax.process_count(),
                                  "devices": jax.device_count(), "step": result["step"],
                                  "psnr_y": result.get("psnr_y"), "preempted": result.get("preempted", False),
                                  "xla_flags": os.environ["XLA_FLAGS"]}))
    """
)
SHORT = {"total_steps": 4, "checkpoint_every": 2}  # the run the two- and one-process tests compare


def _run_args(pid: int, port: str, workdir, overrides: dict) -> list[str]:
    """`_RUN` as process `pid` of 2 (-1: a run of its own) with `tiny_unet_config(**overrides)`."""
    return [sys.executable, "-c", _RUN, str(pid), port, str(workdir), json.dumps(overrides)]


def _start_two(workdir, overrides: dict) -> list[subprocess.Popen]:
    """Processes 0 and 1 of a two-process run (2 virtual CPU devices each) on localhost."""
    env = optimised_env(PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=2")
    port = str(_free_port())
    return [
        subprocess.Popen(
            _run_args(i, port, workdir, overrides),
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in (0, 1)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_diff(a, b) -> float:
    """The largest |difference| between two parameter trees."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in pairs)


def _result(stdout: str) -> dict:
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))[7:])


def test_two_processes_on_localhost_train_together_and_agree_with_one(tmp_path):
    workdir = str(tmp_path / "two")
    procs = _start_two(workdir, SHORT)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [_result(out) for out, _ in outs]
    assert [r["process"] for r in results] == [0, 1] and all(r["count"] == 2 and r["devices"] == 4 for r in results)
    assert results[0]["psnr_y"] == results[1]["psnr_y"]  # one set of parameters, replicated
    assert_user_xla_flags(results[0]["xla_flags"])
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "4"))  # written by both, through Orbax
    assert os.path.exists(os.path.join(workdir, "eval", "metrics.json"))  # by process 0 alone

    # one process with the same 4 devices and global batch sees the same examples per step
    env = optimised_env(PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=4")
    one = subprocess.run(
        _run_args(-1, "0", tmp_path / "one", SHORT), cwd=ROOT, env=env, text=True, capture_output=True, timeout=600
    )
    assert one.returncode == 0, one.stderr[-3000:]
    single = _result(one.stdout)
    assert single["count"] == 1 and single["devices"] == 4
    # the same parameters after 4 steps (the gradient all-reduce may sum in another order)
    _, two_params, two_step = checkpointing.load_params(workdir, 4)
    _, one_params, one_step = checkpointing.load_params(str(tmp_path / "one"), 4)
    _, earlier, _ = checkpointing.load_params(workdir, 2)
    assert two_step == one_step == 4
    diff, moved = _max_diff(two_params, one_params), _max_diff(two_params, earlier)
    print("max |param difference| two processes vs one:", diff, "step 2 -> 4:", moved)
    assert diff <= 1e-5 and moved > 1e-3, (diff, moved)
    assert abs(single["psnr_y"] - results[0]["psnr_y"]) < 1e-3


def test_sigterm_to_one_process_stops_both_at_the_same_step_with_a_checkpoint(tmp_path):
    """JAX's preemption service (Orbax's `reached_preemption`): a multi-host job whose one
    host is being preempted saves on every host at one agreed step, then stops."""
    import signal
    import time

    workdir = tmp_path / "two"
    procs = _start_two(workdir, {"total_steps": 100_000, "checkpoint_every": 20})
    try:
        deadline = time.time() + 300
        while not (workdir / "checkpoints" / "20").is_dir():  # training is under way
            assert time.time() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = [_result(out) for out, _ in outs]
    assert all(r["preempted"] for r in results) and results[0]["step"] == results[1]["step"] > 20
    assert os.path.isdir(workdir / "checkpoints" / str(results[0]["step"]))
