"""Video decoding with PyAV (FFmpeg bundled in the wheel); no TensorFlow here."""

from __future__ import annotations

import os

import numpy as np

from vsr_jax.errors import UserError


class VideoError(UserError, ValueError):
    """A video file that is missing, unreadable or has no video stream."""


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Decodes a video file to RGB frames, (T, H, W, 3) uint8.

    Raises VideoError with the path and what to do when the file is missing, is not a
    video, or decodes to no frames.
    """
    import av  # imported lazily: PyAV is only needed when a video is read

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video file not found: {path}")
    frames = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode {path} ({e}); is it a valid video file?") from e
    if not frames:
        raise VideoError(f"{path} decoded to no frames; is it a valid video file?")
    return np.stack(frames)
