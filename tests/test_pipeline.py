"""The training input pipeline: shapes, exact LR, determinism, resume and multi-process sharding."""

import numpy as np
import pytest

from tests.conftest import tiny_unet_config
from vsr_jax.data import degrade, pipeline


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


def test_lr_is_matlab_bicubic_of_hr_in_every_patch(video_config):
    config = tiny_unet_config(**{"data.scale": 2, "data.augment": False, "batch_size": 2})
    (b,) = batches(config, 1)
    # Away from the patch border the LR patch only depends on HR pixels inside the patch.
    hr = b["hr"][:, 0]
    lr = np.asarray(degrade.imresize(hr, 0.5))
    inner = (slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(lr[inner], b["lr"][:, 0][inner], atol=0.5 / 255 + 1e-6)


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


def test_every_epoch_is_a_new_permutation_of_all_windows():
    n = 170
    order = np.asarray([int(pipeline.window_of(i, n, 0)) for i in range(2 * n)])
    assert sorted(order[:n]) == list(range(n)) and sorted(order[n:]) == list(range(n))
    assert not np.array_equal(order[:n], order[n:])
    assert not np.array_equal(order[:n], [int(pipeline.window_of(i, n, 1)) for i in range(n)])
