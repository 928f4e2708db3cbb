"""The bundled sample clips: shot cuts, 7-frame windows and the train / held-out split."""

import numpy as np
import pytest

from tests.conftest import tiny_unet_config
from vsr_jax.data import pipeline, sample, scenes


@pytest.fixture(scope="module")
def shots():
    return sample.load_shots()


def test_bikes_splits_at_its_five_hard_cuts(shots):
    bikes = [(s.start, s.start + len(s.frames)) for s in shots if s.video == "bikes"]
    assert bikes == [(0, 30), (30, 76), (76, 137), (137, 187), (187, 242), (242, 250)]
    carphone = [s for s in shots if s.video == "carphone"]
    assert len(carphone) == 1 and carphone[0].frames.shape == (120, 144, 176, 3)
    assert shots[0].frames.shape[1:] == (272, 640, 3) and shots[0].frames.dtype == np.uint8


def test_cut_threshold_separates_cuts_from_motion(shots):
    frames = np.concatenate([s.frames for s in shots if s.video == "bikes"])
    diffs = scenes.frame_differences(frames)
    cuts = np.asarray([30, 76, 137, 187, 242]) - 1
    within = np.delete(diffs, cuts)
    assert diffs[cuts].min() > 1.5 * scenes.DEFAULT_CUT_THRESHOLD
    assert within.max() < scenes.DEFAULT_CUT_THRESHOLD


def test_split_is_whole_shots_disjoint_and_complete(shots):
    train, test = sample.load_split("train"), sample.load_split("test")
    assert sorted(s.name for s in test) == ["bikes/shot3", "carphone/shot0"]
    assert {s.name for s in train}.isdisjoint({s.name for s in test})
    for video, length in (("bikes", 250), ("carphone", 120)):
        covered = sorted(f for s in train + test if s.video == video for f in range(s.start, s.start + len(s.frames)))
        assert covered == list(range(length))
    assert sum(len(s.frames) for s in train) == 200
    assert sum(len(s.frames) for s in test) == 170
    with pytest.raises(ValueError, match="splits"):
        sample.load_split("validation")


def test_septuplet_windows_never_cross_a_cut():
    assert scenes.window_starts(10, 7, 1) == [0, 1, 2, 3]
    assert scenes.window_starts(6, 7, 1) == []
    assert scenes.window_starts(20, 7, 7) == [0, 7]
    lengths = [len(s.frames) for s in sample.load_split("train")]  # 30, 46, 61, 55, 8
    expected = sum(max(0, n - 6) for n in lengths)
    assert expected == 170

    source = pipeline.make_source(tiny_unet_config(**{"data.num_frames": 7}).data, "train")
    assert len(source) == 170
    clips = list(source.clips())
    for c, start in source.windows:
        assert start + 7 <= len(clips[c].frames)  # inside one shot
    np.testing.assert_array_equal(source.window(len(source) - 1)[0], clips[-1].frames[1])


def test_synthetic_cut_is_found():
    rng = np.random.default_rng(0)
    a = np.full((5, 8, 8, 3), 40, np.uint8) + rng.integers(0, 5, (5, 8, 8, 3), dtype=np.uint8)
    b = np.full((4, 8, 8, 3), 200, np.uint8)
    assert scenes.split_shots(np.concatenate([a, b])) == [(0, 5), (5, 9)]


def test_clips_are_decoded_once_per_process_not_per_epoch(monkeypatch):
    """Issue 22's `data.host_cache` holds already: `sample.load_shots` decodes once per process
    (functools.cache) and every source and every epoch reads the same in-memory frames."""
    from vsr_jax import video_io

    shots = sample.load_shots()

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(video_io, "read_frames", fail)
    monkeypatch.setattr(video_io, "iter_frames", fail)
    data = tiny_unet_config(**{"data.num_frames": 3, "data.patch_size": 8}).data
    source = pipeline.make_source(data, "train")
    assert all(any(np.shares_memory(c.frames, s.frames) for s in shots) for c in source.clips())
    maker = pipeline.ExampleMaker(source, data, seed=0)
    for epoch in range(3):
        maker(epoch * maker.n)
