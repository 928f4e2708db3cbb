"""The training input pipeline: shapes, exact LR, determinism, resume and multi-process sharding."""

import itertools

import numpy as np
import pytest

from tests.conftest import tiny_unet_config
from vsr_jax.data import augment, degrade, pipeline

KEYS = ("hflip", "vflip", "transpose", "reverse")


def batches(config, n, **kwargs):
    it = pipeline.make_train_dataset(config, **kwargs).as_numpy_iterator()
    return [next(it) for _ in range(n)]


@pytest.fixture(scope="module")
def video_config():
    return tiny_unet_config(**{"data.num_frames": 7, "data.scale": 4, "batch_size": 4})


def test_batches_have_documented_shapes_and_range(video_config):
    (b,) = batches(video_config, 1)
    assert b["lr"].shape == (4, 7, 32, 32, 3) and b["hr"].shape == (4, 7, 128, 128, 3)
    assert b["lr"].dtype == np.float32 and b["hr"].dtype == np.float32
    assert 0.0 <= b["lr"].min() and b["hr"].max() <= 1.0
    assert b["hr"].std() > 0.05  # real frames, not padding


@pytest.mark.parametrize("kind", ["bi", "bd"])
def test_augmented_lr_is_the_degraded_augmented_hr(kind):
    config = tiny_unet_config(
        **{"data.scale": 4, "data.num_frames": 3, "data.degradation": kind, "data.temporal_reverse": True}
    )
    config.batch_size = 16
    (b,) = batches(config, 1)
    lr = np.asarray(degrade.degrade(b["hr"], 4, kind))
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # away from the patch border
    np.testing.assert_allclose(b["lr"][inner], lr[inner], atol=0.5 / 255 + 1e-5)
    # ... and the stream really is augmented: some clips play backwards / are mirrored.
    plain = config.copy_and_resolve_references()
    plain.data.augment, plain.data.temporal_reverse = False, False
    (p,) = batches(plain, 1)
    used = set()
    for i in range(16):  # each augmented clip is one of the 16 transforms of its plain clip
        matches = [
            bits
            for bits in itertools.product([False, True], repeat=4)
            if np.array_equal(b["hr"][i], augment.apply(p["hr"][i], dict(zip(KEYS, bits, strict=True)), reverse=True))
        ]
        assert matches, i
        used.add(matches[0])
    assert len(used) > 3


def test_stream_is_deterministic_and_seeded(video_config):
    a, b = batches(video_config, 2), batches(video_config, 2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["hr"], y["hr"])
    other = video_config.copy_and_resolve_references()
    other.seed = 1
    (c,) = batches(other, 1)
    assert not np.array_equal(a[0]["hr"], c["hr"])


def test_resume_at_step_k_sees_batch_k(video_config):
    straight = batches(video_config, 4)
    resumed = batches(video_config, 1, start_step=3)
    np.testing.assert_array_equal(straight[3]["lr"], resumed[0]["lr"])
    np.testing.assert_array_equal(straight[3]["hr"], resumed[0]["hr"])


def test_two_processes_split_the_same_global_batch(video_config):
    (whole,) = batches(video_config, 1, start_step=2)
    (p0,) = batches(video_config, 1, start_step=2, process_index=0, process_count=2)
    (p1,) = batches(video_config, 1, start_step=2, process_index=1, process_count=2)
    assert p0["hr"].shape[0] == 2
    np.testing.assert_array_equal(whole["hr"][0::2], p0["hr"])
    np.testing.assert_array_equal(whole["hr"][1::2], p1["hr"])


def test_every_epoch_is_a_new_permutation_of_all_windows(video_config):
    maker = pipeline.ExampleMaker(pipeline.make_source(video_config.data, "train"), video_config.data, seed=0)
    n = maker.n
    order = np.asarray([maker.window_of(i) for i in range(2 * n)])
    assert sorted(order[:n]) == list(range(n)) and sorted(order[n:]) == list(range(n))
    assert not np.array_equal(order[:n], order[n:])
    other = pipeline.ExampleMaker(maker.source, video_config.data, seed=1)
    assert not np.array_equal(order[:n], [other.window_of(i) for i in range(n)])


