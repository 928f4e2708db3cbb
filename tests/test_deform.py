"""`deform.deform_conv2d` equals torchvision's `deform_conv2d`, output and gradients.

The fixture (tests/data/published/make_deform.py, made with the real torchvision op in
float64) holds five cases: EDVR's / BasicVSR++'s 3×3 form, stride + dilation + groups +
offset groups, one channel per offset group, 1×1, and a 2×3 kernel without mask; offsets
of a few pixels, a fifth of them leaving the image. Inputs are rebuilt from the script.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax.models import deform


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("deform")


def script():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent / "data/published/make_deform.py"
    spec = importlib.util.spec_from_file_location("make_deform", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = script()
NHWC = (0, 2, 3, 1)


def _run(i):
    _, _, _, _, _, _, s, p, d, g, dg, with_mask = MAKE.CASES[i]
    a = MAKE.case_arrays(i)
    x, off = a["x"].transpose(NHWC), a["offset"].transpose(NHWC)
    mask = a["mask"].transpose(NHWC) if with_mask else None
    kernel = a["weight"].transpose(2, 3, 1, 0)

    def f(x, off, mask, kernel, bias):
        return deform.deform_conv2d(
            x, off, mask, kernel, bias, stride=s, padding=p, dilation=d, groups=g, deform_groups=dg
        )

    with jax.default_matmul_precision("highest"):
        out, vjp = jax.vjp(f, x, off, mask, kernel, a["bias"])
        grads = vjp(jnp.asarray(a["cotangent"].transpose(NHWC)))
    return out, dict(zip(("x", "offset", "mask", "weight", "bias"), grads, strict=True))


@pytest.mark.parametrize("i", range(len(MAKE.CASES)))
def test_equals_torchvision(ref, i):
    out, grads = _run(i)
    want = ref[f"{i}/out"].transpose(NHWC)
    diff = float(np.max(np.abs(np.asarray(out) - want)))
    layouts = {"x": NHWC, "offset": NHWC, "mask": NHWC, "weight": (2, 3, 1, 0), "bias": (0,)}
    rel = {}
    for name, axes in layouts.items():
        if f"{i}/grad_{name}" not in ref:
            assert grads[name] is None
            continue
        g_ref = ref[f"{i}/grad_{name}"].transpose(axes)
        rel[name] = float(np.max(np.abs(np.asarray(grads[name]) - g_ref)) / np.max(np.abs(g_ref)))
    print(f"case {i}: output max|diff| {diff:.1e}; gradients max|diff|/max|grad| {rel}")
    assert diff <= 1e-5
    assert max(rel.values()) <= 1e-4


def test_zero_offsets_and_unit_mask_are_a_plain_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 9, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    off, mask = np.zeros((2, 7, 9, 2 * 2 * 9), np.float32), np.ones((2, 7, 9, 2 * 9), np.float32)
    with jax.default_matmul_precision("highest"):
        got = deform.deform_conv2d(x, off, mask, kernel, padding=1, deform_groups=2)
        want = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # an offset of (+1, 0) px on every tap reads one row lower: rows i..i+2 for output row i
    # (so the top row's first tap reads the image, not the padding; zeros below the image)
    off[..., 0::2] = 1.0
    with jax.default_matmul_precision("highest"):
        moved = deform.deform_conv2d(x, off, mask, kernel, padding=1, deform_groups=2)
        padded = np.pad(x, ((0, 0), (0, 2), (1, 1), (0, 0)))
        want = jax.lax.conv_general_dilated(padded, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(moved, want, atol=1e-5)


def test_module_bfloat16_and_errors():
    layer = deform.ModulatedDeformConv(6, deform_groups=2, dtype=jnp.bfloat16)
    x = jnp.ones((1, 5, 5, 4))
    off, mask = jnp.zeros((1, 5, 5, 36)), jnp.ones((1, 5, 5, 18))
    params = layer.init(jax.random.key(0), x, off, mask)["params"]
    assert params["kernel"].shape == (3, 3, 4, 6) and params["kernel"].dtype == jnp.float32
    y = layer.apply({"params": params}, x, off, mask)
    assert y.dtype == jnp.bfloat16 and y.shape == (1, 5, 5, 6)
    y32 = deform.ModulatedDeformConv(6, deform_groups=2).apply({"params": params}, x, off, mask)
    np.testing.assert_allclose(np.asarray(y, np.float32), y32, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match=r"offset must be \(1, 5, 5, 36\)"):
        layer.apply({"params": params}, x, off[..., :18], mask)
    with pytest.raises(ValueError, match="not divisible by deform_groups=3"):
        deform.deform_conv2d(x, jnp.zeros((1, 5, 5, 54)), None, params["kernel"], padding=1, deform_groups=3)
