"""The GAN step: G and D updated in one jitted step, EMA, pretrain -> adversarial switch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import load_config, override
from vsr_jax import adversarial, config_lib, errors, optimizers, sharding, train, train_state, train_step
from vsr_jax.data import pipeline


def tiny_gan_config(**overrides):
    config = load_config("srgan", "quick")
    config.model.features = 8
    config.model.num_blocks = 1
    config.data.patch_size = 8  # HR 32x32
    config.batch_size = 4
    config.gan.loss = "vanilla"
    config.gan.discriminator = "patch"
    config.gan.d_features = ()  # each discriminator's own widths
    config.gan.pretrain_steps = 2
    config.gan.weight = 0.1
    config.ema_decay = 0.9
    config.loss.vgg_weights = ""  # the recipe's "vgg19" would download
    return override(config, **overrides)


def _setup(config):
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    critic = adversarial.Critic(config)
    d_tx = optimizers.make_optimizer(config, learning_rate=config.gan.learning_rate)
    state = train_state.create_train_state(config, model, tx, mesh, critic, d_tx)
    step_fn = train_step.make_train_step(model, tx, config, critic=critic, d_tx=d_tx)
    step = train_step.jit_train_step(step_fn, mesh, pretrain_steps=config.gan.pretrain_steps)
    batch = sharding.global_batch(next(pipeline.make_train_dataset(config).as_numpy_iterator()), mesh)
    return state, step, batch


def _copy(tree):
    return jax.tree.map(lambda a: np.array(a), tree)


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("kind, disc, r1_gamma", [("vanilla", "patch", 2.0), ("ragan", "vgg", 0.0)])
def test_gan_step_updates_g_and_d_and_switches_after_pretraining(kind, disc, r1_gamma):
    config = tiny_gan_config(**{"gan.loss": kind, "gan.discriminator": disc, "gan.r1_gamma": r1_gamma})
    state, step, batch = _setup(config)
    d0, g0 = _copy(state.d_params), _copy(state.params)
    history = []
    for _ in range(4):
        state, m = step(state, batch)
        history.append((_copy(state.params), _copy(state.d_params), _copy(state.ema), jax.device_get(m)))
    # warm-up (steps 0, 1): G learns; D is neither trained nor run (its metrics log as 0)
    assert not _same(history[0][0], g0)
    assert _same(history[0][1], d0) and _same(history[1][1], d0)
    assert history[0][3]["loss_d"] == 0 and history[0][3]["loss_adversarial"] == 0
    assert history[2][3]["loss_adversarial"] > 0 and history[2][3]["loss_d"] > 0
    # the adversarial term is not part of the pretrain loss ...
    m = history[0][3]
    assert m["loss"] == pytest.approx(m["loss_pixel"], rel=1e-6)
    # ... and is from step 2 on, when D starts learning
    m = history[2][3]
    assert m["loss"] == pytest.approx(m["loss_pixel"] + 0.1 * m["loss_adversarial"], rel=1e-5)
    assert not _same(history[2][1], d0) and not _same(history[3][1], history[2][1])
    # EMA: every step ema = 0.9 ema + 0.1 params (the new ones), from ema = the initial params
    ema = g0
    for params, _, got, _ in history:
        ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, ema, params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ema), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not _same(history[3][2], history[3][0]) and not _same(history[3][2], history[2][2])
    if r1_gamma:  # D's first step (step 2) from d0, on the fakes of G's params after step 1
        _check_r1_step(config, history[1][0], d0, batch, history[2][1], history[2][3]["loss_d"])


def _check_r1_step(config, g_params, d0, batch, d1, loss_d):
    """D's objective and Adam step recomputed here: loss_d = BCE terms + γ/2 · R1 at d0, and
    D's new params d1 are the Adam step on that objective's gradient, not on the one without R1."""
    import optax

    from vsr_jax import losses

    gamma = float(config.gan.r1_gamma)
    critic, model = adversarial.Critic(config), config_lib.build_model(config)
    d_tx = optimizers.make_optimizer(config, learning_rate=config.gan.learning_rate)
    lr, hr = (np.asarray(batch[k]) for k in ("lr", "hr"))
    fake = model.apply({"params": g_params}, lr, train=True)

    @jax.jit
    def by_hand(d):
        bce = lambda d: losses.d_loss("vanilla", critic(d, hr, lr), critic(d, fake, lr))  # noqa: E731
        plain, g_plain = jax.value_and_grad(bce)(d)
        r1, g_r1 = jax.value_and_grad(lambda d: losses.r1_penalty(lambda x: critic(d, x, lr), hr))(d)
        adam = lambda g: optax.apply_updates(d, d_tx.update(g, d_tx.init(d), d)[0])  # noqa: E731
        with_r1 = jax.tree.map(lambda a, b: a + 0.5 * gamma * b, g_plain, g_r1)
        return {gamma: adam(with_r1), 0.0: adam(g_plain)}, plain, r1

    want, plain, r1 = jax.device_get(by_hand(d0))
    assert float(r1) > 0.01  # measured 0.099 (loss_d ~1.4): the penalty shows in loss_d
    assert float(loss_d) == pytest.approx(float(plain) + 0.5 * gamma * float(r1), rel=1e-5)
    for got, expected in zip(jax.tree.leaves(d1), jax.tree.leaves(want[gamma]), strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-6)
    # Adam's first step is ~lr·sign(g): R1 flips the sign of some of D's gradients
    without = zip(jax.tree.leaves(d1), jax.tree.leaves(want[0.0]), strict=True)
    assert max(float(np.abs(np.asarray(a) - b).max()) for a, b in without) > 1e-5


def test_gan_run_checkpoints_every_part_and_resumes(tmp_path):
    from vsr_jax import checkpointing

    config = tiny_gan_config(
        total_steps=3, checkpoint_every=3, eval_every=2, **{"eval.max_clips": 1, "eval.frame_stride": 25}
    )
    train.train_and_evaluate(config, str(tmp_path))
    # the preview of step 2 (eval_every) is in the TensorBoard log: LR / bicubic / SR / HR panels
    previews = _images(str(tmp_path))
    assert list(previews) == [2] and len(previews[2]) == 1, previews.keys()
    ((tag, image),) = previews[2].items()
    h, w = image.shape[0] // 2, image.shape[1] // 4  # evaluate.panels: LR / bicubic / SR / HR, crops over zooms
    assert tag.startswith("preview/") and image.shape == (2 * h, 4 * w, 3) and h >= 32, (tag, image.shape)
    bicubic, hr = (image[:h, i * w : (i + 1) * w].astype(float) for i in (1, 3))
    assert 20 < 10 * np.log10(255**2 / np.mean((bicubic - hr) ** 2)) < 50  # a real frame and its bicubic
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=1)
    saved = ckpt._manager.restore(3)["state"]  # noqa: SLF001 - inspect the raw checkpoint
    ckpt.close()
    for part in ("params", "opt_state", "ema", "d_params", "d_opt_state"):
        assert jax.tree.leaves(saved[part]), part
    _, params, step = checkpointing.load_params(str(tmp_path))
    assert step == 3 and _same(_copy(params), _copy(saved["ema"]))  # inference uses the EMA
    config.total_steps = 4
    result = train.train_and_evaluate(config, str(tmp_path))
    assert result["step"] == 4


def _images(workdir: str) -> dict:
    """{step: {tag: HxWx3 uint8}} of the images in the TensorBoard event files under `workdir`."""
    import glob

    import tensorflow as tf

    out = {}
    for path in glob.glob(f"{workdir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    encoded = tf.make_ndarray(value.tensor)[2]  # [width, height, PNG, ...]
                    out.setdefault(event.step, {})[value.tag] = tf.io.decode_png(encoded).numpy()
    return out


def test_gan_config_errors_are_named():
    with pytest.raises(errors.ConfigError, match="unknown gan.loss 'wgan'"):
        config_lib.validate(tiny_gan_config(**{"gan.loss": "wgan"}))
    with pytest.raises(errors.ConfigError, match="unknown gan.discriminator"):
        config_lib.validate(tiny_gan_config(**{"gan.discriminator": "unet"}))
    with pytest.raises(errors.ConfigError, match="needs data.num_frames >= 3"):
        config_lib.validate(tiny_gan_config(**{"gan.discriminator": "spatio_temporal"}))
    with pytest.raises(errors.ConfigError, match=r"gan.d_features must be positive widths like \(32, 64, 128\)"):
        config_lib.validate(tiny_gan_config(**{"gan.d_features": ("wide",)}))
    narrow = adversarial.Critic(tiny_gan_config(**{"gan.discriminator": "vgg", "gan.d_features": (8, 8, 16, 16, 16)}))
    assert narrow.module.features == (8, 8, 16, 16, 16)
    with pytest.raises(errors.ConfigError, match="vgg_weights"):
        train_step.build_perceptual(tiny_gan_config(**{"loss.perceptual_weight": 1.0}))


def test_perceptual_term_on_random_vgg_joins_the_objective():
    config = tiny_gan_config(
        **{
            "loss.perceptual_weight": 0.5,
            "loss.allow_random_vgg": True,
            "gan.pretrain_steps": 0,
            "loss.perceptual_layers": ("relu1_2", "conv2_2"),
            "loss.perceptual_layer_weights": (1.0, 0.5),
        }
    )
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    perceptual, frozen = train_step.build_perceptual(config)
    assert {"conv1_1", "conv2_2", "conv5_4"} <= set(frozen) and len(frozen) == 16  # all of VGG19
    state = train_state.create_train_state(config, model, tx, mesh)
    step = train_step.jit_train_step(train_step.make_train_step(model, tx, config, perceptual=perceptual), mesh, frozen)
    batch = sharding.global_batch(next(pipeline.make_train_dataset(config).as_numpy_iterator()), mesh)
    state, m = step(state, batch)
    m = jax.device_get(m)
    assert m["loss_perceptual"] > 0
    assert m["loss"] == pytest.approx(m["loss_pixel"] + 0.5 * m["loss_perceptual"], rel=1e-5)
    # identical SR and HR have zero perceptual distance
    hr = batch["hr"]
    assert float(perceptual(frozen, hr, hr)) == 0.0
    with pytest.raises(errors.ConfigError, match="one weight per layer"):
        train_step.build_perceptual(
            tiny_gan_config(**{"loss.perceptual_weight": 1.0, "loss.perceptual_layer_weights": (1.0, 2.0)})
        )


def test_video_gan_warms_up_on_pixel_and_flow_then_adds_pingpong_and_temporal():
    config = load_config("gan", "quick")
    overrides = {
        "model.features": 8,
        "model.num_blocks": 1,
        "model.flow_levels": 2,
        "model.flow_features": (4, 4),
        "data.num_frames": 3,
        "data.patch_size": 8,
        "batch_size": 2,
        "gan.loss": "",
        "gan.pretrain_steps": 2,
        "loss.flow_weight": 1.0,
        "loss.pingpong_weight": 0.5,
        "loss.temporal_weight": 0.3,
    }
    config = override(config, **overrides)
    config_lib.validate(config)
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    state = train_state.create_train_state(config, model, tx, mesh)
    step_fn = train_step.make_train_step(model, tx, config)
    step = train_step.jit_train_step(step_fn, mesh, pretrain_steps=config.gan.pretrain_steps)
    batch = sharding.global_batch(next(pipeline.make_train_dataset(config).as_numpy_iterator()), mesh)
    history = []
    for _ in range(3):
        state, m = step(state, batch)
        history.append(jax.device_get(m))
    m0, m1 = history[1], history[2]  # (step 0's SR is exactly bicubic: zero output conv)
    # warm-up: pixel + flow only (ping-pong and temporal are reported, not trained)
    assert m0["loss"] == pytest.approx(m0["loss_pixel"] + m0["loss_flow"], rel=1e-6)
    expected = m1["loss_pixel"] + m1["loss_flow"] + 0.5 * m1["loss_pingpong"] + 0.3 * m1["loss_temporal"]
    assert m1["loss"] == pytest.approx(expected, rel=1e-5)
    assert m1["loss_pingpong"] > 0 and m1["loss_temporal"] > 0 and m1["loss_flow"] > 0
    with pytest.raises(errors.ConfigError, match="loss.temporal_weight needs a model that estimates flow"):
        config_lib.validate(tiny_gan_config(**{"loss.temporal_weight": 0.1, "data.num_frames": 3}))


# ---- TecoGAN's D_s,t: motion-compensated triplets, layer loss ----------------------------------


def tiny_tecogan_config(**overrides):
    """configs/gan.py:tiny (recurrent_gan, spatio_temporal D, warp_crop 0.75, layer loss on) at batch 2."""
    return override(load_config("gan", "tiny"), **{"batch_size": 2, **overrides})


def test_tecogan_recipe_turns_on_warp_crop_and_layer_loss():
    from vsr_jax import losses

    for preset in ("full", "quick", "colab", "tiny"):
        config = load_config("gan", preset)
        assert config.gan.discriminator == "spatio_temporal" and config_lib.estimates_flow(config)
        assert config.gan.warp_crop == 0.75 and config.gan.feature_matching_weight == 1.0
        assert adversarial.feature_matching_weights(config) == pytest.approx(
            (0.02 / 12, 0.02 / 14, 0.02 / 24, 0.02 / 100)
        )
    assert losses.TECOGAN_LAYER_WEIGHTS == adversarial.feature_matching_weights(load_config("gan", "tiny"))


def test_feature_matching_loss_by_hand():
    from vsr_jax import losses

    real = [jnp.zeros((1, 1, 2, 2)), jnp.ones((1, 1, 1, 3))]
    fake = [jnp.asarray([[[[1.0, -2.0], [3.0, 0.0]]]]), jnp.zeros((1, 1, 1, 3))]
    # layer 0: per position Σ_c |diff| = 3 and 3 -> mean 3; layer 1: Σ_c = 3 -> 3
    assert float(losses.feature_matching(real, fake, (0.5, 2.0))) == pytest.approx(0.5 * 3 + 2.0 * 3)
    assert float(losses.feature_matching(fake, fake, (0.5, 2.0))) == 0.0
    assert float(losses.feature_matching(real, real, losses.TECOGAN_LAYER_WEIGHTS[:2])) == 0.0
    with pytest.raises(ValueError, match="3 weights for 2/2 layers"):
        losses.feature_matching(real, fake, (1.0, 1.0, 1.0))


def test_spatio_temporal_critic_sees_the_warped_triplet_the_triplet_and_the_lr():
    from vsr_jax.models import layers, warp

    config = tiny_tecogan_config()
    critic = adversarial.Critic(config)
    assert critic.warps and critic.keep == 0.75
    rng = np.random.default_rng(0)
    frames = jnp.asarray(rng.uniform(size=(1, 4, 32, 32, 3)), jnp.float32)  # 4 frames: one triplet
    lr = jnp.asarray(rng.uniform(size=(1, 4, 8, 8, 3)), jnp.float32)
    flows = jnp.asarray(rng.normal(scale=2.0, size=(1, 3, 32, 32, 2)), jnp.float32)
    x0, cond = critic._inputs(frames, lr, jnp.zeros_like(flows))  # noqa: SLF001
    x1, cond1 = critic._inputs(frames, lr, flows)  # noqa: SLF001
    np.testing.assert_array_equal(cond, cond1)
    np.testing.assert_array_equal(cond[..., :3], frames[:, :3])  # the unwarped triplet ...
    bicubic = layers.per_frame(lambda f: layers.upsample_bicubic(f, 4), lr[:, :3])
    np.testing.assert_allclose(cond[..., 3:], bicubic, rtol=0, atol=1e-6)  # ... and the upsampled LR
    # the warped triplet: its centre 24x24 (warp_crop 0.75 of 32) kept, a 4-pixel border zeroed
    c = slice(4, 28)
    np.testing.assert_array_equal(x0[:, :, c, c], frames[:, :3, c, c])  # zero flow: the triplet itself
    for i in range(3):
        want = warp.warp(frames[:, i], flows[:, i], padding_mode="border")
        np.testing.assert_allclose(x1[:, i, c, c], want[:, c, c], rtol=0, atol=1e-6)
    assert not np.asarray(x1)[:, :, :4].any() and not np.asarray(x1)[:, :, :, 28:].any()
    d_params = critic.init(jax.random.key(0), frames, lr)
    assert d_params["conv0"]["kernel"].shape == (4, 4, 27, 8)  # warped + unwarped + LR triplets
    y0, y1 = critic(d_params, frames, lr, jnp.zeros_like(flows)), critic(d_params, frames, lr, flows)
    assert float(jnp.max(jnp.abs(y1 - y0))) > 1e-4  # D's input changes with the flow


@pytest.mark.slow  # ~20-40 s of compiling on 2 cores; the D input test above stays in the default run
def test_d_flows_are_the_generators_ping_pong_or_reversed_pass_alike():
    """_judged: the flows D_s,t warps with, from the ping-pong pass (read backwards) and from a
    pass over the reversed clip, are the same, and are the flow network's on each pair."""
    from vsr_jax import losses
    from vsr_jax.models import flow as flow_lib
    from vsr_jax.models import warp

    config = tiny_tecogan_config()
    model, critic = config_lib.build_model(config), adversarial.Critic(config)
    rng = np.random.default_rng(0)
    lr = jnp.asarray(rng.uniform(size=(1, 3, 8, 8, 3)), jnp.float32)
    hr = jnp.asarray(rng.uniform(size=(1, 3, 32, 32, 3)), jnp.float32)
    params = jax.jit(model.init)(jax.random.key(0), lr)["params"]
    noise = lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape)  # noqa: E731
    params = {**params, "flownet": jax.tree.map(noise, params["flownet"])}  # a flow net that moves pixels

    def run(x):
        out, inter = model.apply({"params": params}, x, train=True, mutable=["intermediates"])
        return out, inter["intermediates"]["flow_to_prev"][0]

    @jax.jit  # one program for both (eager Flax scans compile op by op)
    def both(lr, hr):
        pp_judged = adversarial.judged_by(model, critic, params, lr, hr, *run(losses.pingpong_sequence(lr)), 4)  # noqa: SLF001
        return pp_judged, adversarial.judged_by(model, critic, params, lr, hr, *run(lr), 4)  # noqa: SLF001

    pp_judged, judged = both(lr, hr)
    np.testing.assert_array_equal(pp_judged[0], losses.pingpong_sequence(hr))  # D judges the ping-pong clip
    assert pp_judged[1].shape == (1, 5, 32, 32, 3) and judged[1].shape == (1, 3, 32, 32, 3)
    np.testing.assert_allclose(pp_judged[3], judged[3], rtol=0, atol=1e-5)
    spynet = flow_lib.SpyNetLite(
        levels=config.model.flow_levels,
        features=config.model.flow_features,
        kernel_size=config.model.flow_kernel_size,
    )
    net = lambda ref, supp: spynet.apply({"params": params["flownet"]}, ref, supp)  # noqa: E731
    to_mid_prev, to_mid_next = jax.jit(lambda x: (net(x[:, 1], x[:, 0]), net(x[:, 1], x[:, 2])))(lr)
    flows = np.asarray(judged[3])
    np.testing.assert_allclose(flows[:, 0], warp.flow_to_hr(to_mid_prev, 4), rtol=0, atol=1e-5)
    np.testing.assert_allclose(flows[:, 2], warp.flow_to_hr(to_mid_next, 4), rtol=0, atol=1e-5)
    assert not flows[:, 1].any() and min(np.abs(flows[:, 0]).max(), np.abs(flows[:, 2]).max()) > 0.5


