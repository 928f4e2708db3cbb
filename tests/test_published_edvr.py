"""`edvr` equals BasicSR 1.4.2's EDVR on the same weights, and its exported parts
(`DCNv2Pack`, `PCDAlignment`, `TSAFusion`, which IconVSR reuses) keep the authors' names."""

import os
import subprocess

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsr_jax.models.edvr as edvr  # registers "edvr"
from tests import published_helpers as ph
from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.models import frame_windows, layers
from vsr_jax.pretrained import convert


def test_dcnv2pack_with_zero_offset_conv_is_a_half_masked_conv():
    """A fresh DCNv2Pack (conv_offset zero, as the authors' init) samples the plain grid with
    mask sigmoid(0) = 1/2: half the conv of `x` plus the bias; its params are the authors'."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 8))
    feat = jax.random.normal(jax.random.key(1), (2, 7, 9, 8))
    dcn = edvr.DCNv2Pack(6, deformable_groups=2)
    params = jax.jit(dcn.init)(jax.random.key(2), x, feat)["params"]
    assert jax.tree_util.tree_map(jnp.shape, params) == {
        "kernel": (3, 3, 8, 6),
        "bias": (6,),
        "conv_offset": {"kernel": (3, 3, 8, 54), "bias": (54,)},
    }
    params["bias"] = jnp.arange(6.0)
    want = 0.5 * layers.conv2d(x, params["kernel"]) + params["bias"]
    np.testing.assert_allclose(jax.jit(dcn.apply)({"params": params}, x, feat), want, atol=1e-5)


def test_pcd_and_tsa_take_the_documented_shapes_and_names():
    """Shapes and names only (their values: the parity tests below)."""
    n, c, h, w = 2, 8, 8, 12
    nbr = [jax.ShapeDtypeStruct((n, h >> i, w >> i, c), jnp.float32) for i in range(3)]
    pcd = edvr.PCDAlignment(c, deformable_groups=2)
    params = jax.eval_shape(pcd.init, jax.random.key(1), nbr, nbr)["params"]
    assert sorted(params) == [
        "cas_dcnpack", "cas_offset_conv1", "cas_offset_conv2", "dcn_pack",
        "feat_conv", "offset_conv1", "offset_conv2", "offset_conv3",
    ]  # fmt: skip
    assert sorted(params["offset_conv3"]) == ["l1", "l2"] and sorted(params["dcn_pack"]) == ["l1", "l2", "l3"]
    assert params["offset_conv2"]["l2"]["kernel"].shape == (3, 3, 2 * c, c)
    assert jax.eval_shape(pcd.apply, {"params": params}, nbr, nbr).shape == (n, h, w, c)
    tsa = edvr.TSAFusion(c, num_frame=3, center_frame_idx=1)
    aligned = jax.ShapeDtypeStruct((n, 3, h, w, c), jnp.float32)
    params = jax.eval_shape(tsa.init, jax.random.key(1), aligned)["params"]
    assert params["feat_fusion"]["kernel"].shape == (1, 1, 3 * c, c) and len(params) == 13
    assert jax.eval_shape(tsa.apply, {"params": params}, aligned).shape == (n, h, w, c)


recipe = ph.recipe("edvr")


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("edvr")


def narrow(key: str, **extra) -> tuple[nn.Module, dict]:
    kwargs, padding = recipe.CONFIGS[key]
    model = models.create_model("edvr", 4, {**kwargs, "padding": padding, **extra})
    return model, kwargs


def count(abstract) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract))


@pytest.mark.parametrize("key", list(recipe.CONFIGS))
def test_equals_basicsr_on_every_frame(ref, key):
    """Every frame of a 6-frame clip: ours on the whole clip against the authors' network on
    each frame's window (BasicSR's generate_frame_indices), offsets of 1-4 px."""
    model, kwargs = narrow(key)
    sd = recipe.seeded_state_dict(**kwargs)
    np.testing.assert_allclose(recipe.checksums(sd), ref[f"{key}_weight_checksums"], rtol=1e-12)
    params = convert.state_dict_to_params(sd)
    lr = ref["frames"].astype(np.float32) / np.float32(255)  # (1, 6, 20, 20, 3)
    abstract = ph.abstract_params(model.init, lr.shape)
    convert.check_params(params, abstract, "EDVR")
    assert count(abstract) == int(ref[f"{key}_param_count"])
    np.testing.assert_array_equal(
        frame_windows.window_indices(lr.shape[1], model.num_frame, model.padding), ref[f"{key}_index"]
    )
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    assert out.shape == (1, 6, 80, 80, 3)
    s = recipe.STRIDE
    diff = float(np.max(np.abs(out[:, :, ::s, ::s] - ref[f"{key}_output_strided"])))
    mean_diff = float(np.max(np.abs(out.astype(np.float64).mean(axis=(2, 3)) - ref[f"{key}_output_mean"])))
    print(f"edvr {key}: max|diff| {diff:.2e} (every {s}rd row/column), per-frame mean {mean_diff:.2e}")
    assert diff <= 1e-4 and mean_diff <= 1e-5


def test_training_pass_equals_basicsr_too(ref):
    """With train=True all windows run in one batch (inference: one frame after another)."""
    model, kwargs = narrow("tsa")
    params = convert.state_dict_to_params(recipe.seeded_state_dict(**kwargs))
    lr = ref["frames"].astype(np.float32) / np.float32(255)
    out = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x, train=True))(params, lr))
    s = recipe.STRIDE
    assert float(np.max(np.abs(out[:, :, ::s, ::s] - ref["tsa_output_strided"]))) <= 1e-4


def test_sizes_not_multiple_of_4_and_short_clips_run(ref):
    """The authors assert h, w % 4 == 0; ours pads and crops (equal to theirs where theirs runs:
    the parity tests). A 2-frame 22×18 clip (windows clamped into the clip)."""
    model, kwargs = narrow("tsa")
    params = convert.state_dict_to_params(recipe.seeded_state_dict(**kwargs))
    lr = jax.random.uniform(jax.random.key(0), (1, 2, 22, 18, 3))
    out = jax.jit(model.apply)({"params": params}, lr)
    assert out.shape == (1, 2, 88, 72, 3) and bool(jnp.all(jnp.isfinite(out)))
    # the bilinear skip carries the frame: the output is near it (the narrow net adds ~0.2)
    base = layers.per_frame(lambda f: layers.upsample_bilinear(f, 4), lr)
    assert float(jnp.mean(jnp.abs(out - base))) < 0.5
    # a frame side too short to reflect (2 rows) is edge-padded
    small = jax.eval_shape(model.apply, {"params": params}, jax.ShapeDtypeStruct((1, 1, 2, 5, 3), jnp.float32))
    assert small.shape == (1, 1, 8, 20, 3)


@pytest.mark.parametrize("name", ["M", "L"])
def test_published_sizes_have_the_authors_parameter_counts(ref, name):
    """EDVR_M (3.30 M) and EDVR_L (20.6 M). (The npz also holds the authors' counts of M_woTSA,
    L on 7 frames and L with predeblur: ours equal them too, 5-7 s each to trace, not run here.)"""
    model = models.create_model("edvr", 4, recipe.PUBLISHED[name])
    assert count(ph.abstract_params(model.init, (1, 1, 16, 16, 3))) == int(ref[f"param_count_{name}"])


def test_options_and_wrong_files():
    with pytest.raises(ValueError, match="only scale 4"):
        ph.abstract_params(models.create_model("edvr", 2, {"num_feat": 8}).init, (1, 1, 16, 16, 3))
    with pytest.raises(ValueError, match="num_frame must be odd"):
        ph.abstract_params(models.create_model("edvr", 4, {"num_frame": 4}).init, (1, 1, 16, 16, 3))
    with pytest.raises(ValueError, match=r"\(N, T, h, w, 3\)"):
        ph.abstract_params(narrow("tsa")[0].init, (1, 16, 16, 3))
    model, kwargs = narrow("tsa")
    abstract = ph.abstract_params(model.init, (1, 1, 16, 16, 3))
    wider = convert.state_dict_to_params(recipe.seeded_state_dict(**{**kwargs, "num_feat": 8}))
    with pytest.raises(UserError, match=r"of another shape \(e\.g\. conv_first/bias: file \[8\], model \[16\]"):
        convert.check_params(wider, abstract, "wide.pth")
    blur = convert.state_dict_to_params(recipe.seeded_state_dict(**recipe.CONFIGS["predeblur"][0]))
    with pytest.raises(
        UserError, match=r"^blur\.pth does not fit the model: keys 28 missing \(e\.g\. conv_first/bias\)"
    ):
        convert.check_params(blur, abstract, "blur.pth")


def test_inference_is_one_loop_over_output_frames():
    """Alignment, fusion and reconstruction run frame after frame in one XLA loop: the program
    is the same size at 2 and 9 frames (one frame's HR features alive at a time)."""
    model, _ = narrow("tsa")
    params = ph.abstract_params(model.init, (1, 2, 16, 16, 3))

    def program(t):
        lr = jax.ShapeDtypeStruct((1, t, 16, 16, 3), jnp.float32)
        return str(jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x))(params, lr))

    short, long = program(2), program(9)
    assert "scan[" in short and len(long) <= 1.001 * len(short)


