"""`video_folder`: the user's own videos (encoded here with PyAV) as a training set."""

import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, tiny_unet_config
from vsr_jax import video_io
from vsr_jax.data import pipeline, video_folder
from vsr_jax.errors import UserError

H, W = 48, 64


def scene(seed: int, n: int) -> np.ndarray:
    """n frames of a smooth random texture panning right by 1 px per frame (uint8 (n, H, W, 3))."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, (H // 4 + 1, (W + n) // 4 + 2, 3)).astype(np.float64)
    big = np.kron(big, np.ones((4, 4, 1)))[:H]
    return np.stack([big[:, t : t + W] for t in range(n)]).round().astype(np.uint8)


def encode(path, frames, codec="libx264", options=None):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"  # ffv1 + bgr0: lossless RGB
        stream.options = options or {}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    encode(root / "cut.mp4", np.concatenate([scene(0, 12), scene(1, 10)]), options={"crf": "10"})
    encode(root / "short.mp4", scene(2, 5))
    (root / "trip").mkdir()
    encode(root / "trip" / "long.mkv", scene(3, 30), codec="ffv1")
    frames = root / "frames"
    frames.mkdir()
    for t, f in enumerate(scene(4, 11)):
        Image.fromarray(f).save(frames / f"frame{t + 1}.png")  # frame1 … frame11: natural order
    (root / "notes.txt").write_text("not a video")
    return root


def config_for(root, tmp_path, **overrides):
    return tiny_unet_config(
        **{
            "data.name": "video_folder",
            "data.path": str(root),
            "data.cache_dir": str(tmp_path / "cache"),
            "data.num_frames": 7,
            "data.patch_size": 16,
            "data.val_percent": 30,
            **overrides,
        }
    )


def test_lists_videos_and_frame_folders(folder):
    names = [i.name for i in video_folder.list_inputs(str(folder))]
    assert names == ["cut.mp4", "frames", "short.mp4", "trip/long.mkv"]


def test_split_by_file_is_deterministic_disjoint_and_nonempty(folder):
    names = [i.name for i in video_folder.list_inputs(str(folder))]
    held = video_folder.held_out_names(names, 30)
    assert held and held < set(names)
    assert held == video_folder.held_out_names(list(reversed(names)), 30)
    assert video_folder.held_out_names(names + ["new.mp4"], 30) - {"new.mp4"} == held  # stable when files are added


def test_windows_skip_cuts_and_short_clips(folder, tmp_path, caplog):
    config = config_for(folder, tmp_path, **{"data.val_percent": 0})
    with caplog.at_level(logging.WARNING):
        source = pipeline.make_source(config.data, "train")
    clips = {c.name: c.frames for c in source.clips()}
    assert sorted(clips) == ["cut.mp4/shot0", "cut.mp4/shot1", "frames/shot0", "trip/long.mkv/shot0"]
    assert [len(clips[n]) for n in sorted(clips)] == [12, 10, 11, 30]
    assert len(source) == (12 - 6) + (10 - 6) + (11 - 6) + (30 - 6)
    assert "short.mp4" in caplog.text and "shorter than 7 frames" in caplog.text
    np.testing.assert_array_equal(clips["frames/shot0"], scene(4, 11))  # PNG frames, in natural order
    np.testing.assert_array_equal(clips["trip/long.mkv/shot0"], scene(3, 30))  # lossless codec: exact
    source_frames = np.concatenate([scene(0, 12), scene(1, 10)]).astype(int)
    for t, frame in enumerate(clips["cut.mp4/shot1"]):  # lossy h264: each decoded frame is nearest its original
        assert np.argmin(np.abs(source_frames - frame.astype(int)).mean(axis=(1, 2, 3))) == 12 + t


def test_decoded_once_then_memory_mapped(folder, tmp_path, monkeypatch):
    config = config_for(folder, tmp_path, **{"data.val_percent": 0})
    pipeline.make_source(config.data, "train")

    def fail(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(video_io, "iter_frames", fail)
    monkeypatch.setattr(video_io, "decode", fail)
    source = pipeline.make_source(config.data, "train")
    assert all(isinstance(c.frames, np.memmap) for c in source.clips())


def test_batches_from_the_folder(folder, tmp_path):
    config = config_for(folder, tmp_path)
    b = next(pipeline.make_train_dataset(config).as_numpy_iterator())
    assert b["lr"].shape == (8, 7, 16, 16, 3) and b["hr"].shape == (8, 7, 32, 32, 3)
    test = pipeline.load_clip_pairs(config.data, "test")
    train_names = {c.name for c in pipeline.make_source(config.data, "train").clips()}
    assert test and not {p.name for p in test} & train_names
    assert test[0].lr.shape[1:] == (H // 2, W // 2, 3)


def test_single_file_is_split_in_time(tmp_path):
    root = tmp_path / "one"
    root.mkdir()
    encode(root / "a.mkv", scene(5, 40), codec="ffv1")
    config = config_for(root, tmp_path, **{"data.val_percent": 25})
    train = [c.frames for c in pipeline.make_source(config.data, "train").clips()]
    test = [c.frames for c in pipeline.make_source(config.data, "test").clips()]
    assert [len(f) for f in train] == [30] and [len(f) for f in test] == [10]
    np.testing.assert_array_equal(test[0][0], scene(5, 40)[30])


def test_cache_refuses_to_decode_without_the_free_disk_it_needs(tmp_path, monkeypatch):
    root = tmp_path / "one"
    root.mkdir()
    encode(root / "a.mkv", scene(5, 40), codec="ffv1")  # 40 × 48 × 64 × 3 = 368,640 bytes in the cache
    config = config_for(root, tmp_path)
    cache = tmp_path / "cache"
    free = {"bytes": 100_000}
    monkeypatch.setattr(video_folder.shutil, "disk_usage", lambda p: SimpleNamespace(free=free["bytes"]))
    with pytest.raises(UserError) as e:
        pipeline.make_source(config.data, "train")
    assert str(e.value) == (
        f"decoding {root / 'a.mkv'} into the frame cache needs ~0.4 MB in {cache}, 0.1 MB free; "
        "free space there or point --config.data.cache_dir at a bigger disk"
    )
    free["bytes"] = 368_639  # one byte short
    with pytest.raises(UserError, match="needs ~0.4 MB"):
        pipeline.make_source(config.data, "train")
    assert os.listdir(cache) == []  # nothing partial
    free["bytes"] = 368_640  # just enough
    assert [len(c.frames) for c in pipeline.make_source(config.data, "train").clips()] == [28]


def test_frames_over_the_pixel_limit_are_refused_before_caching(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "MAX_FRAME_PIXELS", H * W - 1)
    with pytest.raises(video_io.VideoError, match=f"{H * W:,} pixels, over the limit of {H * W - 1:,}"):
        pipeline.make_source(config_for(folder, tmp_path).data, "train")
    assert os.listdir(tmp_path / "cache") == []


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_bad_folders_are_one_line_errors(tmp_path, case):
    root = tmp_path / "in"
    if case != "missing":
        root.mkdir()
    if case == "corrupt":
        (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
        (root / "other.mp4").write_bytes(b"not a video at all")
    config = config_for(root, tmp_path)
    with pytest.raises(UserError) as e:
        pipeline.make_source(config.data, "train")
    assert "\n" not in str(e.value)
    assert {"missing": "not a directory", "empty": "no videos", "corrupt": ".mp4"}[case] in str(e.value)


def test_cli_trains_on_a_video_folder(folder, tmp_path):
    workdir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "vsr_jax.main",
        "--config=configs/unet.py",
        f"--workdir={workdir}",
        "--config.data.name=video_folder",
        f"--config.data.path={folder}",
        f"--config.data.cache_dir={tmp_path / 'cache'}",
        "--config.data.patch_size=16",
        "--config.data.val_percent=30",
        "--config.model.features=(8,16)",
        "--config.batch_size=4",
        "--config.total_steps=3",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (workdir / "eval" / "metrics.json").is_file()
    assert "Starting fresh" in proc.stderr
