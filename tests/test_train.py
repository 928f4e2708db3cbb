"""Training: the loss goes down, checkpoints hold what they should, and 1 vs 8 devices agree."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import vsr_jax
from tests.conftest import ROOT, assert_user_xla_flags, optimised_env, tiny_unet_config
from vsr_jax import checkpointing, config_lib, losses, optimizers, sharding, train, train_state, train_step
from vsr_jax.data import pipeline


def test_thirty_steps_lower_the_loss_on_sample_data():
    config = tiny_unet_config()
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    state = train_state.create_train_state(config, model, tx, mesh)
    step = train_step.jit_train_step(train_step.make_train_step(model, tx, config), mesh)

    held = tiny_unet_config(seed=123, batch_size=64)  # fixed patches the training stream does not start with
    probe = next(pipeline.make_train_dataset(held).as_numpy_iterator())

    def probe_loss(params):
        return float(losses.mse(model.apply({"params": params}, probe["lr"]), probe["hr"]))

    before = probe_loss(state.params)
    it = pipeline.make_train_dataset(config).as_numpy_iterator()
    for _ in range(30):
        state, m = step(state, sharding.global_batch(next(it), mesh))
    assert np.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0
    after = probe_loss(state.params)
    assert int(state.step) == 30
    assert after < 0.97 * before, (before, after)  # measured: 0.94


def test_run_keeps_the_newest_checkpoints_and_the_loader_reads_them(straight_run):
    # bit-exact resume: tests/test_reliability.py (after SIGTERM, SIGKILL and a damaged checkpoint)
    straight, _ = straight_run
    assert checkpointing.Checkpointer(straight, save_every=10).all_steps() == [10, 20, 30]
    config, params, step = checkpointing.load_params(straight)
    assert step == 30 and config["model"]["name"] == "unet" and config["total_steps"] == 30
    assert params["upscale_conv"]["kernel"].shape == (3, 3, 8, 3 * 2 * 2)
    ckpt = checkpointing.Checkpointer(straight, save_every=10)
    metadata = ckpt.read_json(30, "metadata")
    ckpt.close()
    assert metadata["model"] == "unet" and metadata["step"] == 30 and metadata["nonfinite_run"] == 0
    assert metadata["code_version"].startswith(vsr_jax.__version__)
    assert metadata["dataset"]["name"] == "sample" and metadata["dataset"]["windows"] > 100
    assert len(metadata["dataset"]["fingerprint"]) == 16
    assert (
        metadata["checksums"]["params/upscale_conv/kernel"]
        == checkpointing.state_checksums({"params": params})["params/upscale_conv/kernel"]
    )


def test_run_writes_metrics_figure_and_config(straight_run):
    straight, straight_result = straight_run
    metrics = json.loads(open(os.path.join(straight, "eval", "metrics.json")).read())
    for key in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y", "step"):
        assert key in metrics
    assert metrics["step"] == 30 and metrics["psnr_y"] == pytest.approx(straight_result["psnr_y"])
    assert 20 < metrics["bicubic_psnr_y"] < 45 and 0.5 < metrics["bicubic_ssim_y"] < 1
    assert os.path.getsize(os.path.join(straight, "eval", "samples_step30.png")) > 10_000
    assert json.load(open(os.path.join(straight, "config.json")))["total_steps"] == 30


def test_resume_refuses_a_config_that_changes_the_model_shape_naming_the_keys(straight_run):
    straight, _ = straight_run
    changed = tiny_unet_config(**{"model.features": (8, 8), "data.scale": 4, "total_steps": 40})
    with pytest.raises(checkpointing.CheckpointError) as e:
        train.train_and_evaluate(changed, straight)
    message = str(e.value)
    assert "data.scale: 2 -> 4" in message and "model.features: [8, 16] -> [8, 8]" in message, message
    assert "total_steps" not in message  # a change that keeps the shapes is not what is refused
    assert checkpointing.Checkpointer(straight, save_every=10).all_steps() == [10, 20, 30]  # nothing written


_ONE_VS_EIGHT = textwrap.dedent(
    """
    import json, jax, numpy as np, os
    from tests.conftest import tiny_unet_config
    from vsr_jax import config_lib, optimizers, sharding, train_state, train_step
    from vsr_jax.data import pipeline

    assert jax.device_count() == 8, jax.devices()
    config = tiny_unet_config()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    batches = pipeline.make_train_dataset(config).as_numpy_iterator()
    batches = [next(batches) for _ in range(10)]
    init = train_state.create_train_state(config, model, tx, sharding.make_mesh(jax.devices()[:1]))
    init = jax.device_get(init)
    out = {}
    for n in (1, 8):
        mesh = sharding.make_mesh(jax.devices()[:n])
        state = jax.device_put(init, sharding.replicated(mesh))
        step = train_step.jit_train_step(train_step.make_train_step(model, tx, config), mesh)
        losses = []
        for batch in batches:  # the same 10 steps
            state, m = step(state, sharding.global_batch(batch, mesh))
            losses.append(float(m["loss"]))
        assert len(state.params["upscale_conv"]["kernel"].sharding.device_set) == n
        out[n] = {"loss": losses, "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(state.params)]}
    # the 8-device state, saved by Orbax, restores onto meshes of 1 and 4 devices
    import sys
    from vsr_jax import checkpointing
    ckpt = checkpointing.Checkpointer(sys.argv[1], save_every=1, async_save=False)
    ckpt.save(2, train_state.state_fields(state), config.to_dict(), {}, force=True)
    for n in (1, 4):
        target = jax.device_put(init, sharding.replicated(sharding.make_mesh(jax.devices()[:n])))
        fields, saved_step, _, _ = ckpt.restore_newest(train_state.state_fields(checkpointing.abstract_like(target)))
        assert saved_step == 2
        restored = train_state.from_fields(fields)
        assert len(restored.params["upscale_conv"]["kernel"].sharding.device_set) == n
        for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        out[f"restored_on_{n}"] = True
    ckpt.close()
    out["xla_flags"] = os.environ["XLA_FLAGS"]
    print(json.dumps(out))
    """
)


def test_same_step_on_one_and_eight_devices_and_checkpoint_restores_on_one_and_four(tmp_path):
    # with the XLA settings users run (the suite's opt level 0 and YNN off are not)
    env = optimised_env(XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _ONE_VS_EIGHT, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_user_xla_flags(out["xla_flags"])
    assert out["restored_on_1"] and out["restored_on_4"]
    pairs = zip(out["1"]["params"], out["8"]["params"], strict=True)
    param_diff = max(float(np.abs(np.subtract(a, b)).max()) for a, b in pairs)
    loss_diff = float(np.abs(np.subtract(out["1"]["loss"], out["8"]["loss"])).max())
    print("1 vs 8 devices, 10 steps: largest |loss difference|", loss_diff, "|param difference|", param_diff)
    assert loss_diff <= 1e-5 and param_diff <= 1e-5, (loss_diff, param_diff)
    # the evaluator's loader (vsr-eval, vsr-upscale) reads it in this one-device process
    # (Orbax refuses another topology unless given a target)
    from vsr_jax import checkpointing

    assert jax.device_count() == 1
    _, params, step = checkpointing.load_params(str(tmp_path / "run"), 2)
    assert step == 2
    for a, b in zip(jax.tree.leaves(params), out["8"]["params"], strict=True):
        np.testing.assert_array_equal(np.asarray(a).ravel(), np.asarray(b, np.float32))


def test_recurrent_video_model_trains_and_evaluates_whole_clips(tmp_path):
    """configs/convlstm.py:quick, shrunk: T = 3 clips in training, whole held-out clips in evaluation."""
    from tests.conftest import load_config

    config = load_config("convlstm", "quick")
    config.model.features = 8
    config.model.flow_features = (4, 4, 4, 4)
    config.model.dtype = "bfloat16"
    config.data.num_frames = 3
    config.data.patch_size = 16
    config.batch_size = 2
    config.total_steps = 4
    config.checkpoint_every = 4
    config.log_every = 2
    config.eval.max_clips = 1
    result = train.train_and_evaluate(config, str(tmp_path))
    assert result["step"] == 4
    (clip,) = result["clips"].values()
    assert clip["num_frames"] >= 50  # a whole held-out shot, through the model as one sequence
    # starts as bicubic (zero-initialised output): after 4 steps it is still within 0.5 dB of it
    assert abs(result["psnr_y"] - result["bicubic_psnr_y"]) < 0.5
