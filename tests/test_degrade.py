"""MATLAB-compatible bicubic imresize against BasicSR's imresize (../shared/reference)."""

import jax
import numpy as np
import pytest

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


def test_bicubic_downsample_rejects_sizes_not_divisible_by_scale():
    with pytest.raises(ValueError, match="modcrop"):
        degrade.bicubic_downsample(np.zeros((10, 9, 3)), 2)
    assert degrade.modcrop(np.zeros((10, 9, 3)), 4).shape == (8, 8, 3)
