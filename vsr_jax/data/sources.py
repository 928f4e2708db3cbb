"""Clip sources: random access to the HR training windows and whole clips of one split.

Every dataset (`sample`, `video_folder`, `vimeo90k`, `cats_vs_dogs`) becomes a source
with the same three operations, so the pipeline never needs to know where frames live:

* ``len(source)`` — the number of training windows of ``num_frames`` frames;
* ``source.window(i)`` — window ``i`` as uint8 HR frames (T, H, W, 3);
* ``source.clips(max_clips)`` — whole clips `Clip(name, frames)` for evaluation.

Windows never cross a clip (or shot) boundary. Frames may be NumPy memmaps, so memory
stays bounded whatever the size of the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

from vsr_jax.data import scenes


@dataclasses.dataclass(frozen=True)
class Clip:
    """A named clip of HR frames (T, H, W, 3) uint8 (an array or a read-only memmap)."""

    name: str
    frames: np.ndarray


class ArraySource:
    """Windows cut from clips held as arrays (in memory or memory-mapped)."""

    def __init__(self, clips: Sequence[Clip], num_frames: int, stride: int = 1):
        self._clips = list(clips)
        table = [
            (c, start)
            for c, clip in enumerate(self._clips)
            for start in scenes.window_starts(len(clip.frames), num_frames, stride)
        ]
        self.windows = np.asarray(table, np.int64).reshape(-1, 2)  # (n, 2): clip index, first frame
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.windows)

    def window(self, i: int) -> np.ndarray:
        c, start = self.windows[i]
        return np.asarray(self._clips[c].frames[start : start + self.num_frames])

    def clips(self, max_clips: int = 0) -> Iterator[Clip]:
        yield from self._clips[: max_clips or None]

    @property
    def clip_frames(self) -> list[np.ndarray]:
        """Each clip's frames, in the order of `windows`' clip index."""
        return [clip.frames for clip in self._clips]

    def fingerprint(self) -> str:
        """A digest of the clips' names and shapes and the windows cut from them."""
        h = hashlib.sha1()
        for clip in self._clips:
            h.update(f"{clip.name}:{tuple(clip.frames.shape)};".encode())
        h.update(self.windows.tobytes())
        return h.hexdigest()[:16]


class RecordSource:
    """Windows from a random-access sequence of records (a TFDS data source).

    Each record holds a clip under `frames_key` — (T, H, W, 3), or one image (H, W, 3)
    that becomes a one-frame clip — and its name under `name_key` (else its index).
    `record_length` is the number of frames every record has (7 for Vimeo-90K, 1 for
    images), so windows are (record, offset) without reading any record.
    """

    def __init__(
        self,
        records,
        *,
        frames_key: str,
        num_frames: int,
        record_length: int,
        stride: int = 1,
        name_key: str | None = None,
        prefix: str = "",
    ):
        offsets = scenes.window_starts(record_length, num_frames, stride)
        if not offsets:
            raise ValueError(f"records have {record_length} frames; cannot cut windows of {num_frames}")
        self._records, self._offsets = records, np.asarray(offsets, np.int64)
        self._key, self._name_key, self._prefix = frames_key, name_key, prefix
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self._records) * len(self._offsets)

    def _frames(self, r: int) -> np.ndarray:
        frames = np.asarray(self._records[int(r)][self._key])
        return frames[None] if frames.ndim == 3 else frames

    def window(self, i: int) -> np.ndarray:
        r, k = divmod(int(i), len(self._offsets))
        start = int(self._offsets[k])
        if hasattr(self._records, "frames"):  # records that decode only the frames asked for
            return self._records.frames(r, start, start + self.num_frames)
        return self._frames(r)[start : start + self.num_frames]

    def fingerprint(self) -> str:
        """A digest of the record count and the windows cut from each record."""
        text = f"{len(self._records)}x{self._key}:{self._offsets.tolist()}:{self.num_frames}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def clips(self, max_clips: int = 0) -> Iterator[Clip]:
        count = len(self._records) if not max_clips else min(max_clips, len(self._records))
        for r in range(count):
            record = self._records[r]
            name = record[self._name_key] if self._name_key else str(r)
            if isinstance(name, bytes):
                name = name.decode()
            frames = np.asarray(record[self._key])
            yield Clip(f"{self._prefix}{name}", frames[None] if frames.ndim == 3 else frames)
