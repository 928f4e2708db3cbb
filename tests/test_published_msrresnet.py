"""`msrresnet` equals BasicSR 1.4.2's MSRResNet on the same weights (fixture made by
tests/data/published/make_msrresnet.py with the authors' package; no torch needed here)."""

import jax
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.pretrained import convert


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("msrresnet")


def state_dict(ref, scale):
    prefix = f"x{scale}/sd/"
    return {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}


def abstract_params(model, lr_shape):
    return ph.abstract_params(model.init, lr_shape)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_equals_basicsr(ref, scale):
    model = models.create_model("msrresnet", scale, {"features": 8, "num_blocks": 2})
    params = convert.state_dict_to_params(state_dict(ref, scale))
    convert.check_params(params, abstract_params(model, ref["input"].shape), f"MSRResNet x{scale}")
    lr = ref["input"]  # (2, 11, 13, 3); as a clip (1, 2, ...) the frames go through one by one
    out = jax.jit(model.apply)({"params": params}, lr[None])[0]
    want = ref[f"x{scale}/output"]
    assert out.shape == want.shape == (2, 11 * scale, 13 * scale, 3)
    diff = float(np.max(np.abs(np.asarray(out) - want)))
    print(f"msrresnet x{scale}: max|diff| {diff:.2e}")
    assert diff <= 1e-4


def test_published_size_has_the_authors_parameter_count(ref):
    model = models.create_model("msrresnet", 4, {})  # defaults: 64 features, 16 blocks
    abstract = abstract_params(model, (1, 8, 8, 3))
    count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract))
    assert count == int(ref["param_count_x4_64_16"]) == 1_517_571


def test_wrong_file_is_one_line(ref):
    model = models.create_model("msrresnet", 4, {"features": 8, "num_blocks": 2})
    abstract = abstract_params(model, (1, 8, 8, 3))
    other_scale = convert.state_dict_to_params(state_dict(ref, 3))  # no upconv2; upconv1 to 9·8 channels
    pattern = r"^x3\.pth does not fit .*2 missing \(e\.g\. upconv2/bias\); 2 of another shape"
    with pytest.raises(UserError, match=pattern):
        convert.check_params(other_scale, abstract, "x3.pth")
    truncated = {k: v for k, v in state_dict(ref, 4).items() if not k.startswith("body.1.")}
    with pytest.raises(UserError, match=r"4 missing \(e\.g\. body_1/conv1/bias\)") as e:
        convert.check_params(convert.state_dict_to_params(truncated), abstract, "cut.pth")
    assert "\n" not in str(e.value)
