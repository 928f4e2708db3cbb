"""Training options the published recipes need (issue 20): the centre-frame loss
(`loss.frames`, EDVR), training only some modules first (`train_only_*`, EDVR's tsa_iter),
cosine restarts of unequal periods (`lr_restart_periods`), and the recipes themselves
(configs/edvr.py, configs/basicvsrpp.py: slow, two steps then a resume)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import load_config, override
from vsr_jax import checkpointing, config_lib, losses, models, optimizers, sharding, train, train_state, train_step
from vsr_jax.errors import ConfigError

LR = 1e-3


def tiny_edvr_config(**overrides):
    config = load_config("edvr", "quick")
    config.model.num_feat = 8
    config.data.patch_size = 8
    config.batch_size = 2
    config.learning_rate = LR
    config.lr_schedule = "constant"
    return override(config, **overrides)


def _setup(config):
    model = config_lib.build_model(config)
    mesh = sharding.make_mesh(jax.devices()[:1])
    tx = optimizers.make_optimizer(config)
    state = train_state.create_train_state(config, model, tx, mesh)
    rng = np.random.default_rng(0)
    n, t, p, s = config.batch_size, config.data.num_frames, config.data.patch_size, config.data.scale
    batch = {
        "lr": rng.uniform(0, 1, (n, t, p, p, 3)).astype(np.float32),
        "hr": rng.uniform(0, 1, (n, t, s * p, s * p, 3)).astype(np.float32),
    }
    step = train_step.jit_train_step(train_step.make_train_step(model, tx, config), mesh)
    return model, state, sharding.global_batch(batch, mesh), batch, step


def test_edvr_restores_only_the_frames_asked_for():
    model = models.create_model("edvr", 4, {"num_feat": 8, "deformable_groups": 2, "num_extract_block": 1,
                                            "num_reconstruct_block": 1})  # fmt: skip
    lr = np.random.default_rng(0).uniform(0, 1, (1, 5, 8, 8, 3)).astype(np.float32)
    params = models.init_variables(model, jax.random.key(0), lr)["params"]
    apply = jax.jit(model.apply, static_argnames=("train", "output_frames"))
    with jax.default_matmul_precision("highest"):
        every = apply({"params": params}, lr, train=True)
        middle = apply({"params": params}, lr, train=True, output_frames=(2,))
        ends = apply({"params": params}, lr, output_frames=(0, 4))
    assert middle.shape == (1, 1, 32, 32, 3) and ends.shape == (1, 2, 32, 32, 3)
    np.testing.assert_allclose(middle[:, 0], every[:, 2], atol=1e-5)
    np.testing.assert_allclose(ends, every[:, [0, 4]], atol=1e-5)
    with pytest.raises(ValueError, match="output_frames"):
        model.apply({"params": params}, lr, output_frames=(5,))


def test_centre_frame_loss_is_the_middle_frames_charbonnier():
    config = tiny_edvr_config(total_steps=1, train_only_steps=0)
    model, state, gbatch, batch, step = _setup(config)
    params = jax.device_get(state.params)
    _, m = step(state, gbatch)
    sr = jax.jit(lambda p, x: model.apply({"params": p}, x, train=True))(params, batch["lr"])
    want = losses.pixel_loss(config.loss)(sr[:, 2:3], batch["hr"][:, 2:3])
    assert float(m["loss"]) == pytest.approx(float(want), rel=1e-4)
    # every frame's loss is another number: the option is what decides
    every = losses.pixel_loss(config.loss)(sr, batch["hr"])
    assert abs(float(every) - float(want)) > 1e-4


def test_only_the_named_modules_learn_for_the_first_steps():
    config = tiny_edvr_config(total_steps=3, train_only_steps=2)
    _, state, gbatch, _, step = _setup(config)
    before = jax.device_get(state.params)
    states = []
    for _ in range(3):
        state, _ = step(state, gbatch)
        states.append(jax.device_get(state.params))
    for i in (0, 1):  # the TSA phase: only `fusion` moves
        for name, p in states[i].items():
            moved = any(np.any(a != b) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(before[name]), strict=True))
            assert moved == (name == "fusion"), (i, name)
    # step 3 is the others' first Adam step (their moments did not see the frozen steps'
    # gradients): each param moves by lr·|g|/(|g| + ε), i.e. by lr unless its gradient is tiny
    change = np.abs(states[2]["conv_first"]["kernel"] - states[1]["conv_first"]["kernel"])
    assert np.all(change > 0) and change.max() <= LR * (1 + 1e-4)
    assert np.median(change) == pytest.approx(LR, rel=1e-2)


def test_cosine_restart_periods_follow_basicsr():
    config = config_lib.base_config()
    config.learning_rate, config.lr_schedule, config.total_steps = 4e-4, "cosine_restarts", 60
    config.lr_restart_periods, config.lr_min_ratio = (10, 20, 30), 1e-7 / 4e-4
    schedule = optimizers.make_schedule(config)

    def basicsr(i):  # CosineAnnealingRestartLR, restart weights 1
        ends = np.cumsum((10, 20, 30))
        k = int(np.searchsorted(ends, i, side="right"))
        start, period = (0 if k == 0 else ends[k - 1]), (10, 20, 30)[k]
        return 1e-7 + 0.5 * (4e-4 - 1e-7) * (1 + math.cos(math.pi * (i - start) / period))

    for i in (0, 5, 9, 10, 15, 29, 30, 45, 59):
        assert float(schedule(i)) == pytest.approx(basicsr(i), rel=1e-5), i


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss.frames": "middle"}, "loss.frames must be one of all, center"),
        ({"train_only_modules": ("tsa",)}, r"train_only_modules \['tsa'\] are not modules of 'edvr'"),
        ({"train_only_modules": ()}, "train_only_steps needs train_only_modules"),
        ({"lr_restart_periods": (10, 0)}, "lr_restart_periods must be positive"),
    ],
)
def test_bad_options_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(tiny_edvr_config(**overrides))


def test_centre_frame_loss_refuses_the_temporal_terms():
    config = load_config("convlstm", "quick")
    config.loss.frames, config.loss.pingpong_weight = "center", 0.5
    with pytest.raises(ConfigError, match="loss.frames=center scores one frame per clip; loss.pingpong_weight"):
        config_lib.validate(config)
    config.loss.pingpong_weight, config.fix_flow_steps = 0.0, 10
    config.train_only_modules, config.train_only_steps = ("flownet",), 5
    with pytest.raises(ConfigError, match="cannot be combined"):
        config_lib.validate(config)


@pytest.mark.slow
def test_edvr_quick_recipe_trains_two_steps_and_resumes(tmp_path):
    config = tiny_edvr_config(total_steps=1, train_only_steps=1)
    config.checkpoint_every, config.eval.max_clips, config.eval.frame_stride = 1, 1, 50
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    _, first, step = checkpointing.load_params(workdir)
    assert step == 1
    config.total_steps = 2
    result = train.train_and_evaluate(config, workdir)
    _, second, step = checkpointing.load_params(workdir)
    assert step == 2 and result["step"] == 2 and np.isfinite(result["psnr_y"])
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), first, second)
    # after the TSA phase the rest learns (the PCD's offset convs only from the step after:
    # the DCNs' conv_offset starts at zero, as BasicSR's init_offset, so no gradient reaches them yet)
    assert moved["conv_first"]["kernel"] and moved["pcd_align"]["dcn_pack"]["l1"]["kernel"]


def test_recipes_follow_the_authors_numbers():
    edvr, wotsa, bvpp = load_config("edvr"), load_config("edvr", "wotsa"), load_config("basicvsrpp")
    assert (edvr.learning_rate, edvr.batch_size, edvr.total_steps) == (4e-4, 32, 600_000)
    assert tuple(edvr.lr_restart_periods) == (50_000, 100_000, 150_000, 150_000, 150_000)
    assert (edvr.loss.frames, tuple(edvr.train_only_modules), edvr.train_only_steps) == ("center", ("fusion",), 50_000)
    assert not wotsa.model.with_tsa and wotsa.train_only_steps == 0
    assert (bvpp.learning_rate, bvpp.batch_size, bvpp.data.num_frames, bvpp.total_steps) == (1e-4, 8, 30, 600_000)
    assert (bvpp.flow_lr_mul, bvpp.fix_flow_steps, bvpp.model.spynet_init) == (0.25, 5000, "spynet_mmagic")
    assert jnp.isclose(optimizers.make_schedule(bvpp)(600_000 - 1), 1e-7, rtol=1e-2)
