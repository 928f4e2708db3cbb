"""Your own footage as a dataset: `data.name = "video_folder"`, `data.path = DIR`.

DIR holds video files (mp4, mkv, mov, webm, avi, … — anything FFmpeg decodes through
PyAV) and/or sub-folders of frames (png/jpg/…, natural order), searched recursively.
Frames are read as every other reader reads them (`video_io.iter_frames`: the upscaler's
decoder, >8-bit sources rounded to uint8). Each input is decoded once into an uncompressed
frame cache (``data.cache_dir``, default ``~/.cache/vsr_jax/frames``; keyed by path, size,
modification time and `CACHE_VERSION`) that training memory-maps, so memory stays bounded
however much footage there is. Before an input is decoded, its cache size (frames × H × W
× 3 bytes) is compared with the free space of the cache folder; if it does not fit, a
one-line UserError says how much is needed and free. Frames over
`video_io.MAX_FRAME_PIXELS` (8192 × 8192) are refused before decoding.

* Scene cuts are found with a frame-difference threshold (`data.cut_threshold`, mean
  absolute difference on the 0–255 scale); training windows of `data.num_frames` frames
  never cross a cut. Shots shorter than a window are skipped with a warning.
* Split by file, deterministic and stable when files are added: a file is held out
  (`test`) when a hash of its relative path falls below `data.val_percent` %; with two or
  more files at least one is held out. A single file is split in time instead: its last
  `val_percent` % of frames (at least one window) are held out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil

import numpy as np

from vsr_jax import fileio, video_io
from vsr_jax.data import scenes, sources
from vsr_jax.errors import UserError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Input:
    """One video file or frame folder under the dataset root."""

    name: str  # path relative to the root, '/'-separated
    path: str
    is_folder: bool


def list_inputs(root: str) -> list[Input]:
    """Videos and frame folders under `root`, sorted by relative path."""
    if not os.path.isdir(root):
        raise UserError(f"data.path {root!r} is not a directory; point --config.data.path at a folder of videos")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        images = [f for f in filenames if f.lower().endswith(video_io.IMAGE_EXTENSIONS)]
        if images and rel != ".":
            found.append(Input(rel.replace(os.sep, "/"), dirpath, True))
        for f in sorted(filenames):
            if f.lower().endswith(video_io.VIDEO_EXTENSIONS) and not f.startswith("."):
                name = os.path.normpath(os.path.join(rel, f)).replace(os.sep, "/")
                found.append(Input(name, os.path.join(dirpath, f), False))
    if not found:
        raise UserError(
            f"no videos ({', '.join(video_io.VIDEO_EXTENSIONS)}) or frame folders found under {root}; "
            "check --config.data.path"
        )
    return sorted(found, key=lambda i: i.name)


def _hash_percent(name: str) -> float:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 2**32 * 100


def held_out_names(names: list[str], val_percent: float) -> set[str]:
    """The file names of the `test` split (see the module docstring)."""
    if len(names) < 2 or val_percent <= 0:
        return set()
    held = {n for n in names if _hash_percent(n) < val_percent}
    if not held:
        held = {min(names, key=_hash_percent)}
    if len(held) == len(names):
        held.discard(max(names, key=_hash_percent))
    return held


def _cache_root(data) -> str:
    if data.cache_dir:
        return os.path.abspath(os.path.expanduser(data.cache_dir))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vsr_jax", "frames")


# Part of every cache key: bumped whenever the same file decodes to other pixels, so that an
# old cache is never reused. 2: frames from `video_io.decode`, >8-bit videos and 16-bit
# images rounded from 16 bits (1 took swscale's rgb24 of a 10-bit frame, PIL's of a 16-bit PNG).
CACHE_VERSION = 2


def _fingerprint(item: Input) -> str:
    if item.is_folder:
        stats = sorted((f, os.stat(os.path.join(item.path, f)).st_mtime_ns) for f in os.listdir(item.path))
        key = json.dumps([CACHE_VERSION, os.path.abspath(item.path), stats])
    else:
        st = os.stat(item.path)
        key = json.dumps([CACHE_VERSION, os.path.abspath(item.path), st.st_size, st.st_mtime_ns])
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_free_space(item: Input, cache_root: str) -> video_io.VideoInfo:
    """`item` probed (`video_io.probe`: the header and a demux, no decoding); raises UserError
    if the cache folder's disk has less free than its frames take there (frames × H × W × 3)."""
    info = video_io.probe(item.path, allow_truncated=True)  # also refuses frames over the size limit
    need = info.frames * info.width * info.height * 3
    free = shutil.disk_usage(cache_root).free
    if need > free:
        raise UserError(
            f"decoding {item.path} into the frame cache needs ~{_size(need)} in {cache_root}, {_size(free)} free; "
            "free space there or point --config.data.cache_dir at a bigger disk"
        )
    return info


def decode_cached(item: Input, cache_root: str, cut_threshold: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(frames memmap (T, H, W, 3) uint8, shots [(start, end)]) of one input, decoding it once."""
    os.makedirs(cache_root, exist_ok=True)
    key = os.path.join(cache_root, _fingerprint(item))
    meta_path = key + ".json"
    if not os.path.exists(meta_path):
        info = check_free_space(item, cache_root)
        diffs, count, prev = [], 0, None
        with fileio.atomic_write(key + ".u8", "wb") as f:
            for frame in video_io.iter_frames(info):  # every frame the size of the first (decode checks)
                current = frame.astype(np.float32)
                if prev is not None:  # as scenes.frame_differences, one frame at a time
                    diffs.append(float(np.mean(np.abs(current - prev))))
                prev = current
                f.write(np.ascontiguousarray(frame).tobytes())
                count += 1
        shape = [count, info.height, info.width, 3]
        fileio.write_json(meta_path, {"source": item.path, "shape": shape, "diffs": diffs})
    with open(meta_path) as f:
        meta = json.load(f)
    frames = np.memmap(key + ".u8", np.uint8, mode="r", shape=tuple(meta["shape"]))
    return frames, scenes.shots_from_differences(meta["diffs"], len(frames), cut_threshold)


def make_source(data, split: str) -> sources.ArraySource:
    """The `split` ('train' or 'test') of the video folder `data.path` as an `ArraySource`."""
    root = os.path.abspath(os.path.expanduser(data.path))
    inputs = list_inputs(root)
    t = int(data.num_frames)
    held = held_out_names([i.name for i in inputs], float(data.val_percent))
    clips = []
    for item in inputs:
        in_test = item.name in held
        if len(inputs) > 1 and in_test != (split == "test"):
            continue
        frames, shots = decode_cached(item, _cache_root(data), float(data.cut_threshold))
        if len(inputs) == 1:  # one file: hold out its end
            n = len(frames)
            cut = n - max(t, int(round(n * float(data.val_percent) / 100)))
            keep = (0, max(cut, 0)) if split == "train" else (max(cut, 0), n)
            shots = [(max(a, keep[0]), min(b, keep[1])) for a, b in shots if min(b, keep[1]) > max(a, keep[0])]
        for k, (a, b) in enumerate(shots):
            if b - a < t:
                log.warning("%s: shot %d (frames %d-%d) is shorter than %d frames; skipped", item.name, k, a, b - 1, t)
                continue
            clips.append(sources.Clip(f"{item.name}/shot{k}", frames[a:b]))
    if not clips:
        raise UserError(
            f"no {t}-frame clips for split {split!r} under {root} (files: {len(inputs)}); "
            "add longer videos or lower data.num_frames"
        )
    return sources.ArraySource(clips, t, int(data.window_stride))
