"""`iconvsr` equals BasicSR 1.4.2's IconVSR on the same weights.

The fixture (tests/data/published/make_iconvsr.py, run with BasicSR and the real
``torchvision.ops.deform_conv2d``) holds two 7-frame clips (temporal_padding 3 at 34×37:
the spatial padding and crop; temporal_padding 2 at 36×36), every STRIDE-th row and column
of the authors' ×4 outputs and their per-frame means; the weights are rebuilt here with
NumPy by the script's own `seeded_state_dict`, checked against its checksums. No torch,
except in the slow published-width test, which runs BasicSR itself where /tmp/tvenv exists.
"""

import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsr_jax.models.iconvsr as iconvsr
from tests import published_helpers as ph
from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.models import spynet
from vsr_jax.pretrained import convert

SKIP = spynet.buffer_keys("spynet.")

recipe = ph.recipe("iconvsr")


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("iconvsr")


def state_dict(ref, case: str) -> dict:
    sd = recipe.seeded_state_dict(temporal_padding=recipe.CASES[case][0])
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref[f"{case}_weight_checksums"], rtol=1e-12)
    return sd


def narrow(temporal_padding: int = 2, **kw):
    options = {"num_feat": recipe.NUM_FEAT, "num_block": recipe.NUM_BLOCK, "temporal_padding": temporal_padding}
    return models.create_model("iconvsr", 4, options | kw)


def count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


def check_case(ref, case: str, train: bool = False) -> float:
    tp, shape, s = recipe.CASES[case]
    model = narrow(tp)
    sd = state_dict(ref, case)
    spynet.check_buffers(sd, "spynet.")
    params = convert.state_dict_to_params(sd, skip=SKIP)
    lr = ref[f"{case}_frames"].astype(np.float32) / np.float32(255)
    abstract = ph.abstract_params(model.init, lr.shape)
    convert.check_params(params, abstract, "IconVSR")
    assert count(abstract) == int(ref[f"{case}_param_count"])
    out = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x, train=train))(params, lr))
    n, t, h, w, _ = lr.shape
    assert out.shape == (n, t, 4 * h, 4 * w, 3)
    diff = float(np.max(np.abs(out[:, :, ::s, ::s] - ref[f"{case}_output_strided"])))
    mean_diff = float(np.max(np.abs(out.astype(np.float64).mean(axis=(2, 3)) - ref[f"{case}_output_mean"])))
    print(f"iconvsr {case} train={train}: max|diff| {diff:.2e} (every {s}-th row/col), frame means {mean_diff:.2e}")
    assert diff <= 1e-4 and mean_diff <= 1e-5
    return diff


def test_equals_basicsr_with_spatial_padding_and_temporal_padding_3(ref):
    """34×37 frames (reflect-padded to 36×40, cropped back), EDVR windows of 7 frames,
    keyframes 0, 5 and 6; the fixture's DCN offsets are a few pixels (some leave the image)."""
    assert float(ref["tp3_offset_absmean"].max()) > 2.0
    check_case(ref, "tp3")


@pytest.mark.slow  # ~30 s on a loaded 2-core CPU (a second model to compile)
def test_equals_basicsr_with_temporal_padding_2(ref):
    check_case(ref, "tp2")


@pytest.mark.slow  # ~30 s: the training pass (EDVR windows and reconstruction batched, loops unrolled)
def test_training_pass_equals_basicsr_too(ref):
    check_case(ref, "tp2", train=True)


def test_keyframes_and_windows_are_the_authors():
    """BasicSR's get_keyframe_feature: x[:, [4, 3]] + x + x[:, [-4, -5]] (tp 2), x[:, [6, 5, 4]] +
    x + x[:, [-5, -6, -7]] (tp 3), then the window x[:, i:i + 2tp + 1] at each keyframe i."""
    assert iconvsr.keyframe_indices(7, 5) == [0, 5, 6]
    assert iconvsr.keyframe_indices(11, 5) == [0, 5, 10]
    assert iconvsr.keyframe_indices(1, 5) == [0]
    pads = {2: ([4, 3], [-4, -5]), 3: ([6, 5, 4], [-5, -6, -7])}
    for tp, (before, after) in pads.items():
        for t in range(2 * tp + 1, 17):
            padded = before + list(range(t)) + [t + a for a in after]
            for stride in (1, 3, 5):
                for i in iconvsr.keyframe_indices(t, stride):
                    assert iconvsr.window_indices(t, tp, i) == padded[i : i + 2 * tp + 1], (tp, t, i)
    # shorter clips (the authors' code indexes out of range): the positions clamped to the clip
    assert iconvsr.window_indices(2, 2, 0) == [1, 1, 0, 1, 0]
    assert iconvsr.window_indices(2, 2, 1) == [1, 0, 1, 0, 0]
    assert iconvsr.window_indices(1, 3, 0) == [0] * 7
    assert iconvsr.window_indices(4, 2, 3) == [1, 2, 3, 0, 0]


