"""Reliability: stop signals, SIGKILL, non-finite steps, damaged checkpoints, bad configs, full disks.

The subprocess tests run `python -m vsr_jax.main` on the tiny U-Net of `tiny_unet_config`.
The stop/resume one compares with an uninterrupted run of the same command, both with the
XLA settings users run (`optimised_env`); the in-process ones with `straight_run`.
"""

from __future__ import annotations

import glob
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from tests.conftest import ROOT, load_config, optimised_env, override, tiny_unet_config
from vsr_jax import (
    checkpointing,
    config_lib,
    nonfinite,
    optimizers,
    preemption,
    sharding,
    train,
    train_state,
    train_step,
)
from vsr_jax.data import pipeline
from vsr_jax.errors import ConfigError

# tiny_unet_config() on the command line
TINY_ARGS = [
    "--config=configs/unet.py",
    "--config.model.features=(8, 16)",
    "--config.data.patch_size=32",
    "--config.batch_size=8",
    "--config.total_steps=30",
    "--config.log_every=1",  # a log line per step: the tests below act on them
    "--config.eval_every=1000",
    "--config.checkpoint_every=10",
    "--config.eval.frame_stride=25",
]
STEP_LINE = re.compile(r"logging_writer\.py:\d+\] \[(\d+)\] ")


def _train_command(workdir):
    return [sys.executable, "-m", "vsr_jax.main", *TINY_ARGS, f"--workdir={workdir}"]


def _start(workdir, **kwargs):
    """The training command with the users' XLA settings, its log on a pipe."""
    return subprocess.Popen(
        _train_command(workdir),
        cwd=ROOT,
        env=optimised_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )


def _run_until_step(proc, step: int, log: list) -> int:
    """Reads the trainer's log until it reports a step >= `step`; returns that step."""
    for line in proc.stderr:
        log.append(line)
        m = STEP_LINE.search(line)
        if m and int(m.group(1)) >= step:
            return int(m.group(1))
    proc.wait()
    raise AssertionError(f"the trainer ended (exit {proc.returncode}) before step {step}:\n" + "".join(log[-30:]))


