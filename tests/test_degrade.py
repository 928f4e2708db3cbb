"""MATLAB-compatible bicubic imresize against BasicSR's imresize (tests/data/basicsr)."""

import jax
import numpy as np
import pytest

from tests.conftest import REFERENCE
from vsr_jax.data import degrade


def test_downscale_x4_matches_basicsr(reference_images):
    for name, arrays in reference_images.items():
        lr = np.asarray(degrade.imresize(arrays["hr"] / 255.0, 1 / 4))
        assert lr.shape == arrays["lr_bi_f64"].shape
        assert np.abs(lr - arrays["lr_bi_f64"]).max() <= 1e-5, name


def test_upscale_x4_matches_basicsr(reference_images):
    for name, arrays in reference_images.items():
        up = np.asarray(degrade.imresize(arrays["lr_bi_u8"] / 255.0, 4))
        assert up.shape == arrays["up_bi_f64"].shape
        assert np.abs(up - arrays["up_bi_f64"]).max() <= 1e-5, name


def test_uint8_lr_matches_basicsr_except_near_ties(reference_images):
    for arrays in reference_images.values():
        lr = np.asarray(degrade.imresize(arrays["hr"] / 255.0, 1 / 4))
        u8 = np.floor(np.clip(lr, 0, 1) * 255 + 0.5).astype(np.uint8)
        diff = u8 != arrays["lr_bi_u8"]
        assert not np.any(diff & ~arrays["lr_bi_u8_near_tie"])


def test_jit_batched_equals_single():
    x = np.random.default_rng(0).random((2, 3, 24, 20, 3)).astype(np.float32)
    batched = jax.jit(lambda v: degrade.imresize(v, 0.5))(x)
    assert batched.shape == (2, 3, 12, 10, 3)
    np.testing.assert_allclose(batched[1, 2], degrade.imresize(x[1, 2], 0.5), atol=1e-6)


def test_rows_of_resize_matrix_sum_to_one_and_constant_is_kept():
    for n, s in ((17, 0.25), (10, 3.0), (64, 0.5)):
        m = degrade.resize_matrix(n, int(np.ceil(n * s)), s)
        np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-12)
    x = np.full((12, 12, 3), 0.3)
    np.testing.assert_allclose(degrade.imresize(x, 0.5), 0.3, atol=1e-6)


def test_degrade_rejects_sizes_not_divisible_by_scale():
    with pytest.raises(ValueError, match="modcrop"):
        degrade.degrade(np.zeros((10, 9, 3)), 2, "bi")
    assert degrade.modcrop(np.zeros((10, 9, 3)), 4).shape == (8, 8, 3)


def test_bd_matches_matlab_protocol(reference_images):
    for name, arrays in reference_images.items():
        lr = np.asarray(jax.jit(degrade.blur_downsample)(arrays["hr"] / 255.0))
        assert lr.shape == arrays["lr_bd_f64"].shape
        assert np.abs(lr - arrays["lr_bd_f64"]).max() <= 1e-5, name
        u8 = np.floor(np.clip(lr, 0, 1) * 255 + 0.5).astype(np.uint8)
        assert np.count_nonzero(u8 != arrays["lr_bd_u8"]) <= 2, name  # float32 ties only


def test_duf_bd_matches_basicsr_duf_downsample(reference_images):
    for name, arrays in reference_images.items():
        lr = np.asarray(degrade.duf_downsample(arrays["hr"] / 255.0, 4))
        assert np.abs(lr - arrays["lr_bd_duf_f64"]).max() <= 1e-5, name
        assert np.abs(lr - arrays["lr_bd_f64"]).max() > 1e-3  # really a different degradation


def test_gaussian_kernels_are_the_reference_kernels(manifest):
    kernels = np.load(REFERENCE / "kernels.npz")
    np.testing.assert_allclose(np.outer(degrade.bd_taps(1.6), degrade.bd_taps(1.6)), kernels["bd_kernel_matlab_12x12"])
    np.testing.assert_allclose(np.outer(degrade.duf_taps(4), degrade.duf_taps(4)), kernels["duf_kernel_13x13"])


@pytest.mark.parametrize("kind", degrade.DEGRADATIONS)
@pytest.mark.parametrize("scale", [2, 4])
def test_crop_degrade_equals_cropping_the_whole_frame(kind, scale):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (2, 48, 64, 3)).astype(np.float64) / 255.0
    full = np.asarray(degrade.degrade(hr, scale, kind), np.float64)
    h, w = 48 // scale, 64 // scale
    for top, left in [(0, 0), (h - 5, w - 7), (3, 4)]:
        crop = degrade.crop_degrade(hr, scale, kind, top, left, 5, 5)
        np.testing.assert_allclose(crop, full[:, top : top + 5, left : left + 5], atol=1e-6)
    whole = degrade.crop_degrade(hr * 255, scale, kind, 0, 0, h, w) / 255
    np.testing.assert_allclose(whole, full, atol=1e-6)


def test_unknown_degradation_is_named():
    with pytest.raises(ValueError, match="bd_duf"):
        degrade.degrade(np.zeros((8, 8, 3)), 2, "gaussian")
