"""PSNR/SSIM against BasicSR's own calculate_psnr / calculate_ssim (tests/data/basicsr)."""

import itertools

import jax
import numpy as np
import pytest

from vsr_jax import metrics

CASES = list(itertools.product(("psnr", "ssim"), (True, False), (0, 4)))


@pytest.mark.parametrize("kind,y_channel,crop", CASES)
def test_matches_basicsr_on_every_reference_image(manifest, reference_images, kind, y_channel, crop):
    fn = getattr(metrics, kind)
    tol = 1e-5  # the README's claim; measured 2.3e-6 dB (PSNR) and 2.2e-7 (SSIM) at most
    key = f"{kind}_{'y' if y_channel else 'rgb'}_crop{crop}"
    for name, arrays in reference_images.items():
        expected = manifest["images"][name]["metrics_hr_vs_up_bi_u8"][key]
        hr = arrays["hr"] / 255.0
        sr = arrays["up_bi_u8"] / 255.0
        got = float(fn(hr, sr, crop_border=crop, y_channel=y_channel))
        assert abs(got - expected) <= tol, (name, key, got, expected)


def test_y_channel_matches_basicsr_rgb2ycbcr(reference_images):
    for arrays in reference_images.values():
        y = np.asarray(metrics.rgb_to_y(arrays["hr"] / 255.0)) / 255.0
        np.testing.assert_allclose(y, arrays["y_hr_f64"], atol=1e-6)


def test_batched_and_jitted_equal_per_image(reference_images):
    hrs = np.stack([a["hr"] / 255.0 for a in reference_images.values()])
    srs = np.stack([a["up_bi_u8"] / 255.0 for a in reference_images.values()])
    batched = jax.jit(lambda a, b: metrics.ssim(a, b, crop_border=4))(hrs, srs)
    assert batched.shape == (len(hrs),)
    for i in range(len(hrs)):
        assert abs(float(batched[i]) - float(metrics.ssim(hrs[i], srs[i], crop_border=4))) < 1e-6
    # Leading dims (N, T) are kept.
    p = metrics.psnr(hrs[:, None].repeat(2, 1), srs[:, None].repeat(2, 1))
    assert p.shape == (len(hrs), 2)


def test_identical_images_are_perfect(reference_images):
    hr = next(iter(reference_images.values()))["hr"] / 255.0
    assert np.isinf(float(metrics.psnr(hr, hr)))
    assert float(metrics.ssim(hr, hr)) == pytest.approx(1.0, abs=1e-6)


def test_psnr_of_known_noise():
    # A constant error of 1/255 on every pixel gives 20*log10(255) on RGB.
    a = np.full((1, 16, 16, 3), 0.5)
    b = a + 1.0 / 255.0
    assert float(metrics.psnr(a, b, y_channel=False)[0]) == pytest.approx(20 * np.log10(255.0), abs=1e-3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
