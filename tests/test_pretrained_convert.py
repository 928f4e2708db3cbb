"""The generic state_dict -> Flax params rule (vsr_jax.pretrained.convert)."""

import numpy as np
import pytest

from vsr_jax.errors import UserError
from vsr_jax.pretrained import convert


def test_keys_and_layouts():
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((8, 3, 3, 5)).astype(np.float32)  # O, I, kh, kw
    linear = rng.standard_normal((4, 6)).astype(np.float32)
    sd = {
        "conv_first.weight": conv,
        "conv_first.bias": np.arange(8.0),
        "body.12.conv1.weight": conv,
        "upconv.0.weight": conv,
        "act.3.weight": np.full(8, 0.25),
        "fc.weight": linear,
        "mean": np.zeros((1, 3, 1, 1)),
    }
    params = convert.state_dict_to_params(sd, prelu=frozenset({"act.3"}), skip=(r"mean",))
    assert params["conv_first"]["kernel"].shape == (3, 5, 3, 8)
    np.testing.assert_array_equal(params["conv_first"]["kernel"][1, 2, 0, 7], conv[7, 0, 1, 2])
    assert params["body_12"]["conv1"]["kernel"].shape == (3, 5, 3, 8) and "upconv_0" in params
    np.testing.assert_array_equal(params["act_3"]["alpha"], np.full(8, 0.25))
    np.testing.assert_array_equal(params["fc"]["kernel"], linear.T)
    assert "mean" not in params and params["conv_first"]["bias"].dtype == np.float32


def test_check_params_names_what_differs():
    abstract = {"a": {"kernel": np.zeros((3, 3, 3, 8)), "bias": np.zeros(8)}, "b": {"kernel": np.zeros((1, 1, 8, 3))}}
    params = {"a": {"kernel": np.zeros((3, 3, 3, 4)), "bias": np.zeros(8)}, "c": {"kernel": np.zeros(1)}}
    with pytest.raises(UserError, match=r"1 missing \(e.g. b/kernel\); 1 unexpected \(e.g. c/kernel\); 1 of another "
                       r"shape \(e.g. a/kernel: file \[3, 3, 3, 4\], model \[3, 3, 3, 8\]\)"):  # fmt: skip
        convert.check_params(params, abstract, "X.pth")
    convert.check_params(abstract, abstract, "X.pth")