def test_noise_and_jpeg_corrupt_only_the_lr():
    clean_config = tiny_unet_config(batch_size=4)
    (clean,) = batches(clean_config, 1)
    for overrides in ({"data.noise_sigma": 10.0}, {"data.jpeg_quality": 20}):
        (noisy,) = batches(tiny_unet_config(batch_size=4, **overrides), 1)
        np.testing.assert_array_equal(noisy["hr"], clean["hr"])
        diff = np.abs(noisy["lr"] - clean["lr"]).mean() * 255
        assert 1.0 < diff < 12.0, (overrides, diff)  # σ = 10 -> ≈ 8 levels; JPEG q20 a few levels
        assert noisy["lr"].min() >= 0 and noisy["lr"].max() <= 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"data.scale": 4, "data.num_frames": 3, "data.temporal_reverse": True},
        {"data.scale": 3, "data.num_frames": 1, "data.degradation": "bd", "data.noise_sigma": 4.0},
        {"data.scale": 2, "data.num_frames": 2, "data.degradation": "bd_duf", "data.jpeg_quality": 40},
    ],
)
def test_lr_cache_examples_equal_the_band_products(overrides):
    """The LR cache (whole-frame LR, made once) and each example's own band product give the same bytes."""
    data = tiny_unet_config(**overrides).data
    source = pipeline.make_source(data, "train")
    cache = pipeline.LRCache.for_source(source, data)
    assert cache is not None and len(cache.lr) == len(source.clip_frames)
    cached = pipeline.ExampleMaker(source, data, seed=3, lr_cache=cache)
    plain = pipeline.ExampleMaker(source, data, seed=3)
    indices = np.arange(40, 64)
    for a, b in zip(cached.batch(indices), plain.batch(indices), strict=True):
        np.testing.assert_array_equal(a, b)
    lr, hr = plain.batch(indices[:3])
    for i, index in enumerate(indices[:3]):  # and both are make_example, the NumPy reference
        ref_lr, ref_hr = plain(int(index))
        np.testing.assert_array_equal(lr[i], ref_lr)
        np.testing.assert_array_equal(hr[i], ref_hr)


def test_lr_cache_is_skipped_when_off_too_big_or_frames_need_padding(caplog):
    data = tiny_unet_config(**{"data.scale": 4}).data
    source = pipeline.make_source(data, "train")
    with data.unlocked():
        data.lr_cache_gb = 0.0
    assert pipeline.LRCache.for_source(source, data) is None
    with data.unlocked():
        data.lr_cache_gb = 1e-4  # ~100 KiB: less than the sample clips' LR
    with caplog.at_level("INFO"):
        assert pipeline.LRCache.for_source(source, data) is None
    assert "data.lr_cache_gb" in caplog.text
    with data.unlocked():
        data.lr_cache_gb, data.patch_size = 4.0, 80  # 320 px HR patches: taller than the 272 px clips
    assert pipeline.LRCache.for_source(source, data) is None


def test_batches_are_the_same_with_and_without_the_lr_cache(video_config):
    no_cache = video_config.copy_and_resolve_references()
    with no_cache.unlocked():
        no_cache.data.lr_cache_gb = 0.0
    for a, b in zip(batches(video_config, 2, start_step=5), batches(no_cache, 2, start_step=5), strict=True):
        np.testing.assert_array_equal(a["lr"], b["lr"])
        np.testing.assert_array_equal(a["hr"], b["hr"])


def test_lr_cache_is_made_once_per_source(video_config, monkeypatch):
    source = pipeline.make_source(video_config.data, "train")
    first = pipeline.LRCache.for_source(source, video_config.data)
    monkeypatch.setattr(pipeline, "degrade_clip", lambda *a: pytest.fail("the LR cache was made again"))
    assert pipeline.LRCache.for_source(source, video_config.data) is first  # e.g. a run rewound after NaNs
    batches(video_config, 1, source=source, start_step=3)
