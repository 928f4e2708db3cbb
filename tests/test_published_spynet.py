"""`models.spynet.SpyNet` equals BasicSR 1.4.2's SpyNet on the same weights.

The fixture (tests/data/published/make_spynet.py, run with the authors' package) holds
the frames and the authors' flows; the weights (1.44 M, fixed structure) are rebuilt
here with NumPy by the script's own `seeded_state_dict`, checked against its checksums.
No torch needed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax.errors import UserError
from vsr_jax.models import spynet
from vsr_jax.pretrained import convert

recipe = ph.recipe("spynet")


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("spynet")


@pytest.fixture(scope="module")
def state_dict(ref):
    sd = recipe.seeded_state_dict()
    np.testing.assert_allclose(recipe.checksums(sd), ref["weight_checksums"], rtol=1e-12)
    return sd


def abstract_params(shape=(1, 64, 64, 3)):
    return ph.abstract_params(spynet.SpyNet().init, shape, shape)


def test_param_paths_and_count(ref, state_dict):
    params = convert.state_dict_to_params(state_dict, skip=spynet.buffer_keys())
    assert params["basic_module_0"]["basic_module_0"]["kernel"].shape == (7, 7, 8, 32)
    assert params["basic_module_5"]["basic_module_8"]["bias"].shape == (2,)
    abstract = abstract_params()
    convert.check_params(params, abstract, "spynet")
    assert sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract)) == int(ref["param_count"])


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (33, 70)])
def test_equals_basicsr(ref, state_dict, size):
    h, w = size
    spynet.check_buffers(state_dict)
    params = convert.state_dict_to_params(state_dict, skip=spynet.buffer_keys())
    frames = ref[f"frames_{h}x{w}"].astype(np.float32) / np.float32(255)  # (2, N, h, w, 3)
    flow = jax.jit(spynet.SpyNet().apply)({"params": params}, frames[0], frames[1])
    want = ref[f"flow_{h}x{w}"]
    assert flow.shape == want.shape == (2, h, w, 2)
    diff = float(np.max(np.abs(np.asarray(flow) - want)))
    print(f"spynet {h}x{w}: max|diff| {diff:.2e} px (|flow| up to {np.abs(want).max():.1f} px)")
    assert diff <= 1e-4


def test_wrong_files(state_dict):
    bad = dict(state_dict, std=np.ones((1, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match="buffer std"):
        spynet.check_buffers(bad)
    truncated = {k: v for k, v in state_dict.items() if not k.startswith("basic_module.5.")}
    with pytest.raises(UserError, match=r"10 missing \(e\.g\. basic_module_5/basic_module_0/bias\)") as e:
        convert.check_params(
            convert.state_dict_to_params(truncated, skip=spynet.buffer_keys()), abstract_params(), "cut.pth"
        )
    assert "\n" not in str(e.value)


def test_frames_of_32_px_or_less(ref, state_dict):
    """The authors' SpyNet raises there (its coarsest flow is 0 px); ours starts from the
    zero flow their upsampling gives at every size they accept, and gives finite flows."""
    params = convert.state_dict_to_params(state_dict, skip=spynet.buffer_keys())
    frames = ref["frames_33x70"].astype(np.float32) / np.float32(255)
    flow = jax.jit(spynet.SpyNet().apply)({"params": params}, frames[0, :, :20, :28], frames[1, :, :20, :28])
    assert flow.shape == (2, 20, 28, 2) and bool(jnp.all(jnp.isfinite(flow)))
