"""`basicvsrpp` equals MMagic 1.2.0's BasicVSRPlusPlusNet, and MMagic's checkpoint layout
loads onto it by name.

The fixture (tests/data/published/make_basicvsrpp.py, MMagic's own module with mmcv's
modulated deformable conv computed by ``torchvision.ops.deform_conv2d``) holds two 6-frame
36×36 clips, one moving and one mirror-extended (MMagic's ``check_if_mirror_extended``
path), every 7th row and column of the ×4 outputs and their per-frame means; the weights, in
MMagic's names under ``generator.``, are rebuilt here with NumPy and checked against the
script's checksums. No torch.
"""

import functools
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsr_jax.models.basicvsrpp as basicvsrpp
from tests import published_helpers as ph
from vsr_jax.errors import UserError
from vsr_jax.models import deform, spynet
from vsr_jax.pretrained import convert, mmagic

recipe = ph.recipe("basicvsrpp")
NARROW = {"mid_channels": recipe.MID, "num_blocks": recipe.BLOCKS}


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("basicvsrpp")


def _abstract(model):
    return ph.abstract_params(model.init, (1, 2, 16, 16, 3))


@pytest.fixture(scope="module")
def narrow_abstract():
    return _abstract(basicvsrpp.BasicVSRPlusPlus(**NARROW))


def _params(sd, abstract):
    """An MMagic checkpoint's state_dict -> our params, as the importer does: the generator,
    MMagic's renames, SPyNet's buffers checked and skipped, every key and shape checked."""
    sd, which = mmagic.select_generator(sd)
    assert which == "generator" and mmagic.is_mmagic(sd)
    sd = mmagic.to_ours(sd)
    spynet.check_buffers(sd, "spynet.")
    params = convert.state_dict_to_params(sd, skip=spynet.buffer_keys("spynet."))
    convert.check_params(params, abstract, "the BasicVSR++ state_dict")
    return params


@pytest.fixture(scope="module")
def checkpoint(ref):
    sd = recipe.state_dict()
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["checksums"], rtol=1e-12)
    return {"step_counter": np.zeros(1, np.float32), **{f"generator.{k}": v for k, v in sd.items()}}


def test_mmagic_names_land_on_the_authors_modules(checkpoint, narrow_abstract):
    params = _params(checkpoint, narrow_abstract)
    mid = recipe.MID
    dcn = params["deform_align"]["forward_2"]
    np.testing.assert_array_equal(
        dcn["kernel"], checkpoint["generator.deform_align.forward_2.weight"].transpose(2, 3, 1, 0)
    )
    assert dcn["kernel"].shape == (3, 3, 2 * mid, mid)
    assert dcn["conv_offset_6"]["kernel"].shape == (3, 3, mid, 27 * 16)
    assert params["backbone"]["forward_2"]["main_0"]["kernel"].shape == (3, 3, 5 * mid, mid)
    np.testing.assert_array_equal(params["upconv2"]["bias"], checkpoint["generator.upsample2.upsample_conv.bias"])
    np.testing.assert_array_equal(
        params["spynet"]["basic_module_5"]["basic_module_8"]["bias"],
        checkpoint["generator.spynet.basic_module.5.basic_module.4.conv.bias"],
    )


def test_basicvsrpp_equals_mmagic_on_moving_and_mirror_extended_clips(checkpoint, narrow_abstract, ref):
    """Both clips in one batch (each is computed on its own here); the second is its own
    mirror image, where MMagic reuses its backward flows, flipped, as forward flows."""
    model = basicvsrpp.BasicVSRPlusPlus(**NARROW)
    params = _params(checkpoint, narrow_abstract)
    lr = ref["frames"].astype(np.float32) / np.float32(255)  # (2, 6, 36, 36, 3)
    np.testing.assert_array_equal(lr[1], lr[1, ::-1])
    assert list(ref["mirror"]) == [False, True]
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    assert out.shape == (2, 6, 144, 144, 3)
    s = recipe.STRIDE
    diffs = np.abs(out[:, :, ::s, ::s] - ref["output_strided"]).max(axis=(1, 2, 3, 4))
    mean_diff = float(np.max(np.abs(out.astype(np.float64).mean(axis=(2, 3)) - ref["output_mean"])))
    print(f"basicvsrpp x4: max|diff| moving {diffs[0]:.2e}, mirrored {diffs[1]:.2e}; per-frame mean {mean_diff:.2e}")
    assert diffs.max() <= 1e-4 and mean_diff <= 1e-5
    # the output is far from the bilinear base: the propagation and alignment count
    assert np.abs(ref["output_strided"]).std() > 0.3
    count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    assert count == int(ref["param_count"])


@pytest.mark.slow  # 9-17 s: a second program; the x4 parity test above covers the shared parts
def test_same_size_variant_equals_mmagic(ref):
    """is_low_res_input=False (MMagic's NTIRE 2021 decompression models, scale 1): two
    stride-2 convs in front, flows on the frames shrunk by torch's bicubic, the input as the
    base; the published size's parameter count (128 channels, 25 blocks)."""
    sd = recipe.state_dict(recipe.SEED + 1, low_res=False)
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["same_checksums"], rtol=1e-12)
    model = basicvsrpp.BasicVSRPlusPlus(scale=1, is_low_res_input=False, **NARROW)
    abstract = ph.abstract_params(model.init, (1, 2, 16, 16, 3))
    params = _params({f"generator.{k}": v for k, v in sd.items()}, abstract)
    assert params["feat_extract_4"]["main_2_4"]["conv2"]["kernel"].shape == (3, 3, recipe.MID, recipe.MID)
    lr = ref["same_frames"].astype(np.float32) / np.float32(255)  # (1, 4, 36, 36, 3)
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    assert out.shape == lr.shape
    diff = float(np.abs(out - ref["same_output"]).max())
    print(f"basicvsrpp is_low_res_input=False: max|diff| {diff:.2e}")
    assert diff <= 1e-4
    assert np.abs(ref["same_output"] - lr).mean() > 0.05  # far from the identity
    published = basicvsrpp.BasicVSRPlusPlus(scale=1, mid_channels=128, num_blocks=25, is_low_res_input=False)
    count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(_abstract(published)))
    assert count == int(ref["same_param_count_published"])
    with pytest.raises(ValueError, match="multiples of 4"):
        model.apply({"params": params}, lr[:, :, :34])


