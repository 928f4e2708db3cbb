"""tOF (TecoGAN's Farneback-flow difference) on synthetic clips with known motion."""

import numpy as np
import pytest

from vsr_jax import temporal_metrics


def _textured_clip(t=6, h=96, w=128, shift=2, seed=0):
    """A smooth random texture panning `shift` px right per frame: uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8, (w + shift * t) // 8 + 1, 3))
    big = np.kron(coarse, np.ones((8, 8, 1)))
    import cv2

    big = cv2.GaussianBlur(big, (0, 0), 3)
    frames = [big[:h, i * shift : i * shift + w] for i in range(t)][::-1]
    return np.ascontiguousarray(np.stack(frames)).clip(0, 255).round().astype(np.uint8)


def test_tof_is_zero_for_the_ground_truth_and_a_static_video():
    clip = _textured_clip()
    assert temporal_metrics.tof(clip, clip) == 0.0
    static = np.repeat(clip[:1], 6, axis=0)
    assert temporal_metrics.tof(static, static) == 0.0


def test_tof_grows_with_flicker():
    clip = _textured_clip()
    values = []
    for amplitude in (0, 8, 24):
        rng = np.random.default_rng(1)
        # each frame gets its own smooth random brightness pattern: flicker the truth lacks
        noise = rng.normal(0, 1, (len(clip), 12, 16, 1))
        noise = np.stack([np.kron(n, np.ones((8, 8, 1))) for n in noise])
        flicker = np.clip(clip + amplitude * noise, 0, 255).round().astype(np.uint8)
        values.append(temporal_metrics.tof(flicker, clip))
    assert values[0] == 0.0 and 0 < values[1] < values[2]


def test_tof_sees_wrong_motion():
    clip = _textured_clip(shift=2)
    frozen = np.repeat(clip[:1], len(clip), axis=0)  # an output that does not move
    per_pair = temporal_metrics.tof_per_pair(frozen, clip)
    assert per_pair.shape == (5,)
    # the truth moves 2 px per frame, the output 0: flow difference about 2 px
    assert 1.0 < per_pair.mean() < 3.0


def test_tof_crop_and_errors():
    assert temporal_metrics.crop_8x8(np.zeros((144, 176))).shape == (128, 160)  # TecoGAN's crop
    assert temporal_metrics.crop_8x8(np.zeros((20, 20))).shape == (20, 20)
    with pytest.raises(ValueError, match="uint8 RGB"):
        temporal_metrics.tof(np.zeros((3, 8, 8, 3)), np.zeros((3, 8, 8, 3)))
    with pytest.raises(ValueError, match="differ in shape"):
        temporal_metrics.tof(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8))
    assert np.isnan(temporal_metrics.tof(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8)))


def test_warping_error_is_zero_without_flicker_and_grows_with_it():
    static = np.repeat(_textured_clip()[:1], 5, axis=0)
    assert temporal_metrics.warping_error(static, static) < 1e-6  # Farneback finds ~0 motion, not exactly 0
    clip = _textured_clip()
    truth = temporal_metrics.warping_error(clip, clip)  # Farneback + bilinear warp: small, not 0
    assert 0 <= truth < 2e-4
    values = []
    for amplitude in (0.0, 0.02, 0.06):
        offsets = amplitude * np.array([0, 1, -1, 1, -1, 1])[:, None, None, None] * 255
        values.append(temporal_metrics.warping_error(np.clip(clip + offsets, 0, 255).astype(np.uint8), clip))
    assert values[0] == truth and truth < values[1] < values[2]
    # a global brightness flicker of 0.06 changes every frame pair by about 0.12: E_warp ≈ 0.12²
    assert values[2] == pytest.approx(0.12**2, rel=0.3)


def test_visible_mask_flags_disagreeing_flows():
    h, w = 8, 10
    backward = np.zeros((h, w, 2), np.float32)
    backward[..., 0] = 2.0
    consistent = np.zeros((h, w, 2), np.float32)
    consistent[..., 0] = -2.0
    assert temporal_metrics.visible_mask(backward, consistent).all()
    assert not temporal_metrics.visible_mask(backward, np.zeros_like(consistent)).any()


def test_one_reference_scores_several_outputs_as_the_functions_do():
    clip = _textured_clip()
    other = np.roll(clip, 1, axis=2)
    ref = temporal_metrics.TemporalReference(clip)
    assert ref.tof(other) == temporal_metrics.tof(other, clip)
    assert ref.warping_error(other) == temporal_metrics.warping_error(other, clip)