def test_published_size_has_the_authors_parameter_count(ref):
    for tp in (2, 3):  # IconVSR_REDS (tp 2) and IconVSR_Vimeo90K_* (tp 3): 64 ch, 30 blocks
        model = models.create_model("iconvsr", 4, {"num_block": 30, "temporal_padding": tp})
        assert count(ph.abstract_params(model.init, (1, 2, 16, 16, 3))) == int(ref[f"param_count_64_30_tp{tp}"])


def test_options_and_wrong_files(ref):
    shape = (1, 2, 16, 16, 3)
    for kw, message in [
        ({"temporal_padding": 4}, "temporal_padding must be 2 or 3"),
        ({"num_feat": 12}, "num_feat must be a multiple of 8"),
        ({"keyframe_stride": 0}, "keyframe_stride must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            ph.abstract_params(narrow(**kw).init, shape)
    with pytest.raises(ValueError, match="only scale 4"):
        ph.abstract_params(models.create_model("iconvsr", 2, {"num_feat": 16, "num_block": 1}).init, shape)
    with pytest.raises(ValueError, match=r"\(N, T, h, w, 3\)"):
        ph.abstract_params(narrow().init, (1, 16, 16, 3))
    abstract = ph.abstract_params(narrow(3).init, shape)
    # a temporal_padding 2 file in a temporal_padding 3 model: TSA's 5-frame fusion convs
    tp2 = convert.state_dict_to_params(recipe.seeded_state_dict(temporal_padding=2), skip=SKIP)
    with pytest.raises(UserError, match=r"^tp2\.pth does not fit the model: .*of another shape") as e:
        convert.check_params(tp2, abstract, "tp2.pth")
    assert "edvr/fusion/feat_fusion/kernel: file [1, 1, 80, 16], model [1, 1, 112, 16]" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow  # ~25 s: one more compile
def test_a_two_frame_clip_runs(ref):
    """A 2-frame clip (fewer than the 5 of an EDVR window: the clamped fallback) runs and is finite."""
    params = convert.state_dict_to_params(state_dict(ref, "tp2"), skip=SKIP)
    lr = jnp.asarray(ref["tp3_frames"][:, :2] / 255.0, jnp.float32)  # (1, 2, 34, 37, 3)
    out = jax.jit(narrow().apply)({"params": params}, lr)
    assert out.shape == (1, 2, 136, 148, 3) and bool(jnp.all(jnp.isfinite(out)))


TORCH_PYTHON = "/tmp/tvenv/bin/python"  # BasicSR 1.4.2 + torchvision's deform_conv2d (make_iconvsr.py)


@pytest.mark.slow  # ~2-4 min: BasicSR at the published width on a CPU, then ours
@pytest.mark.skipif(not os.path.exists(TORCH_PYTHON), reason=f"no BasicSR venv at {TORCH_PYTHON}")
@pytest.mark.parametrize("case", list(recipe.CASES))
def test_published_width_equals_basicsr(case, tmp_path):
    """num_feat 64, num_block 30 (the published models' size: 8 channels per deformable group),
    the whole ×4 output, BasicSR run now by make_iconvsr.py --full."""
    path = tmp_path / "full.npz"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([TORCH_PYTHON, str(ph.DATA / "make_iconvsr.py"), "--full", str(path), case], check=True, env=env)
    with np.load(path) as f:
        ref = dict(f)
    tp = recipe.CASES[case][0]
    sd = recipe.seeded_state_dict(
        num_feat=64, num_block=30, temporal_padding=tp, residual_gain=recipe.FULL_RESIDUAL_GAIN
    )
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref[f"{case}_weight_checksums"], rtol=1e-12)
    model = models.create_model("iconvsr", 4, {"num_block": 30, "temporal_padding": tp})
    lr = ref[f"{case}_frames"].astype(np.float32) / np.float32(255)
    out = np.asarray(jax.jit(model.apply)({"params": convert.state_dict_to_params(sd, skip=SKIP)}, lr))
    diff = float(np.max(np.abs(out - ref[f"{case}_output"])))
    print(f"iconvsr {case} 64 ch x 30 blocks: max|diff| {diff:.2e} (output range {np.ptp(out):.2f})")
    assert diff <= 1e-4


@pytest.mark.slow  # ~25 s: three traces
def test_inference_program_does_not_grow_with_the_clip_length():
    """The propagation, EDVR-window and reconstruction loops are scans: the traced program at
    16 frames (4 keyframes) is within 1 % of that at 3 frames (2 keyframes)."""
    model = narrow()
    params = ph.abstract_params(model.init, (1, 3, 16, 16, 3))

    def size(t):
        x = jax.ShapeDtypeStruct((1, t, 16, 16, 3), jnp.float32)
        return len(str(jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x))(params, x)))

    small, large = size(3), size(16)
    assert large < 1.01 * small, (small, large)
