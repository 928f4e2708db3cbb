"""Input limits: frames over `video_io.MAX_FRAME_PIXELS` and decompression-bomb images are
refused from the header (one line, before any pixels are decoded), in every reader and
through `vsr-upscale`."""

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import ImageFile

from tests import upscale_helpers as uh
from tests.test_upscale_cli import error_lines, upscale
from vsr_jax import video_io


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path, width: int, height: int) -> None:
    """A valid 1-bit gray PNG of width × height zeros: tens of KB on disk for any size, as
    the rows are deflated a block at a time (never all 50 MB of 20000 × 20000 at once)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    parts = [z.compress(row * 500) for _ in range(height // 500)] + [z.compress(row * (height % 500)), z.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decode by PIL or OpenCV fails the test."""
    import cv2

    def fail(*a, **k):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    monkeypatch.setattr(cv2, "imread", fail)


def test_the_limit_is_8192_squared():
    assert video_io.MAX_FRAME_PIXELS == 8192 * 8192 == 67_108_864


# 9000² is over our limit only, 10000² also over PIL's warning limit (89 M), 20000² over its error limit (179 M)
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("side", [9000, 10000, 20000])
def test_bomb_image_is_refused_from_its_header(tmp_path, no_decoding, side):
    folder = tmp_path / "frames"
    folder.mkdir()
    bomb = folder / "f1.png"
    bomb_png(bomb, side, side)
    assert bomb.stat().st_size < 100_000
    readers = {
        "image_size": lambda: video_io.image_size(str(bomb)),
        "read_image": lambda: video_io.read_image(str(bomb)),
        "iter_frames": lambda: list(video_io.iter_frames(folder)),
        "probe": lambda: video_io.probe(folder),
    }
    for name, read in readers.items():
        with pytest.raises(video_io.VideoError) as e:
            read()
        message = str(e.value)
        assert "\n" not in message and str(bomb) in message and "67,108,864 pixels (8192×8192)" in message, name
        if side < 20000:  # PIL's own refusal does not say the size
            assert f"{side}×{side} = {side * side:,} pixels" in message, (name, message)


def test_a_frame_at_the_limit_passes_the_header_check(tmp_path, no_decoding):
    bomb_png(tmp_path / "f.png", 8192, 8192)
    assert video_io.image_size(str(tmp_path / "f.png")) == (8192, 8192)
    bomb_png(tmp_path / "g.png", 8193, 8192)
    with pytest.raises(video_io.VideoError, match="8193×8192"):
        video_io.image_size(str(tmp_path / "g.png"))


def test_video_over_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    uh.write_video(path, uh.moving_frames(3, 16, 20))
    info = video_io.probe(path)
    monkeypatch.setattr(video_io, "MAX_FRAME_PIXELS", 16 * 20)  # at the limit: fine
    assert len(list(video_io.decode(info))) == 3 and len(list(video_io.iter_frames(path))) == 3
    monkeypatch.setattr(video_io, "MAX_FRAME_PIXELS", 16 * 20 - 1)
    readers = [
        lambda: video_io.probe(path),
        lambda: list(video_io.iter_frames(path)),
        lambda: next(video_io.decode(info)),
    ]
    for read in readers:
        with pytest.raises(video_io.VideoError) as e:
            read()
        message = str(e.value)
        assert "\n" not in message and f"{path} has frames of 20×16 = 320 pixels, over the limit of 319" in message


def test_ffmpeg_refuses_frames_over_the_limit_that_the_header_did_not_show(tmp_path, monkeypatch):
    """A frame size met only mid-stream (the header check cannot see it): FFmpeg's max_pixels stops it."""
    path = tmp_path / "clip.mp4"
    uh.write_video(path, uh.moving_frames(3, 16, 20))
    monkeypatch.setattr(video_io, "check_frame_size", lambda *a: None)
    monkeypatch.setattr(video_io, "_ffmpeg_max_pixels", lambda w, h: 319)
    with pytest.raises(video_io.VideoError, match=str(path)):
        list(video_io.iter_frames(path))
    monkeypatch.setattr(video_io, "_ffmpeg_max_pixels", lambda w, h: 100_000)
    assert np.stack(list(video_io.iter_frames(path))).shape == (3, 16, 20, 3)


def test_vsr_upscale_refuses_a_bomb_frame_folder(tmp_path):
    uh.write_checkpoint(tmp_path / "srcnn", "srcnn")
    frames = tmp_path / "frames"
    frames.mkdir()
    bomb_png(frames / "f1.png", 20000, 20000)
    proc = upscale(frames, "-o", tmp_path / "out", f"--workdir={tmp_path / 'srcnn'}")
    lines = error_lines(proc)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("vsr-upscale: error: frame "), proc.stderr[-2000:]
    assert "decompression bomb" in lines[0] and "f1.png" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["frames", "srcnn"]  # no output, no work folder