def test_published_size_has_mmagics_parameter_count(ref):
    abstract = _abstract(basicvsrpp.BasicVSRPlusPlus())
    assert sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract)) == int(ref["param_count_published"])


def test_wrong_shape_in_the_file_is_named(checkpoint, narrow_abstract):
    sd = dict(checkpoint)
    sd["generator.deform_align.backward_2.conv_offset.6.weight"] = np.zeros((27 * 8, recipe.MID, 3, 3), np.float32)
    with pytest.raises(UserError, match=r"deform_align/backward_2/conv_offset_6/kernel"):
        _params(sd, narrow_abstract)


def test_alignment_offsets_follow_the_flows():
    """With conv_offset giving zeros (MMagic's initialisation of its last conv) the offsets
    are exactly the flows, (dy, dx) per tap: group g < 8 samples x at the flow_1
    displacement, g ≥ 8 at flow_2's: a DCN with those offsets, mask 1/2."""
    mid = 8
    layer = basicvsrpp.SecondOrderDeformableAlignment(mid)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 9, 10, 2 * mid)), jnp.float32)
    extra = jnp.asarray(rng.normal(size=(1, 9, 10, 3 * mid)), jnp.float32)
    f1 = jnp.asarray(rng.normal(size=(1, 9, 10, 2)) * 2, jnp.float32)
    f2 = jnp.asarray(rng.normal(size=(1, 9, 10, 2)) * 2, jnp.float32)
    params = jax.jit(layer.init)(jax.random.key(0), x, extra, f1, f2)["params"]
    params = {**params, "conv_offset_6": jax.tree.map(jnp.zeros_like, params["conv_offset_6"])}
    got = jax.jit(layer.apply)({"params": params}, x, extra, f1, f2)
    yx = lambda f: jnp.tile(f[..., ::-1], 9 * 8)  # noqa: E731
    offset = jnp.concatenate([yx(f1), yx(f2)], axis=-1)
    dcn = jax.jit(functools.partial(deform.deform_conv2d, padding=1, deform_groups=16))
    want = dcn(x, offset, jnp.full((1, 9, 10, 9 * 16), 0.5), params["kernel"], params["bias"])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


TORCH_PYTHON = "/tmp/tvenv/bin/python"  # torch + torchvision + mmagic (tests/data/published/README.md)


@pytest.mark.slow  # 45 s on a quiet 2-core Xeon (MMagic at the published width in the torch venv, then ours)
@pytest.mark.skipif(not os.path.exists(TORCH_PYTHON), reason=f"no torch venv at {TORCH_PYTHON}")
def test_published_width_equals_mmagic(tmp_path):
    """mid_channels 64, num_blocks 7 (the published files' shapes), one 5×64×64 clip, the
    whole output: make_basicvsrpp.py --full runs MMagic in the torch venv."""
    path = tmp_path / "full.npz"
    script = str(ph.DATA / "make_basicvsrpp.py")
    proc = subprocess.run([TORCH_PYTHON, script, "--full", str(path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    full = recipe.FULL
    sd = recipe.state_dict(recipe.SEED, full["mid"], full["blocks"], full["res_scale"])
    with np.load(path) as f:
        ref = dict(f)
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["checksums"], rtol=1e-12)
    model = basicvsrpp.BasicVSRPlusPlus(mid_channels=full["mid"], num_blocks=full["blocks"])
    params = _params({f"generator.{k}": v for k, v in sd.items()}, _abstract(model))
    out = np.asarray(jax.jit(model.apply)({"params": params}, ref["frames"].astype(np.float32) / np.float32(255)))
    diff = float(np.abs(out - ref["output"]).max())
    print(f"basicvsrpp published width x4: max|diff| {diff:.2e}, output range [{out.min():.2f}, {out.max():.2f}]")
    assert diff <= 1e-4


def _program_size(model, abstract, t: int, train: bool = False) -> int:
    x = jax.ShapeDtypeStruct((1, t, 8, 8, 3), jnp.float32)
    return len(str(jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x, train=train))(abstract, x)))


def test_time_loops_are_loops(narrow_abstract):
    """Four propagation scans and the reconstruction scan: the traced program does not grow
    with T (Python loops over the frames would add a copy of the body per frame)."""
    model = basicvsrpp.BasicVSRPlusPlus(**NARROW)
    sizes = [_program_size(model, narrow_abstract, t) for t in (3, 8)]
    assert abs(sizes[1] - sizes[0]) < 0.05 * sizes[0], sizes


@pytest.mark.slow  # 12 s quiet, 60 s busy: two compiles
def test_loops_equal_the_unrolled_training_pass(checkpoint, narrow_abstract, ref):
    model = basicvsrpp.BasicVSRPlusPlus(**NARROW)
    params = _params(checkpoint, narrow_abstract)
    lr = ref["frames"][:1, :4].astype(np.float32) / np.float32(255)
    infer, train = (jax.jit(lambda p, x, tr=tr: model.apply({"params": p}, x, train=tr)) for tr in (False, True))
    out = infer(params, lr)
    assert float(jnp.max(jnp.abs(out - train(params, lr)))) < 1e-5
