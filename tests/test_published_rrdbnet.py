"""RRDBNet (ESRGAN / Real-ESRGAN) equals BasicSR's on the same weights.

The reference is tests/data/published/rrdbnet.npz, made by BasicSR's own RRDBNet and
Real-ESRGAN's RealESRGANer (make_rrdbnet.py there; no torch needed here).
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.models import rrdbnet
from vsr_jax.pretrained.convert import check_params, state_dict_to_params

DATA = np.load(pathlib.Path(__file__).parent / "data" / "published" / "rrdbnet.npz")
NARROW = {"features": 4, "num_blocks": 2, "grow_features": 2}  # as make_rrdbnet.py builds them


def state_dict(scale: int) -> dict:
    prefix = f"x{scale}/sd/"
    return {k[len(prefix) :]: DATA[k] for k in DATA.files if k.startswith(prefix)}


def abstract_params(model, hw=(8, 8)):
    x = jnp.zeros((1, *hw, 3))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def load(scale: int):
    model = models.create_model("rrdbnet", scale, NARROW)
    params = state_dict_to_params(state_dict(scale))
    check_params(params, abstract_params(model), f"rrdbnet x{scale} fixture")
    return model, params


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_matches_basicsr(scale):
    model, params = load(scale)
    apply = jax.jit(model.apply)
    lr = nhwc(DATA[f"x{scale}/input"])
    out = apply({"params": params}, lr[None])  # (1, T=2, h, w, 3): frames of one clip
    assert out.shape == (1, *nhwc(DATA[f"x{scale}/output"]).shape) and out.dtype == jnp.float32
    diff = float(np.max(np.abs(np.asarray(out[0]) - nhwc(DATA[f"x{scale}/output"]))))
    print(f"rrdbnet x{scale}: max |diff| = {diff:.2e}")
    assert diff <= 1e-4
    if scale != 4:  # odd sizes: Real-ESRGAN's reflect mod pad and crop
        odd = apply({"params": params}, nhwc(DATA[f"x{scale}/odd_input"]))
        diff = float(np.max(np.abs(np.asarray(odd) - nhwc(DATA[f"x{scale}/odd_output"]))))
        print(f"rrdbnet x{scale} 11x13: max |diff| = {diff:.2e}")
        assert odd.shape == (2, 11 * scale, 13 * scale, 3) and diff <= 1e-4


def test_pixel_unshuffle_channel_order():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)  # NHWC
    y = np.asarray(rrdbnet.pixel_unshuffle(jnp.asarray(x), 2))
    assert y.shape == (2, 2, 3, 12)
    # torch: out[:, c*4 + i*2 + j, h, w] = x[:, c, 2h + i, 2w + j]
    for c, i, j in [(0, 0, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1)]:
        np.testing.assert_array_equal(y[..., c * 4 + i * 2 + j], x[:, i::2, j::2, c])


@pytest.mark.parametrize(
    "name, scale, blocks",
    [("x4_64_23_32", 4, 23), ("x2_64_23_32", 2, 23), ("x4_64_6_32", 4, 6), ("x1_64_23_32", 1, 23)],
)
def test_parameter_count_equals_the_authors(name, scale, blocks):
    """ESRGAN_SRx4 / RealESRGAN_x4plus, RealESRGAN_x2plus, RealESRGAN_x4plus_anime_6B, and x1."""
    model = models.create_model("rrdbnet", scale, {"num_blocks": blocks})
    count = sum(p.size for p in jax.tree.leaves(abstract_params(model)))
    assert count == int(DATA[f"count/{name}"])
    if name == "x4_64_23_32":
        assert count == 16_697_987


def test_wrong_file_is_named_in_one_line():
    model = models.create_model("rrdbnet", 4, NARROW)
    abstract = abstract_params(model)
    with pytest.raises(UserError, match=r"of another shape \(e.g. conv_first/kernel: file \[3, 3, 12, 4\]") as e:
        check_params(state_dict_to_params(state_dict(2)), abstract, "RealESRGAN_x2plus.pth")  # x2 file, x4 model
    assert "\n" not in str(e.value)
    truncated = {k: v for k, v in state_dict(4).items() if not k.startswith("body.1.")}
    with pytest.raises(UserError, match=r"30 missing \(e.g. body_1/rdb1/conv1/bias\)") as e:
        check_params(state_dict_to_params(truncated), abstract, "cut.pth")
    assert "\n" not in str(e.value)


def test_unsupported_scale_is_named():
    with pytest.raises(ValueError, match="scale 1, 2 or 4, got scale=3"):
        abstract_params(models.create_model("rrdbnet", 3, NARROW))
