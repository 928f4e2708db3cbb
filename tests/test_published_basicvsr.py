"""`basicvsr` equals BasicSR 1.4.2's BasicVSR on the same weights.

The fixture (tests/data/published/make_basicvsr.py, run with the authors' package) holds
the clip, every third row and column of the authors' ×4 output and its per-frame means;
the weights are rebuilt here with NumPy by the script's own `seeded_state_dict`, checked
against its checksums. No torch needed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax import models
from vsr_jax.errors import UserError
from vsr_jax.models import spynet
from vsr_jax.pretrained import convert

SKIP = spynet.buffer_keys("spynet.")


recipe = ph.recipe("basicvsr")


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("basicvsr")


@pytest.fixture(scope="module")
def state_dict(ref):
    sd = recipe.seeded_state_dict()
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["weight_checksums"], rtol=1e-12)
    return sd


def narrow():
    return models.create_model("basicvsr", 4, {"num_feat": recipe.NUM_FEAT, "num_block": recipe.NUM_BLOCK})


def abstract_params(model, shape=(1, 2, 40, 40, 3)):
    return ph.abstract_params(model.init, shape)


def test_equals_basicsr(ref, state_dict):
    model = narrow()
    spynet.check_buffers(state_dict, "spynet.")
    params = convert.state_dict_to_params(state_dict, skip=SKIP)
    abstract = abstract_params(model)
    convert.check_params(params, abstract, "BasicVSR")
    assert sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract)) == int(ref["param_count"])
    lr = ref["frames"].astype(np.float32) / np.float32(255)  # (2, 5, 34, 34, 3)
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    n, t, h, w, _ = lr.shape
    assert out.shape == (n, t, 4 * h, 4 * w, 3)
    s = recipe.STRIDE
    diff = float(np.max(np.abs(out[:, :, ::s, ::s] - ref["output_strided"])))
    mean_diff = float(np.max(np.abs(out.astype(np.float64).mean(axis=(2, 3)) - ref["output_mean"])))
    print(f"basicvsr x4: max|diff| {diff:.2e} (every {s}rd row/column), per-frame mean {mean_diff:.2e}")
    assert diff <= 1e-4 and mean_diff <= 1e-5


def test_published_size_has_the_authors_parameter_count(ref):
    model = models.create_model("basicvsr", 4, {"num_block": 30})  # BasicVSR_REDS4 / _Vimeo90K
    count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(abstract_params(model)))
    assert count == int(ref["param_count_64_30"])


def test_scale_shape_and_wrong_files(state_dict):
    with pytest.raises(ValueError, match="only scale 4"):
        abstract_params(models.create_model("basicvsr", 2, {"num_feat": 8, "num_block": 2}))
    with pytest.raises(ValueError, match=r"\(N, T, h, w, 3\)"):
        abstract_params(narrow(), (1, 40, 40, 3))
    abstract = abstract_params(narrow())
    wider = convert.state_dict_to_params(recipe.seeded_state_dict(num_feat=16), skip=SKIP)
    with pytest.raises(
        UserError, match=r"of another shape \(e\.g\. backward_trunk/main_0/bias: file \[16\], model \[8\]"
    ):
        convert.check_params(wider, abstract, "wide.pth")
    no_flow = {k: v for k, v in state_dict.items() if not k.startswith("spynet.")}
    with pytest.raises(UserError, match=r"^flowless\.pth does not fit the model: keys 60 missing") as e:
        convert.check_params(convert.state_dict_to_params(no_flow), abstract, "flowless.pth")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("shape", [(1, 1, 36, 36, 3), (1, 2, 12, 20, 3)])
def test_one_frame_clips_and_small_frames_run(state_dict, shape):
    params = convert.state_dict_to_params(state_dict, skip=SKIP)
    out = jax.jit(narrow().apply)({"params": params}, jnp.full(shape, 0.5))
    n, t, h, w, _ = shape
    assert out.shape == (n, t, 4 * h, 4 * w, 3) and bool(jnp.all(jnp.isfinite(out)))


def test_training_pass_equals_basicsr_too(ref, state_dict):
    """With train=True the reconstruction runs on all frames in one batch (inference: frame by
    frame, see the module docstring): the same outputs as the authors' either way."""
    model = narrow()
    params = convert.state_dict_to_params(state_dict, skip=SKIP)
    lr = ref["frames"].astype(np.float32) / np.float32(255)
    out = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x, train=True))(params, lr))
    s = recipe.STRIDE
    assert float(np.max(np.abs(out[:, :, ::s, ::s] - ref["output_strided"]))) <= 1e-4
