"""Video decoding with PyAV (FFmpeg bundled in the wheel); no TensorFlow here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import numpy as np

from vsr_jax.errors import UserError


class VideoError(UserError, ValueError):
    """A video file that is missing, unreadable or has no video stream."""


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m", ".wmv", ".flv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yields the RGB frames (H, W, 3) uint8 of a video file one at a time (bounded memory).

    Raises VideoError with the path and what to do when the file is missing, is not a
    video, or decodes to no frames.
    """
    import av  # imported lazily: PyAV is only needed when a video is read

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video file not found: {path}")
    count = 0
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode {path} ({e}); is it a valid video file?") from e
    if not count:
        raise VideoError(f"{path} decoded to no frames; is it a valid video file?")


def iter_image_folder(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yields the images of a folder of frames in natural order (frame2 before frame10), RGB uint8."""
    from PIL import Image

    names = sorted(
        (n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS)),
        key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)],
    )
    if not names:
        raise VideoError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    for name in names:
        file = os.path.join(path, name)
        try:
            with Image.open(file) as im:
                yield np.asarray(im.convert("RGB"))
        except OSError as e:
            raise VideoError(f"cannot read frame {file} ({e}); replace or remove it") from e


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Decodes a whole video file to RGB frames, (T, H, W, 3) uint8 (see `iter_frames`)."""
    return np.stack(list(iter_frames(path, max_frames)))
