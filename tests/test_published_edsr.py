"""`edsr` equals BasicSR 1.4.2's EDSR on the same weights (fixture made by
tests/data/published/make_edsr.py with the authors' package; no torch needed here)."""

import jax
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.pretrained import convert


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("edsr")


def state_dict(ref, scale):
    prefix = f"x{scale}/sd/"
    return {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}


def abstract_params(model, lr_shape):
    return ph.abstract_params(model.init, lr_shape)


def param_count(model):
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract_params(model, (1, 8, 8, 3))))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_equals_basicsr(ref, scale):
    res_scale = float(ref[f"x{scale}/res_scale"])  # 1 at x2, x3; 0.1 (EDSR_L's) at x4
    model = models.create_model("edsr", scale, {"features": 8, "num_blocks": 2, "res_scale": res_scale})
    params = convert.state_dict_to_params(state_dict(ref, scale))
    convert.check_params(params, abstract_params(model, ref["input"].shape), f"EDSR x{scale}")
    lr = ref["input"]  # (2, 11, 13, 3); as a clip (1, 2, ...) the frames go through one by one
    out = jax.jit(model.apply)({"params": params}, lr[None])[0]
    want = ref[f"x{scale}/output"]
    assert out.shape == want.shape == (2, 11 * scale, 13 * scale, 3)
    diff = float(np.max(np.abs(np.asarray(out) - want)))
    print(f"edsr x{scale}: max|diff| {diff:.2e}")
    assert diff <= 1e-4


def test_published_sizes_have_the_authors_parameter_counts(ref):
    edsr_m = models.create_model("edsr", 4, {})  # defaults: 64 features, 16 blocks, res_scale 1
    edsr_l = models.create_model("edsr", 4, {"features": 256, "num_blocks": 32, "res_scale": 0.1})
    assert param_count(edsr_m) == int(ref["param_count_m_x4"]) == 1_517_571
    assert param_count(edsr_l) == int(ref["param_count_l_x4"]) == 43_089_923


def test_wrong_file_is_one_line(ref):
    model = models.create_model("edsr", 4, {"features": 8, "num_blocks": 2})
    abstract = abstract_params(model, (1, 8, 8, 3))
    other_scale = convert.state_dict_to_params(state_dict(ref, 3))  # one upsample conv, to 9·8 channels
    pattern = r"^x3\.pth does not fit .*2 missing \(e\.g\. upsample_2/bias\); 2 of another shape"
    with pytest.raises(UserError, match=pattern):
        convert.check_params(other_scale, abstract, "x3.pth")
    truncated = {k: v for k, v in state_dict(ref, 4).items() if k != "conv_last.bias"}
    with pytest.raises(UserError, match=r"1 missing \(e\.g\. conv_last/bias\)") as e:
        convert.check_params(convert.state_dict_to_params(truncated), abstract, "cut.pth")
    assert "\n" not in str(e.value)
