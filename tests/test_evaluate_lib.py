"""The evaluation library: self-ensemble, test-set folder layouts, CSV/table output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vsr_jax import evaluate, models
from vsr_jax.data import pipeline
from vsr_jax.evaluate import datasets
from vsr_jax.models import layers


def test_the_eight_dihedral_transforms_invert_and_differ():
    x = jnp.arange(2 * 3 * 4 * 5 * 3, dtype=jnp.float32).reshape(2, 3, 4, 5, 3)
    seen = set()
    for k in range(8):
        y = layers.dihedral(x, k)
        np.testing.assert_array_equal(np.asarray(layers.dihedral(y, k, inverse=True)), np.asarray(x))
        seen.add(np.asarray(y).tobytes())
    assert len(seen) == 8


def test_self_ensemble_of_a_flip_invariant_model_changes_nothing_and_of_a_trained_one_averages():
    model = models.create_model("srresnet", 2, {"features": 8, "num_blocks": 1})
    lr = np.random.default_rng(0).integers(96, 160, (2, 12, 10, 3), dtype=np.uint8)  # no clipping at 0 or 1
    params = models.init_variables(model, jax.random.key(0), jnp.zeros((1, 1, 12, 10, 3)))["params"]
    plain = evaluate.make_predictor(model, params, num_frames=1, batch_frames=2)
    ens = evaluate.make_predictor(model, params, num_frames=1, batch_frames=2, self_ensemble=True)
    # a fresh SRResNet is bicubic upsampling (zero last conv): flips and transposes commute with it
    np.testing.assert_allclose(ens(lr), plain(lr), atol=1e-5)
    noisy = jax.tree.map(lambda p: p + 0.02 * jax.random.normal(jax.random.key(1), p.shape), params)
    plain, ens = (
        evaluate.make_predictor(model, noisy, num_frames=1, batch_frames=2, self_ensemble=e) for e in (False, True)
    )
    manual = np.mean(
        [np.asarray(layers.dihedral(plain(np.asarray(layers.dihedral(lr, k))), k, inverse=True)) for k in range(8)],
        axis=0,
    )
    assert np.abs(ens(lr) - plain(lr)).max() > 1e-3
    # the ensemble is the mean of the 8 outputs, each transformed back
    assert 0 < manual.min() and manual.max() < 1
    np.testing.assert_allclose(ens(lr), manual, atol=1e-5)


def _frames(folder, n=3, h=16, w=20, seed=0):
    folder.mkdir(parents=True)
    frames = np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"im{i + 1}.png")
    return frames


def test_vid4_layout_reads_gt_and_its_lr_folder(tmp_path):
    for clip in datasets.STANDARD_CLIPS["vid4"]:
        _frames(tmp_path / "GT" / clip, h=16, w=20)
        _frames(tmp_path / "BDx4" / clip, h=4, w=5, seed=1)
    pairs = datasets.named_pairs("vid4", str(tmp_path), scale=4, degradation="bd")
    assert [p.name for p in pairs] == ["calendar", "city", "foliage", "walk"]
    assert pairs[0].hr.shape == (3, 16, 20, 3) and pairs[0].lr.shape == (3, 4, 5, 3)
    # the LR frames are the folder's, not made by us
    assert np.array_equal(pairs[0].lr[0], np.asarray(Image.open(tmp_path / "BDx4" / "calendar" / "im1.png")))
    # BI has no folder here: made by MATLAB bicubic from HR
    pairs = datasets.named_pairs("vid4", str(tmp_path), scale=4, degradation="bi", max_clips=1)
    assert np.array_equal(pairs[0].lr, pipeline.degrade_clip(pairs[0].hr, 4, "bi"))


def test_layout_errors_name_what_is_missing(tmp_path):
    with pytest.raises(datasets.DatasetError, match="no HR folder"):
        datasets.named_pairs("reds4", str(tmp_path), scale=4, degradation="bi")
    _frames(tmp_path / "GT" / "calendar")
    with pytest.raises(datasets.DatasetError, match=r"lacks the clip\(s\) \['city', 'foliage', 'walk'\]"):
        datasets.named_pairs("vid4", str(tmp_path), scale=4, degradation="bi")
    _frames(tmp_path / "lr" / "calendar", h=5, w=5)
    with pytest.raises(datasets.DatasetError, match="does not match HR"):
        datasets.folder_pairs(str(tmp_path / "GT"), scale=4, degradation="bi", lr_root=str(tmp_path / "lr"))


def test_csv_and_table_hold_every_clip_and_the_mean(tmp_path):
    clips = {
        "a": {"psnr_y": 30.0, "ssim_y": 0.9, "bicubic_psnr_y": 28.0, "bicubic_ssim_y": 0.8, "num_frames": 4},
        "b": {"psnr_y": 32.0, "ssim_y": 0.7, "bicubic_psnr_y": 29.0, "bicubic_ssim_y": 0.6, "num_frames": 6},
    }
    result = evaluate.summarize(clips)
    assert result["psnr_y"] == 31.0 and result["ssim_y"] == pytest.approx(0.8) and result["num_frames"] == 10
    evaluate.write_csv(result, str(tmp_path / "m.csv"))
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "clip,psnr_y,ssim_y,bicubic_psnr_y,bicubic_ssim_y,num_frames"
    assert lines[1].startswith("a,30.0,") and lines[3].startswith("mean over clips,31.0,")
    table = evaluate.format_table(result)
    assert "bicubic PSNR" in table.splitlines()[0] and "31.000" in table.splitlines()[-1]


def test_center_frame_protocol_scores_the_middle_frame_only():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    pair = pipeline.ClipPair("clip", pipeline.degrade_clip(hr, 2), hr)
    noisy = np.clip(hr / 255.0 + rng.normal(0, 0.02, hr.shape), 0, 1).astype(np.float32)
    predict = lambda lr: noisy  # noqa: E731 - a stand-in model: the HR clip plus noise
    full = evaluate.evaluate_clips(predict, [pair], scale=2, crop_border=2)
    center = evaluate.evaluate_clips(predict, [pair], scale=2, crop_border=2, center_frame=True)
    per_frame = evaluate.frame_metrics(noisy, hr, 2)["psnr_y"]
    assert center["num_frames"] == 1 and "tof" not in center and "tof" in full
    assert center["psnr_y"] == pytest.approx(float(per_frame[3]), abs=1e-6)
    assert full["psnr_y"] == pytest.approx(float(per_frame.mean()), abs=1e-6)


def test_figure_panels_show_the_crop_and_its_zoomed_middle():
    rng = np.random.default_rng(5)
    hr = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    lr = hr[::4, ::4]
    sr = hr / 255.0
    img = evaluate.panels(lr, sr, sr, hr, max_hw=(32, 40))
    assert img.shape == (64, 160, 3) and img.dtype == np.uint8
    crop = hr[16:48, 20:60]
    np.testing.assert_array_equal(img[:32, 120:160], crop)  # HR, top row
    # bottom row: the middle 8×10 of the crop, ×4 nearest
    np.testing.assert_array_equal(img[32:, 120:160], np.repeat(np.repeat(crop[12:20, 15:25], 4, 0), 4, 1))