TORCH_PYTHON = "/tmp/tvenv/bin/python"  # torch + torchvision + basicsr (tests/data/published/README.md)


@pytest.mark.slow  # ~2 min on a loaded 2-core CPU: BasicSR's EDVR_M on 6 windows, then ours compiled
@pytest.mark.skipif(not os.path.exists(TORCH_PYTHON), reason=f"no torch venv at {TORCH_PYTHON}")
def test_published_width_equals_basicsr(tmp_path):
    """EDVR_M's size (num_feat 64, 8 offset groups, 5 + 10 blocks, TSA), the authors' code run
    now by make_edvr.py --full_width on the same seeded weights: every pixel of every frame."""
    path = tmp_path / "full.npz"
    proc = subprocess.run(
        [TORCH_PYTHON, str(ph.DATA / "make_edvr.py"), "--full_width", str(path)],
        capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(path) as f:
        ref = dict(f)
    kwargs = recipe.PUBLISHED["M"]
    model = models.create_model("edvr", 4, kwargs)
    params = convert.state_dict_to_params(recipe.seeded_state_dict(**kwargs))
    lr = ref["frames"].astype(np.float32) / np.float32(255)
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    diff = float(np.max(np.abs(out - ref["output"])))
    print(f"edvr M x4: max|diff| {diff:.2e} over {out.size} values (output std {ref['output'].std():.3f})")
    assert out.shape == ref["output"].shape and diff <= 1e-4