def _assert_same_params(workdir_a, workdir_b):
    _, a, step_a = checkpointing.load_params(workdir_a)
    _, b, step_b = checkpointing.load_params(workdir_b)
    assert step_a == step_b
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sigterm_saves_and_sigkill_at_a_random_step_resumes_bit_exact(tmp_path, request):
    workdir = tmp_path / "run"
    # the run never interrupted, alongside (the suite's opt-level-0 `straight_run` is not what users run)
    with open(tmp_path / "reference.log", "w") as log_file:
        reference = subprocess.Popen(
            _train_command(tmp_path / "reference"), cwd=ROOT, env=optimised_env(), stderr=log_file,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    request.addfinalizer(reference.kill)  # if the test fails before it ends
    # 1. SIGTERM: a checkpoint at the current step, a line saying how to resume, exit 128 + 15
    log: list[str] = []
    proc = _start(workdir)
    seen = _run_until_step(proc, 4, log)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, rest[-3000:]
    stopped = re.search(
        r"stopped by SIGTERM at step (\d+) \(checkpoint saved\); to resume, run the same command: (.*)", rest
    )
    assert stopped, rest[-3000:]
    at = int(stopped.group(1))
    assert seen <= at < 30 and "vsr_jax.main" in stopped.group(2) and f"--workdir={workdir}" in stopped.group(2)
    assert checkpointing.Checkpointer(str(workdir), save_every=10).all_steps() == [at]

    # 2. the same command resumes there; SIGKILL at a random later step (possibly during a save)
    kill_at = random.Random().randint(min(at + 3, 25), 25)  # 5 steps short of the end: it must not finish first
    log = []
    proc = _start(workdir)
    killed_after = _run_until_step(proc, kill_at, log)
    proc.kill()
    proc.wait(timeout=60)
    assert any(f"Resuming from step {at}" in line for line in log), "".join(log[-30:])
    saved = checkpointing.Checkpointer(str(workdir), save_every=10).all_steps()
    assert saved and saved[-1] <= killed_after < 30, (saved, killed_after, kill_at)

    # 3. and again: it finishes with the parameters of a run never interrupted
    done = subprocess.run(
        _train_command(workdir), cwd=ROOT, env=optimised_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Resuming from step {saved[-1]}" in done.stderr, (saved, kill_at, done.stderr[-3000:])
    assert reference.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    _assert_same_params(str(tmp_path / "reference"), str(workdir))
    # the SIGTERM checkpoint, 10, 20, 30: the newest keep_checkpoints (3) are kept
    assert checkpointing.Checkpointer(str(workdir), save_every=10).all_steps() == [10, 20, 30]


# ---------------------------------------------------------------------- non-finite


def test_a_non_finite_step_is_skipped_and_counted():
    config = tiny_unet_config(ema_decay=0.5)
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    state = train_state.create_train_state(config, model, tx, mesh)
    step = train_step.jit_train_step(train_step.make_train_step(model, tx, config), mesh)
    batches = pipeline.make_train_dataset(config).as_numpy_iterator()
    state, _ = step(state, sharding.global_batch(next(batches), mesh))
    before = jax.device_get(state)
    poisoned = {k: v.copy() for k, v in next(batches).items()}
    poisoned["lr"][0, 0, 3, 3, 1] = np.nan  # one NaN pixel in the batch
    state, m = step(state, sharding.global_batch(poisoned, mesh))
    after = jax.device_get(state)
    assert not np.isfinite(float(m["loss"])) and float(m["nonfinite"]) == 1.0
    assert int(after.step) == 2  # the batch is consumed
    for name in ("params", "opt_state", "ema"):
        for a, b in zip(jax.tree.leaves(getattr(before, name)), jax.tree.leaves(getattr(after, name)), strict=True):
            np.testing.assert_array_equal(a, b)
    assert int(after.guard.bad_run) == 1 and int(after.guard.bad_total) == 1
    state, m = step(state, sharding.global_batch(next(batches), mesh))
    after = jax.device_get(state)
    assert np.isfinite(float(m["loss"])) and int(after.guard.bad_run) == 0 and int(after.guard.bad_total) == 1
    assert not np.array_equal(after.params["upscale_conv"]["kernel"], before.params["upscale_conv"]["kernel"])


def _poison(monkeypatch, steps):
    """The training stream gives NaN batches for these (0-based) step indices, each once."""
    remaining = set(steps)
    real = pipeline.make_train_dataset

    class Poisoned:
        def __init__(self, ds, start):
            self.ds, self.start = ds, start

        def as_numpy_iterator(self):
            for i, batch in enumerate(self.ds.as_numpy_iterator(), self.start):
                if i in remaining or "always" in remaining:
                    remaining.discard(i)
                    batch = {**batch, "lr": np.full_like(batch["lr"], np.nan)}
                yield batch

    monkeypatch.setattr(
        pipeline, "make_train_dataset", lambda config, **kw: Poisoned(real(config, **kw), kw.get("start_step", 0))
    )
    return remaining


def test_non_finite_steps_in_a_row_go_back_to_the_last_good_checkpoint_with_a_lower_lr(tmp_path, monkeypatch, caplog):
    config = tiny_unet_config(**{"nonfinite.patience": 3, "nonfinite.lr_factor": 0.25})
    remaining = _poison(monkeypatch, range(22, 27))  # 5 bad batches from the one of step 23
    result = train.train_and_evaluate(config, str(tmp_path))
    assert not remaining  # all were seen
    assert result["step"] == 30 and np.isfinite(result["psnr_y"])
    warnings = [r.getMessage() for r in caplog.records if "went back to" in r.getMessage()]
    assert len(warnings) == 1 and "the checkpoint of step 20" in warnings[0] and "x0.25" in warnings[0], warnings
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=10)
    abstract = train_state.abstract_train_state(
        config, config_lib.build_model(config), optimizers.make_optimizer(config), sharding.make_mesh()
    )
    fields, step, _, metadata = ckpt.restore_newest(train_state.state_fields(abstract))
    guard = jax.device_get(fields["guard"])
    assert step == 30 and metadata["nonfinite_run"] == 0
    assert float(guard["lr_scale"]) == 0.25 and int(guard["restores"]) == 1
    # 4 before going back (3 in a row + the one in flight when noticed), then the 5th on the replay alone
    assert int(guard["bad_total"]) == 5
    ckpt.close()


def test_non_finite_steps_in_a_row_stop_the_run_when_asked(tmp_path, monkeypatch):
    config = tiny_unet_config(**{"nonfinite.patience": 2, "nonfinite.action": "stop", "total_steps": 10})
    _poison(monkeypatch, ["always"])
    with pytest.raises(
        nonfinite.TrainingDiverged, match=r"training diverged: 2 steps in a row .*--config.learning_rate"
    ):
        train.train_and_evaluate(config, str(tmp_path))
    assert checkpointing.Checkpointer(str(tmp_path), save_every=10).all_steps() == []  # nothing bad was saved


# ----------------------------------------------------------------- damaged checkpoints


def _copy_run(straight_run, tmp_path) -> str:
    workdir = str(tmp_path / "run")
    shutil.copytree(straight_run[0], workdir)
    return workdir


def _array_files(workdir, step) -> list[str]:
    return glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**", "d", "*"), recursive=True)


def _largest_array_file(workdir, step) -> str:
    return max(_array_files(workdir, step), key=os.path.getsize)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax reading a bad file
def test_a_truncated_latest_checkpoint_is_set_aside_and_training_resumes_from_the_one_before(
    straight_run, tmp_path, caplog
):
    workdir = _copy_run(straight_run, tmp_path)
    victim = _largest_array_file(workdir, 30)
    os.truncate(victim, os.path.getsize(victim) // 2)
    result = train.train_and_evaluate(tiny_unet_config(total_steps=30), workdir)
    assert result["step"] == 30
    assert any("checkpoint of step 30" in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    assert checkpointing.Checkpointer(workdir, save_every=10).all_steps() == [10, 20, 30]
    assert os.path.isdir(os.path.join(workdir, "checkpoints_damaged", "30"))  # kept for a post-mortem
    _assert_same_params(straight_run[0], workdir)  # steps 21-30 trained again, to the same params


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax reading a bad file
def test_flipped_bits_are_caught_by_the_checksums(straight_run, tmp_path):
    workdir = _copy_run(straight_run, tmp_path)
    for victim in _array_files(workdir, 30):  # params, Adam's moments: 8 bytes in the middle of each
        if os.path.getsize(victim) > 1000:
            with open(victim, "r+b") as f:  # same size, other bytes: Orbax reads it without complaint
                f.seek(os.path.getsize(victim) // 2)
                chunk = f.read(8)
                f.seek(-8, os.SEEK_CUR)
                f.write(bytes(b ^ 0xFF for b in chunk))
    with pytest.raises(checkpointing.CheckpointError, match=r"step 30 .* damaged .*--step=20"):
        checkpointing.load_params(workdir)  # vsr-eval / vsr-upscale
    _, params, step = checkpointing.load_params(workdir, 20)
    assert step == 20
    config = tiny_unet_config()
    abstract = train_state.abstract_train_state(
        config, config_lib.build_model(config), optimizers.make_optimizer(config), sharding.make_mesh()
    )
    ckpt = checkpointing.Checkpointer(workdir, save_every=10)
    _, step, _, _ = ckpt.restore_newest(train_state.state_fields(abstract))
    assert step == 20 and ckpt.all_steps() == [10, 20]
    ckpt.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax reading a bad file
def test_no_usable_checkpoint_is_a_clear_error_and_nothing_is_moved(straight_run, tmp_path):
    workdir = _copy_run(straight_run, tmp_path)
    for step in (10, 20, 30):
        victim = _largest_array_file(workdir, step)
        os.truncate(victim, 10)
    with pytest.raises(checkpointing.CheckpointError, match=r"no usable checkpoint in .*step 30: .*step 10: "):
        train.train_and_evaluate(tiny_unet_config(total_steps=40), workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20", "30"]


# -------------------------------------------------------------------- full disk


def test_a_full_disk_fails_clearly_and_leaves_older_checkpoints_whole(straight_run, tmp_path):
    workdir = _copy_run(straight_run, tmp_path)
    shutil.rmtree(os.path.join(workdir, "checkpoints", "30"))
    assert os.path.getsize(_largest_array_file(workdir, 20)) > 24_000  # so the next one cannot be written

    def small_files():  # files may not grow past 24 kB: a write past it fails (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))

    done = subprocess.run(
        _train_command(workdir), cwd=ROOT, capture_output=True, text=True, timeout=600, preexec_fn=small_files
    )
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vsr-train: error: saving the checkpoint of step 30 failed: File too large"), last
    assert "steps 10, 20 are complete" in last and "resume" in last
    ckpt = checkpointing.Checkpointer(workdir, save_every=10)  # also clears the unfinished save's folder
    assert ckpt.all_steps() == [10, 20]
    ckpt.close()
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
    _, _, step = checkpointing.load_params(workdir)  # the checksums hold
    assert step == 20


# -------------------------------------------------------------------- config checks


def _with(**overrides):
    return tiny_unet_config(**overrides)


def _raw(config, key, value):
    """A config with `key` set to `value` whatever its type (as a config built in code may be)."""
    return ml_collections.ConfigDict(override(config.to_dict(), **{key: value}))


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: _raw(_with(), "data.pach_size", 32),
            r"unknown config key 'data.pach_size'; did you mean 'data.patch_size'",
        ),
        (lambda: _raw(_with(), "total_steps", "100"), r"'total_steps' must be an integer, got '100'"),
        (lambda: _raw(_with(), "learning_rate", "1e-3"), r"'learning_rate' must be a number"),
        (lambda: _with(**{"data.num_frames": 0}), r"data.num_frames must be >= 1"),
        (lambda: _with(**{"data.patch_size": 0}), r"data.patch_size must be >= 1"),
        (
            lambda: override(load_config("srresnet"), **{"data.scale": 8}),
            r"data.scale=8 is not supported by model 'srresnet'",
        ),
        (lambda: _with(batch_size=12), r"batch_size=12 must be a multiple of the number of devices \(8\)"),
        (lambda: _with(**{"nonfinite.action": "pray"}), r"unknown nonfinite.action 'pray'"),
        (lambda: _with(**{"model.name": "srcnnn"}), r"unknown model.name 'srcnnn'; available: "),
        (lambda: _with(**{"data.degradation": "bdx"}), r"unknown data.degradation 'bdx'; available: bi, "),
        (lambda: _with(keep_checkpoints=0), r"keep_checkpoints must be >= 1"),
        (
            lambda: _with(**{"gan.loss": "vanilla", "gan.discriminator": "patch", "data.patch_size": 2}),
            r"data.patch_size=2 \(HR 4x4\) is too small for gan.discriminator='patch'",
        ),
    ],
)
def test_config_errors_name_the_key(make, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(make(), num_devices=8)


def test_a_bad_config_fails_before_anything_is_compiled_or_written(tmp_path, monkeypatch):
    def compiled(*args, **kwargs):
        raise AssertionError("compiled before the config was checked")

    monkeypatch.setattr(jax, "jit", compiled)
    with pytest.raises(ConfigError, match="data.num_frames"):
        train.train_and_evaluate(_with(**{"data.num_frames": 0}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_ctrl_c_asks_for_a_save_and_a_second_one_stops_at_once():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signals = preemption.StopSignals(multi_process=False)
    try:
        os.kill(os.getpid(), signal.SIGINT)  # handled between bytecodes, in this thread
        assert signals.signum == signal.SIGINT  # a request: the loop saves after its step
        with pytest.raises(preemption.Preempted):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs at the next bytecode boundary
                pass
    finally:
        signals.restore()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
