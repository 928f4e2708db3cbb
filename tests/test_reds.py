"""`reds`: REDS in BasicSR's layout (ROOT/train_sharp/<clip>/<frame>.png) as a training set,
on a small fake tree: the REDS4 / official splits, frame order, a batch, one-line errors."""

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tiny_unet_config
from vsr_jax import config_lib
from vsr_jax.data import pipeline, reds
from vsr_jax.errors import ConfigError, UserError

CLIPS = ("000", "001", "011", "015", "020", "030", "245")
H, W, T = 32, 40, 5


def frame(clip: str, t: int) -> np.ndarray:
    """A frame that says which clip and which time it is: every pixel of channel 0 is the
    clip number mod 256, channel 1 is the time, channel 2 a seeded texture."""
    rng = np.random.default_rng([int(clip), t])
    out = np.empty((H, W, 3), np.uint8)
    out[..., 0], out[..., 1] = int(clip) % 256, t
    out[..., 2] = rng.integers(0, 256, (H, W))
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("REDS")
    for clip in CLIPS:
        d = root / "train_sharp" / clip
        d.mkdir(parents=True)
        for t in reversed(range(T)):
            # 8-digit names as REDS; written last first, so order comes from the names
            Image.fromarray(frame(clip, t)).save(d / f"{t:08d}.png")
    (root / "train_sharp" / "notes.txt").write_text("not a clip")
    return root


def data_for(root, **overrides):
    data = config_lib.base_config().data
    data.name, data.path, data.num_frames, data.patch_size, data.scale = "reds", str(root), 3, 4, 4
    for k, v in overrides.items():
        data[k] = v
    return data


def names(source):
    return [c.name for c in source.clips()]


def test_reds4_split_is_held_out(root):
    train = pipeline.make_source(data_for(root), "train")
    test = pipeline.make_source(data_for(root), "test")
    assert names(test) == list(reds.REDS4) == ["000", "011", "015", "020"]
    assert names(train) == ["001", "030", "245"]
    assert len(train) == 3 * (T - 3 + 1)  # windows of 3 of 5 frames, never across clips


def test_official_split_holds_out_240_to_269(root):
    assert names(pipeline.make_source(data_for(root, reds_val="official"), "test")) == ["245"]
    train = pipeline.make_source(data_for(root, reds_val="official"), "train")
    assert names(train) == ["000", "001", "011", "015", "020", "030"]


def test_frames_in_order_and_windows_read_lazily(root):
    source = pipeline.make_source(data_for(root), "train")
    clip = next(source.clips())
    assert clip.frames.shape == (T, H, W, 3) and len(clip.frames) == T
    np.testing.assert_array_equal(np.asarray(clip.frames), np.stack([frame("001", t) for t in range(T)]))
    # window k of clip 001 is frames k..k+2
    for k in range(T - 3 + 1):
        np.testing.assert_array_equal(source.window(k), np.stack([frame("001", t) for t in range(k, k + 3)]))
    last = source.window(len(source) - 1)
    assert (last[..., 0] == 245).all() and last[:, 0, 0, 1].tolist() == [2, 3, 4]


def test_eval_pairs_are_whole_clips_degraded(root):
    pairs = pipeline.load_clip_pairs(data_for(root), "test")
    assert [p.name for p in pairs] == ["000", "011", "015", "020"]
    assert pairs[1].hr.shape == (T, H, W, 3) and pairs[1].lr.shape == (T, H // 4, W // 4, 3)
    np.testing.assert_array_equal(pairs[1].hr[4], frame("011", 4))
    np.testing.assert_array_equal(pairs[1].lr, pipeline.degrade_clip(pairs[1].hr, 4, "bi"))


def test_a_training_batch(root):
    config = tiny_unet_config(**{"batch_size": 2})
    config.data = data_for(root)
    batch = next(iter(pipeline.make_dataset(config, "train")))
    assert batch["lr"].shape == (2, 3, 4, 4, 3) and batch["hr"].shape == (2, 3, 16, 16, 3)
    lr, hr = np.asarray(batch["lr"]), np.asarray(batch["hr"])
    assert lr.dtype == np.float32 and 0.0 <= lr.min() and lr.max() <= 1.0
    # every HR patch is from one training clip (channel 0 names the clip; flips keep it)
    clip_ids = np.round(hr[..., 0] * 255).reshape(2, -1)
    assert all(len(set(row.tolist())) == 1 and row[0] in (1, 30, 245) for row in clip_ids)


def test_errors_are_one_line(root, tmp_path):
    cases = [
        (data_for(""), ConfigError, "data.path"),
        (data_for(tmp_path / "nowhere"), UserError, "train_sharp"),
        (data_for(root, reds_val="REDS5"), ConfigError, "reds_val"),
        (data_for(root, num_frames=9), UserError, "lower data.num_frames"),
    ]
    (tmp_path / "empty" / "train_sharp").mkdir(parents=True)
    cases.append((data_for(tmp_path / "empty"), UserError, "no clip folders"))
    (tmp_path / "noframes" / "train_sharp" / "001").mkdir(parents=True)
    cases.append((data_for(tmp_path / "noframes"), UserError, "holds no frames"))
    only_train = tmp_path / "only_train" / "train_sharp" / "001"
    only_train.mkdir(parents=True)
    Image.fromarray(frame("001", 0)).save(only_train / "00000000.png")
    for data, error, words in cases:
        with pytest.raises(error) as e:
            pipeline.make_source(data, "train")
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(UserError) as e:
        pipeline.make_source(data_for(tmp_path / "only_train", num_frames=1), "test")
    assert "no test clips" in str(e.value) and "000, 011, 015, 020" in str(e.value)


def test_vsr_eval_scores_a_reds_runs_split_from_data_dir(root, capsys):
    from absl import flags
    from absl.testing import flagsaver

    from vsr_jax.errors import UserError
    from vsr_jax.evaluate import __main__ as vsr_eval

    config = tiny_unet_config()
    config.data = data_for(root, path="")  # a saved run's config: its paths are emptied
    with flagsaver.flagsaver():
        flags.FLAGS(["vsr-eval", "--workdir=/unused"])
        with pytest.raises(UserError, match="the REDS root holding train_sharp/"):  # library code raises, never exits
            vsr_eval.test_pairs(config, {})
        flags.FLAGS(["vsr-eval", "--workdir=/unused", f"--data_dir={root}"])
        pairs, name, kind = vsr_eval.test_pairs(config, {})
    assert (name, kind) == ("reds", "bi") and [p.name for p in pairs] == list(reds.REDS4)
