"""REDS (NTIRE 2019 video SR) in BasicSR's folder layout: `data.name = "reds"`, `data.path = ROOT`.

    ROOT/train_sharp/<clip>/<frame>.png        HR, 720×1280; clips 000 … 269, 100 frames each
    ROOT/train_sharp_bicubic/X4/<clip>/...     LR as published (not read: see below)

(BasicSR's `scripts/data_preparation/regroup_reds_dataset.py` moves the official
validation clips `val_sharp/000-029` into `train_sharp/` as 240-269; a tree without them
works with the REDS4 split.)

Split (BasicSR's `basicsr/data/reds_dataset.py`, `val_partition`), by `data.reds_val`:

* ``"REDS4"`` (default): clips 000, 011, 015, 020 are the held-out `test` split (REDS4,
  the test set of EDVR / BasicVSR tables); every other clip trains;
* ``"official"``: clips 240-269 (the official validation set) are `test`; the rest trains.

LR is made from HR by the configured degradation (`data.degradation`), as for every other
dataset: the pipeline cuts the patch and its LR from the same HR window
(`degrade.crop_degrade`), so augmentation, corruptions and resuming work unchanged. With
the default ``bi`` (MATLAB bicubic, rounded to 8 bits) this is how REDS's
`train_sharp_bicubic/X4` was made, so `train_sharp_bicubic` is not needed and not read
(`vsr-eval --dataset=reds4` does read it when present).

Frames stay on disk: a training window reads its `data.num_frames` PNGs (as BasicSR's disk
backend), so memory stays bounded; frames are ordered by natural sort of their names.
Missing or empty folders are one-line errors when the source is made.
"""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np

from vsr_jax import video_io
from vsr_jax.data import sources
from vsr_jax.errors import ConfigError, UserError

log = logging.getLogger(__name__)

HR_DIR = "train_sharp"
REDS4 = ("000", "011", "015", "020")
OFFICIAL_VAL = tuple(f"{i:03d}" for i in range(240, 270))
VAL_PARTITIONS = {"REDS4": REDS4, "official": OFFICIAL_VAL}


class FrameFiles:
    """A clip as a lazy (T, H, W, 3) uint8 array of image files: `len`, `shape`, and slicing
    along time read only the frames asked for; anything else reads the whole clip."""

    def __init__(self, files: list[str]):
        self.files = list(files)
        width, height = video_io.image_size(self.files[0])  # header only
        self.shape = (len(self.files), height, width, 3)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, file: str) -> np.ndarray:
        frame = video_io.to_uint8(video_io.read_image(file))  # as every reader of frames (VideoError: a UserError)
        if frame.shape != self.shape[1:]:
            raise UserError(f"{file} is {frame.shape[1]}×{frame.shape[0]}, not {self.shape[2]}×{self.shape[1]}")
        return frame

    def __getitem__(self, key):
        if isinstance(key, slice):
            return np.stack([self._read(f) for f in self.files[key]])
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        frames = np.stack([self._read(f) for f in self.files])
        return frames if dtype is None else frames.astype(dtype)


def clip_names(root: str) -> list[str]:
    """The clip folders under ROOT/train_sharp, sorted; UserError when there are none."""
    if not root:
        raise ConfigError("data.name=reds needs --config.data.path=ROOT (the folder holding train_sharp/)")
    hr = os.path.join(root, HR_DIR)
    if not os.path.isdir(hr):
        raise UserError(
            f"REDS: no folder {hr}; point --config.data.path at the REDS root (BasicSR's layout: "
            "ROOT/train_sharp/000/00000000.png …)"
        )
    names = sorted(n for n in os.listdir(hr) if os.path.isdir(os.path.join(hr, n)) and not n.startswith("."))
    if not names:
        raise UserError(f"REDS: {hr} holds no clip folders (000 … 269)")
    return names


def split_names(names: list[str], split: str, partition: str) -> list[str]:
    """The clips of `split` ('train' or 'test') under the validation `partition`."""
    if partition not in VAL_PARTITIONS:
        raise ConfigError(f"data.reds_val={partition!r}; use one of {', '.join(VAL_PARTITIONS)}")
    held = set(VAL_PARTITIONS[partition])
    return [n for n in names if (n in held) == (split == "test")]


class RedsSource(sources.ArraySource):
    """`ArraySource` over lazily read clips; its fingerprint also names the frame files."""

    def fingerprint(self) -> str:
        h = hashlib.sha1(super().fingerprint().encode())
        for clip in self._clips:
            h.update("|".join(os.path.basename(f) for f in clip.frames.files).encode())
        return h.hexdigest()[:16]


def make_source(data, split: str) -> RedsSource:
    """The `split` of the REDS tree `data.path` (see the module docstring)."""
    root = os.path.abspath(os.path.expanduser(data.path)) if data.path else ""
    partition = str(data.reds_val)
    names = split_names(clip_names(root), split, partition)
    if not names:
        want = ", ".join(VAL_PARTITIONS[partition][:4]) + ("…" if partition == "official" else "")
        raise UserError(
            f"REDS: no {split} clips under {os.path.join(root, HR_DIR)} with data.reds_val={partition} "
            f"(held out: {want}); is the tree complete?"
        )
    t = int(data.num_frames)
    clips = []
    for name in names:
        files = video_io.image_files(os.path.join(root, HR_DIR, name))
        if not files:
            raise UserError(f"REDS: clip folder {os.path.join(root, HR_DIR, name)} holds no frames")
        if len(files) < t:
            log.warning("REDS clip %s has %d frames, fewer than %d; skipped", name, len(files), t)
            continue
        clips.append(sources.Clip(name, FrameFiles(files)))
    if not clips:
        raise UserError(f"REDS: no {split} clip has {t} frames; lower data.num_frames")
    return RedsSource(clips, t, int(data.window_stride))
