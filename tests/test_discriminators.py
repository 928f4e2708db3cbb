"""GAN discriminators: VGG-style, PatchGAN and TecoGAN's spatio-temporal D."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vsr_jax.models import discriminators, layers
from vsr_jax.models.discriminators import create_discriminator

# small widths for the tests that run the networks
SMALL = {
    "vgg": {"features": (8, 16, 16), "dense_features": 16},  # three blocks: frames ≥ 8
    "patch": {"features": (8, 16, 16, 32)},
    "spatio_temporal": {"features": (8, 8, 16, 16)},
}


def shapes(d, x, cond=None):
    variables = jax.eval_shape(lambda: d.init(jax.random.key(0), x, cond))
    return variables["params"], jax.eval_shape(lambda v: d.apply(v, x, cond), variables)


@pytest.mark.parametrize(
    ("name", "x_shape", "with_cond", "out_shape"),
    [
        ("vgg", (2, 64, 64, 3), False, (2,)),
        ("vgg", (2, 3, 64, 64, 3), False, (2, 3)),
        ("vgg", (1, 33, 47, 3), False, (1,)),  # any size ≥ 32 (global average pooling)
        ("patch", (2, 64, 64, 3), False, (2, 6, 6, 1)),
        ("patch", (2, 3, 64, 64, 3), False, (2, 3, 6, 6, 1)),
        ("patch", (1, 256, 256, 3), False, (1, 30, 30, 1)),  # pix2pix: 30×30 patches of 70×70
        ("patch", (1, 37, 45, 3), False, (1, 2, 3, 1)),  # 37→18→9→4→3→2, 45→22→11→5→4→3
        ("spatio_temporal", (2, 3, 64, 64, 3), False, (2, 1, 4, 4, 1)),
        ("spatio_temporal", (1, 6, 48, 64, 3), True, (1, 2, 3, 4, 1)),
    ],
)
def test_discriminator_output_shapes(name, x_shape, with_cond, out_shape):
    x = jnp.zeros(x_shape)
    _, y = shapes(create_discriminator(name), x, x if with_cond else None)
    assert y.shape == out_shape
    assert y.dtype == jnp.float32


@pytest.mark.parametrize(
    ("name", "with_cond", "expected"),
    [("vgg", False, 13_728_521), ("patch", False, 2_764_737), ("spatio_temporal", False, 732_929)]
    + [("spatio_temporal", True, 742_145)],
)
def test_discriminator_default_parameter_counts(name, with_cond, expected):
    # vgg: ESRGAN's VGGStyleDiscriminator128 without BN, and a 512→100 Dense after pooling in place of
    # its 8192→100 one. patch: pix2pix's n_layers=3 D (3 input channels) with biases in place of BN.
    x = jnp.zeros((1, 3, 64, 64, 3))
    params, _ = shapes(create_discriminator(name), x, x if with_cond else None)
    assert sum(p.size for p in jax.tree.leaves(params)) == expected


def test_spatio_temporal_stacks_triplets_and_cond_along_channels():
    x = jnp.zeros((1, 6, 32, 32, 3))
    params, _ = shapes(create_discriminator("spatio_temporal"), x)
    assert params["conv0"]["kernel"].shape == (4, 4, 9, 64)
    params, _ = shapes(create_discriminator("spatio_temporal"), x, jnp.zeros((1, 6, 32, 32, 3)))
    assert params["conv0"]["kernel"].shape == (4, 4, 18, 64)


def test_spatio_temporal_errors():
    d = create_discriminator("spatio_temporal")
    with pytest.raises(ValueError, match="multiple of 3.*T=4"):
        shapes(d, jnp.zeros((1, 4, 32, 32, 3)))
    with pytest.raises(ValueError, match="expected a clip"):
        shapes(d, jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="cond shape"):
        shapes(d, jnp.zeros((1, 3, 32, 32, 3)), jnp.zeros((1, 3, 16, 16, 3)))
    with pytest.raises(ValueError, match="too small"):
        shapes(d, jnp.zeros((1, 3, 8, 32, 3)))


@pytest.mark.parametrize("name", ["vgg", "patch"])
def test_cond_is_only_for_spatio_temporal(name):
    x = jnp.zeros((1, 3, 32, 32, 3))
    with pytest.raises(ValueError, match="cond is only supported by spatio_temporal"):
        shapes(create_discriminator(name), x, x)


def test_too_small_frames_are_named():
    with pytest.raises(ValueError, match="at least 32"):
        shapes(create_discriminator("vgg"), jnp.zeros((1, 31, 64, 3)))
    with pytest.raises(ValueError, match="too small"):
        shapes(create_discriminator("patch"), jnp.zeros((1, 16, 64, 3)))


def test_create_discriminator_errors():
    with pytest.raises(KeyError, match="available: patch, spatio_temporal, vgg"):
        create_discriminator("unet")
    with pytest.raises(TypeError, match="no option"):
        create_discriminator("patch", featurs=(8,))
    with pytest.raises(ValueError, match="dtype"):
        create_discriminator("vgg", dtype="float8")
    assert set(discriminators.DISCRIMINATORS) == {"vgg", "patch", "spatio_temporal"}


# ---- running the networks (small widths) ------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def apply(d, variables, x, cond=None):
    return d.apply(variables, x, cond)


@pytest.fixture(scope="module")
def real_fake():
    """Real: white-noise HR clips (4, 3, 32, 32, 3) in [0,1]; fake: bicubic ×2 of their ×2 subsampling (blurry)."""
    real = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 3, 32, 32, 3)), jnp.float32)
    fake = jax.jit(lambda v: layers.per_frame(lambda f: layers.upsample_bicubic(f, 2), v))(real[:, :, ::2, ::2])
    return real, fake


@pytest.fixture(scope="module")
def small_variables(real_fake):
    """Initial variables of the SMALL discriminators (spatio_temporal with cond: 18 input channels)."""
    real, _ = real_fake
    out = {}
    for name, kwargs in SMALL.items():
        cond = real if name == "spatio_temporal" else None
        with jax.threefry_partitionable(False):  # quick to compile (see models.init_variables)
            out[name] = jax.jit(create_discriminator(name, **kwargs).init)(jax.random.key(1), real, cond)
    return out


def test_spatio_temporal_triplets_do_not_overlap(small_variables):
    d = create_discriminator("spatio_temporal", **SMALL["spatio_temporal"])
    rng = np.random.default_rng(0)
    x, cond = (jnp.asarray(rng.uniform(size=(1, 9, 32, 32, 3)), jnp.float32) for _ in range(2))
    y = apply(d, small_variables["spatio_temporal"], x, cond)
    y2 = apply(d, small_variables["spatio_temporal"], x.at[:, 4].add(0.5), cond)  # a frame of triplet 3-5
    changed = np.asarray(jnp.max(jnp.abs(y2 - y), axis=(2, 3, 4)))[0]
    assert changed[1] > 0 and changed[0] == 0 and changed[2] == 0, changed


@pytest.mark.parametrize("name", list(SMALL))
def test_discriminator_learns_real_from_fake(name, real_fake, small_variables):
    real, fake = real_fake
    n = real.shape[0]
    both = jnp.concatenate([real, fake])  # one pass over real and fake: half the graph to compile
    # TecoGAN conditions on the upsampled LR: the same for the real and the fake clip
    cond = jnp.concatenate([fake, fake]) if name == "spatio_temporal" else None
    d = create_discriminator(name, **SMALL[name])
    tx = optax.adam(1e-3)

    def loss_fn(params):
        logits = d.apply({"params": params}, both, cond)
        labels = jnp.concatenate([jnp.ones_like(logits[:n]), jnp.zeros_like(logits[n:])])
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels)), logits

    @jax.jit
    def step(params, opt):
        (loss, logits), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), opt, loss, logits

    params = small_variables[name]["params"]
    opt = tx.init(params)
    seen = []
    for _ in range(30):
        params, opt, loss, logits = step(params, opt)
        seen.append(float(loss))
    # loss is half the usual real + fake sum; it starts at log 2 = 0.693
    # measured after 30 Adam steps: loss ratio vgg 0.25, patch 0.18, spatio_temporal 0.40; the smallest
    # real logit above the largest fake one by 2.7, 2.5, 1.6
    assert seen[-1] < 0.7 * seen[0], seen
    assert float(jnp.min(logits[:n])) > float(jnp.max(logits[n:]))  # every real logit above every fake one


@pytest.mark.parametrize("name", list(SMALL))
def test_discriminator_bfloat16_compute(name, real_fake, small_variables):
    real, fake = real_fake
    cond = fake if name == "spatio_temporal" else None
    variables = small_variables[name]
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    y32 = apply(create_discriminator(name, **SMALL[name]), variables, real, cond)
    y16 = apply(create_discriminator(name, **SMALL[name], dtype="bfloat16"), variables, real, cond)
    assert y16.dtype == jnp.float32 and y16.shape == y32.shape
    diff, size = float(jnp.max(jnp.abs(y16 - y32))), float(jnp.max(jnp.abs(y32)))
    # measured diff / size: vgg 0.0050, patch 0.0076, spatio_temporal 0.0052 (logits up to 0.06–0.26)
    assert 0 < diff < 0.05 * size, (diff, size)


# ---- D_s,t's motion compensation (TecoGAN) ------------------------------------------------------


def test_triplet_flows_warp_the_outer_frames_onto_the_middle_one():
    from vsr_jax.models import warp

    rng = np.random.default_rng(0)
    to_prev, to_next = (jnp.asarray(rng.normal(size=(2, 7, 4, 5, 2)), jnp.float32) for _ in range(2))
    hr = np.asarray(discriminators.triplet_flows(to_prev, to_next, 2))
    assert hr.shape == (2, 6, 8, 10, 2)  # 7 frames: two triplets, frame 6 left out
    for k in range(2):
        np.testing.assert_allclose(hr[:, 3 * k], warp.flow_to_hr(to_prev[:, 3 * k + 1], 2), rtol=0, atol=1e-6)
        assert not hr[:, 3 * k + 1].any()  # the middle frame stays
        np.testing.assert_allclose(hr[:, 3 * k + 2], warp.flow_to_hr(to_next[:, 3 * k + 1], 2), rtol=0, atol=1e-6)
    assert np.abs(hr[:, 0]).max() > 1.0  # values × 2: not the zero flow


def test_motion_compensate_warps_each_frame_and_crops_the_border():
    from vsr_jax.models import warp

    rng = np.random.default_rng(1)
    frames = jnp.asarray(rng.uniform(size=(1, 3, 16, 16, 3)), jnp.float32)
    flows = jnp.asarray(rng.normal(scale=2.0, size=(1, 3, 16, 16, 2)), jnp.float32)
    # a zero flow (or none) gives the frames themselves, exactly
    assert np.array_equal(discriminators.motion_compensate(frames, jnp.zeros_like(flows)), frames)
    assert discriminators.motion_compensate(frames) is frames
    got = np.asarray(discriminators.motion_compensate(frames, flows))
    for i in range(3):
        want = warp.warp(frames[:, i], flows[:, i], padding_mode="border")
        np.testing.assert_allclose(got[:, i], want, rtol=0, atol=1e-6)
    assert np.abs(got - np.asarray(frames)).max() > 0.1
    # keep 0.75 of 16: the centre 12x12 (TecoGAN's crop_dt: crop, pad with zeros)
    cropped = np.asarray(discriminators.motion_compensate(frames, flows, keep=0.75))
    np.testing.assert_array_equal(cropped[:, :, 2:14, 2:14], got[:, :, 2:14, 2:14])
    inside = np.zeros((16, 16), bool)
    inside[2:14, 2:14] = True
    assert not cropped[:, :, ~inside].any()


def test_spatio_temporal_returns_its_layer_features(real_fake, small_variables):
    real, _ = real_fake
    d = create_discriminator("spatio_temporal", **SMALL["spatio_temporal"])
    variables = small_variables["spatio_temporal"]
    logits, features = jax.jit(lambda v: d.apply(v, real, real, return_features=True))(variables)
    np.testing.assert_array_equal(logits, apply(d, variables, real, real))
    # (4 clips · 1 triplet, 32/2^i, 32/2^i, width i), after each stride-2 conv's LeakyReLU
    assert [f.shape for f in features] == [(4, 16, 16, 8), (4, 8, 8, 8), (4, 4, 4, 16), (4, 2, 2, 16)]
    assert all(float(jnp.min(f)) < 0 < float(jnp.max(f)) for f in features)  # LeakyReLU: both signs