@pytest.mark.slow  # ~20-40 s of compiling on 2 cores; the D input test above stays in the default run
def test_tecogan_gan_step_with_warped_triplets_and_layer_loss():
    config = tiny_tecogan_config(**{"loss.flow_weight": 1.0})
    config_lib.validate(config)
    state, step, batch = _setup(config)
    d0 = _copy(state.d_params)
    state, m = step(state, batch)
    m = jax.device_get(m)
    assert m["loss_feature_matching"] > 0 and m["loss_adversarial"] > 0 and m["loss_d"] > 0
    expected = (
        m["loss_pixel"]
        + m["loss_flow"]
        + 0.05 * m["loss_pingpong"]
        + 1e-3 * m["loss_adversarial"]
        + 1.0 * m["loss_feature_matching"]
    )
    assert m["loss"] == pytest.approx(expected, rel=1e-5)
    assert not _same(_copy(state.d_params), d0) and m["nonfinite"] == 0


def test_spatio_temporal_config_errors_and_the_unwarped_fallback(caplog):
    def error(match, **overrides):
        with pytest.raises(errors.ConfigError, match=match):
            config_lib.validate(tiny_tecogan_config(**overrides))

    error(r"gan.warp_crop must be in \(0, 1\]", **{"gan.warp_crop": 0.0})
    error("gan.feature_matching_weight must be >= 0", **{"gan.feature_matching_weight": -1.0})
    error(r"one weight per discriminator layer \(4\), got 2", **{"gan.feature_matching_layer_weights": (1.0, 2.0)})
    error("TecoGAN's default is for 4 layers", **{"gan.d_features": (8, 8, 16)})
    error(
        "gan.feature_matching_layer_weights must be numbers",
        **{"gan.feature_matching_layer_weights": ("a", "b", "c", "d")},
    )
    with pytest.raises(errors.ConfigError, match="gan.warp_crop needs gan.discriminator=spatio_temporal"):
        config_lib.validate(tiny_gan_config(**{"gan.warp_crop": 0.75}))
    with pytest.raises(errors.ConfigError, match="gan.feature_matching_weight needs gan.discriminator=spatio"):
        config_lib.validate(tiny_gan_config(**{"gan.feature_matching_weight": 1.0}))
    config_lib.validate(tiny_tecogan_config(**{"gan.d_features": (8, 8, 16), "gan.feature_matching_weight": 0.0}))
    # a model without flows: D_s,t sees unwarped triplets, and the log says so
    unaligned = tiny_gan_config(**{"gan.discriminator": "spatio_temporal", "data.num_frames": 3})
    assert not adversarial.Critic(unaligned).warps
    with caplog.at_level("WARNING"):
        config_lib.validate(unaligned)
    assert "estimates no flow, so D sees unwarped triplets" in caplog.text
