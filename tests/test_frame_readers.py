"""One way to read frames: the same file gives the same RGB frames to training (`data/`),
to vsr-eval (`evaluate.datasets`) and to vsr-upscale (`upscale.job` + `video_io.decode`),
for 8- and 10-bit videos tagged BT.601 or BT.709 and for 8- and 16-bit PNG frames.

Training and evaluation work on uint8; where the upscaler reads 16 bits (>8-bit sources)
their frames are `video_io.to_uint8` of its frames."""

import os

import av
import cv2
import numpy as np
import pytest

from tests import upscale_helpers as uh
from vsr_jax import video_io
from vsr_jax.data import reds, video_folder
from vsr_jax.evaluate import datasets
from vsr_jax.upscale import job

T, H, W = 3, 32, 48
SOURCE = uh.moving_frames(T, H, W)

# (name, container, codec, pix_fmt, AVColorSpace, AVColorRange); 4:4:4 so that decoded
# frames stay close to SOURCE, which shows the tagged matrix and range were applied
# (BT.601 and BT.709 differ by ~30 levels on these frames)
VIDEOS = [
    ("bt601_8bit", "mp4", "libx264", "yuv444p", 6, 1),
    ("bt709_8bit", "mp4", "libx264", "yuv444p", 1, 1),
    ("bt709_8bit_full", "mp4", "libx264", "yuv444p", 1, 2),
    ("bt601_10bit", "mkv", "ffv1", "yuv444p10le", 5, 1),
    ("bt709_10bit", "mkv", "ffv1", "yuv444p10le", 1, 1),
    ("bt709_10bit_420", "mp4", "libx264", "yuv420p10le", 1, 1),
]
_SWS_MATRIX = {1: "ITU709", 5: "ITU601", 6: "ITU601"}


def write_tagged(path, codec, pix_fmt, colorspace, color_range):
    """SOURCE encoded (losslessly where the codec can) with the given matrix and range, tagged on
    the stream and on every frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options={"qp": "0"} if codec == "libx264" else {})
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        cc = stream.codec_context
        cc.colorspace = cc.color_primaries = cc.color_trc = colorspace
        cc.color_range = color_range
        for rgb in SOURCE:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt,
                dst_colorspace=_SWS_MATRIX[colorspace],
                dst_color_range="JPEG" if color_range == 2 else "MPEG",
                threads=1,
            )
            frame.colorspace, frame.color_range = colorspace, color_range
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def three_readers(path, tmp_path):
    """(training, evaluation, upscaler) frames of the video file or frame folder `path`."""
    item = video_folder.Input(os.path.basename(path), str(path), os.path.isdir(path))
    train, _ = video_folder.decode_cached(item, str(tmp_path / "cache"), cut_threshold=1e9)
    evaluation = datasets.read_clip(str(path))
    info = job.probe_input(str(path), job.Options())
    upscale = np.stack([frame for _, frame in video_io.decode(info)])
    return np.asarray(train), evaluation, upscale, info


@pytest.mark.parametrize("name, ext, codec, pix_fmt, colorspace, color_range", VIDEOS, ids=[v[0] for v in VIDEOS])
def test_a_video_gives_the_same_frames_to_training_eval_and_upscaling(
    tmp_path, name, ext, codec, pix_fmt, colorspace, color_range
):
    path = tmp_path / f"{name}.{ext}"
    write_tagged(path, codec, pix_fmt, colorspace, color_range)
    train, evaluation, upscale, info = three_readers(path, tmp_path)
    # the tags are read back: the decoder knows which matrix and range the file says
    assert (info.colorspace, info.color_range) == (colorspace, color_range)
    deep = pix_fmt.endswith("10le")
    assert info.bit_depth == (10 if deep else 8) and upscale.dtype == (np.uint16 if deep else np.uint8)
    assert train.dtype == evaluation.dtype == np.uint8 and train.shape == evaluation.shape == (T, H, W, 3)
    np.testing.assert_array_equal(train, evaluation)
    np.testing.assert_array_equal(train, video_io.to_uint8(upscale))
    if "420" not in name:  # lossless 4:4:4: the right matrix gives back SOURCE to a level or two
        assert np.abs(train.astype(int) - SOURCE).max() <= 2


def write_pngs(folder, frames):
    folder.mkdir()
    for t, rgb in enumerate(frames):
        assert cv2.imwrite(str(folder / f"f{t + 1}.png"), rgb[..., ::-1])  # f1 … f3 in natural order


@pytest.mark.parametrize("bits", [8, 16])
def test_png_frames_give_the_same_frames_to_training_eval_and_upscaling(tmp_path, bits):
    rng = np.random.default_rng(bits)
    frames = SOURCE if bits == 8 else rng.integers(0, 65536, SOURCE.shape, dtype=np.uint16)
    folder = tmp_path / f"png{bits}"
    write_pngs(folder, frames)
    train, evaluation, upscale, info = three_readers(folder, tmp_path)
    np.testing.assert_array_equal(upscale, frames)  # the upscaler reads the PNGs' own bits
    expected = video_io.to_uint8(frames)
    for got in (train, evaluation, reds.FrameFiles(video_io.image_files(str(folder)))[:]):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def test_to_uint8_rounds_16_bit_frames_to_the_nearest_level():
    every = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(video_io.to_uint8(every), np.rint(every / 257.0).astype(np.uint8))
    eight = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(video_io.to_uint8(eight), eight)
    np.testing.assert_array_equal(video_io.to_uint8(eight.astype(np.uint16) * 257), eight)  # 8 -> 16 -> 8 is exact
