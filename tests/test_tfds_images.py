"""cats_vs_dogs (TFDS) for single-image SR, on TFDS's mock data (no download)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.conftest import tiny_unet_config
from vsr_jax.data import pipeline
from vsr_jax.errors import ConfigError


def cats_config(**overrides):
    return tiny_unet_config(**{"data.name": "cats_vs_dogs", "data.num_frames": 1, "data.patch_size": 16, **overrides})


def test_cats_vs_dogs_batches_from_mock_data():
    config = cats_config()
    with tfds.testing.mock_data(num_examples=40):
        source = pipeline.make_source(config.data, "train")
        assert len(source) > 0
        assert source.window(0).ndim == 4 and source.window(0).shape[0] == 1 and source.window(0).shape[-1] == 3
        b = next(pipeline.make_train_dataset(config).as_numpy_iterator())
        pairs = pipeline.load_clip_pairs(config.data, "test", max_clips=2)
    assert b["lr"].shape == (8, 1, 16, 16, 3) and b["hr"].shape == (8, 1, 32, 32, 3)
    assert 0 <= b["hr"].min() and b["hr"].max() <= 1 and b["hr"].std() > 0
    assert len(pairs) == 2 and pairs[0].hr.shape[1] == 2 * pairs[0].lr.shape[1]
    assert np.all(np.asarray(pairs[0].hr.shape[1:3]) % 2 == 0)


def test_cats_vs_dogs_needs_single_frames():
    with tfds.testing.mock_data(num_examples=4), pytest.raises(ConfigError, match="num_frames=1"):
        pipeline.make_source(cats_config(**{"data.num_frames": 7}).data, "train")
