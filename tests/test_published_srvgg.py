"""SRVGGNetCompact (Real-ESRGAN's compact model) equals the authors' on the same weights,
and the denoise-strength mix equals Real-ESRGAN's ``dni``.

The reference is tests/data/published/srvgg.npz, made by Real-ESRGAN's own
SRVGGNetCompact and RealESRGANer.dni (make_srvgg.py there; no torch needed here).
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.models import srvgg
from vsr_jax.pretrained.convert import check_params, state_dict_to_params
from vsr_jax.pretrained.dni import interpolate_params

DATA = np.load(pathlib.Path(__file__).parent / "data" / "published" / "srvgg.npz")
NARROW = {"features": 8, "num_conv": 3}  # as make_srvgg.py builds them


def state_dict(tag: str) -> dict:
    prefix = f"{tag}/sd/" if tag[0] in "xl" else f"{tag}/"
    return {k[len(prefix) :]: DATA[k] for k in DATA.files if k.startswith(prefix)}


def abstract_params(model):
    x = jnp.zeros((1, 6, 6, 3))
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


@pytest.mark.parametrize(
    "tag, scale, act", [("x4", 4, "prelu"), ("x3", 3, "prelu"), ("x2", 2, "prelu"), ("lrelu", 2, "lrelu")]
)
def test_srvgg_matches_realesrgan(tag, scale, act):
    model = models.create_model("srvgg", scale, {**NARROW, "act": act})
    prelu = srvgg.prelu_modules(NARROW["num_conv"]) if act == "prelu" else frozenset()
    params = state_dict_to_params(state_dict(tag), prelu=prelu)
    check_params(params, abstract_params(model), f"srvgg {tag} fixture")
    if act == "prelu":  # the slopes are the file's, not PReLU's 0.25 init
        assert np.ptp(params["body_3"]["alpha"]) > 0.1
    lr = nhwc(DATA[f"{tag}/input"])
    out = jax.jit(model.apply)({"params": params}, lr[None])  # (1, T=2, h, w, 3)
    ref = nhwc(DATA[f"{tag}/output"])
    assert out.shape == (1, *ref.shape) and out.dtype == jnp.float32
    diff = float(np.max(np.abs(np.asarray(out[0]) - ref)))
    print(f"srvgg {tag}: max |diff| = {diff:.2e}")
    assert diff <= 1e-4


@pytest.mark.parametrize("name, num_conv", [("x4_64_16_prelu", 16), ("x4_64_32_prelu", 32)])
def test_parameter_count_equals_the_authors(name, num_conv):
    """realesr-animevideov3 (16 convs) and realesr-general(-wdn)-x4v3 (32 convs)."""
    model = models.create_model("srvgg", 4, {"num_conv": num_conv})
    count = sum(p.size for p in jax.tree.leaves(abstract_params(model)))
    assert count == int(DATA[f"count/{name}"])


def test_interpolate_params_is_realesrgans_dni():
    a, b, mixed = state_dict("dni/a"), state_dict("dni/b"), state_dict("dni/mixed")
    weight = float(DATA["dni/weight"])
    ours = interpolate_params(a, b, weight)
    assert set(ours) == set(mixed) and len(ours) == 2 * (NARROW["num_conv"] + 2) + NARROW["num_conv"] + 1
    for k in mixed:
        np.testing.assert_allclose(ours[k], mixed[k], rtol=0, atol=1e-6)
        assert ours[k].dtype == np.float32
    assert max(np.max(np.abs(mixed[k] - a[k])) for k in mixed) > 0.1  # a real mix, not one of the two
    # the same on converted (nested) trees: mixing commutes with the key mapping
    prelu = srvgg.prelu_modules(NARROW["num_conv"])
    nested = interpolate_params(state_dict_to_params(a, prelu=prelu), state_dict_to_params(b, prelu=prelu), weight)
    np.testing.assert_allclose(nested["body_1"]["alpha"], mixed["body.1.weight"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(interpolate_params(a, b, 1.0)["body.0.bias"], a["body.0.bias"])


def test_interpolate_params_names_a_mismatch():
    a = state_dict("dni/a")
    with pytest.raises(UserError, match=r"body.8.weight is in only one of them"):
        interpolate_params(a, {k: v for k, v in a.items() if k != "body.8.weight"}, 0.5)
    with pytest.raises(UserError, match=r"body.0.bias has shape \[8\] and \[4\]"):
        interpolate_params(a, {**a, "body.0.bias": a["body.0.bias"][:4]}, 0.5)


def test_wrong_file_is_named_in_one_line():
    model = models.create_model("srvgg", 4, NARROW)
    prelu = srvgg.prelu_modules(NARROW["num_conv"])
    abstract = abstract_params(model)
    with pytest.raises(UserError, match=r"of another shape \(e.g. body_8/bias: file \[12\], model \[48\]\)") as e:
        check_params(state_dict_to_params(state_dict("x2"), prelu=prelu), abstract, "x2.pth")  # x2 file, x4 model
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"missing \(e.g. body_1/alpha\)") as e:  # a ReLU file into a PReLU model
        check_params(state_dict_to_params(state_dict("lrelu")), abstract, "relu.pth")
    assert "\n" not in str(e.value)


def test_unknown_act_and_scale_are_named():
    with pytest.raises(ValueError, match="act must be one of .*got act='gelu'"):
        abstract_params(models.create_model("srvgg", 4, {**NARROW, "act": "gelu"}))
    with pytest.raises(ValueError, match="scale 1 to 4, got scale=8"):
        abstract_params(models.create_model("srvgg", 8, NARROW))
