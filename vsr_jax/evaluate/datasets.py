"""Test sets for `vsr-eval`: the run's own held-out split, Vimeo-90K test, and the standard
VSR test sets in the folder layouts people have on disk (BasicSR's).

Every loader returns `pipeline.ClipPair`s: uint8 LR (T, h, w, 3) and HR (T, h·s, w·s, 3),
HR cropped to a multiple of the scale. LR frames are read from the dataset's LR folder
when it has one for the requested degradation, else made from HR by our degradations
(`bi`: MATLAB bicubic, `bd`: Gaussian blur σ = 1.6 + subsampling, as BasicSR).

Folder layouts (ROOT = `--data_dir`); LR folders are used when present:

- `vid4`: HR `ROOT/GT/<clip>/`, LR `ROOT/BIx4/<clip>/` or `ROOT/BDx4/<clip>/`;
  clips calendar, city, foliage, walk.
- `reds4`: HR `ROOT/GT/<clip>/` or `ROOT/train_sharp/<clip>/`, LR `ROOT/BIx4/`,
  `ROOT/train_sharp_bicubic/X4/` or `ROOT/sharp_bicubic/` (BasicSR's REDS4 test layout, ×4);
  clips 000, 011, 015, 020.
- `udm10`: HR `ROOT/GT/<clip>/`, LR `ROOT/BDx4/` or `ROOT/BIx4/`; every clip folder.
- `folder`: HR `ROOT/<clip>/` (folders of frames or video files), or ROOT itself as one
  clip; LR from `--lr_dir` with the same clip names, else degraded.
- `reds`: a run's held-out split of a REDS tree (`vsr_jax.data.reds`: REDS4 by default),
  LR degraded from HR.

`PROTOCOLS`: how published tables score each test set (the defaults of `vsr-eval
--weights/--model`): the headline channel, the border cut and the LR degradation.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from vsr_jax import video_io
from vsr_jax.data import degrade, pipeline
from vsr_jax.errors import UserError

STANDARD_CLIPS = {
    "vid4": ("calendar", "city", "foliage", "walk"),
    "reds4": ("000", "011", "015", "020"),
    "udm10": None,  # every clip folder under GT
}
HR_DIRS = {"vid4": ("GT",), "reds4": ("GT", "train_sharp"), "udm10": ("GT",)}
NAMED = tuple(STANDARD_CLIPS)
DATASETS = ("sample", "vimeo90k", "video_folder", "reds", *NAMED, "folder")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How a test set is scored in the published tables (BasicVSR's, through BasicSR/MMagic)."""

    channel: str  # the headline PSNR/SSIM: "y" (BT.601 luma) or "rgb" (both are always computed)
    crop_border: int  # pixels cut from each edge; -1: the scale
    degradation: str = ""  # LR: "bi" / "bd"; "": the model's (a BD-trained file: bd, else bi)
    center_frame: bool = False  # score only each clip's middle frame
    flip_seq: bool = False  # video models: the clip then its reverse in one call, the two outputs averaged
    source: str = ""

    def crop(self, scale: int) -> int:
        return int(scale) if self.crop_border < 0 else self.crop_border


_REDS = Protocol(
    "rgb",
    0,
    "bi",
    source="BasicSR options/test/BasicVSR/test_BasicVSR_REDS.yml:35-43 (REDS4: crop_border 0, test_y_channel false)",
)
PROTOCOLS = {
    "vid4": Protocol(
        "y",
        0,
        source="BasicSR options/train/BasicVSR/train_BasicVSR_Vimeo90K_BIx4.yml:34,90-93 "
        "(Vid4: crop_border 0, test_y_channel true)",
    ),
    "reds4": _REDS,
    "reds": _REDS,
    "udm10": Protocol(
        "y",
        0,
        "bd",
        source="MMagic configs/basicvsr/README.md (UDM10 BDx4, Y channel; BasicSR has no UDM10 options)",
    ),
    "vimeo90k": Protocol(
        "y",
        0,
        center_frame=True,
        flip_seq=True,
        source="BasicSR options/test/BasicVSR/test_BasicVSR_Vimeo90K_BIx4.yml:35-47 "
        "(flip_seq, center_frame_only, crop_border 0, test_y_channel true)",
    ),
}
DEFAULT_PROTOCOL = Protocol("y", -1, source="vsr_jax's default (no published protocol for this test set)")


def protocol(dataset: str) -> Protocol:
    """The published protocol of `dataset` (`DEFAULT_PROTOCOL` for sample, video_folder, folder)."""
    return PROTOCOLS.get(dataset, DEFAULT_PROTOCOL)


def trained_degradation(filename: str, task: str = "") -> str:
    """ "bd" for a file trained on blur-downsampled LR (a registry task "BD", or BD / BDx4 in
    its name, as BasicVSR_Vimeo90K_BDx4-e9bf46eb.pth), else "bi"."""
    if task.upper() == "BD" or re.search(r"(?i)(^|[^a-z])bd(x\d)?([^a-z]|$)", os.path.basename(filename)):
        return "bd"
    return "bi"


class DatasetError(UserError, ValueError):
    """A test set that is missing or not in the expected layout."""


def _lr_dirs(root: str, kind: str, scale: int) -> list[str]:
    tag = f"{kind.upper()}x{scale}"
    dirs = [os.path.join(root, tag)]
    if kind == "bi":
        dirs.append(os.path.join(root, "train_sharp_bicubic", f"X{scale}"))  # REDS
        if scale == 4:  # BasicSR's REDS4 test folder (options/test/BasicVSR/test_BasicVSR_REDS.yml)
            dirs.append(os.path.join(root, "sharp_bicubic"))
    return dirs


def read_clip(path: str) -> np.ndarray:
    """Frames of a folder of images or of a video file: (T, H, W, 3) uint8, as training and
    the upscaler read them (`video_io.read_frames`)."""
    return video_io.read_frames(path)


def clip_names(root: str) -> list[str]:
    """The clip folders under `root` (sorted), else its video files; [] for a folder of frames."""
    entries = sorted(os.listdir(root))
    subdirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    if subdirs:
        return subdirs
    videos = [e for e in entries if e.lower().endswith(video_io.VIDEO_EXTENSIONS)]
    return videos


def _pair(name: str, hr: np.ndarray, lr: np.ndarray | None, scale: int, kind: str) -> pipeline.ClipPair:
    hr = np.asarray(degrade.modcrop(hr, scale))
    if lr is None:
        lr = pipeline.degrade_clip(hr, scale, kind)
    elif lr.shape[1] * scale != hr.shape[1] or lr.shape[2] * scale != hr.shape[2] or len(lr) != len(hr):
        raise DatasetError(
            f"clip {name}: LR {lr.shape} does not match HR {hr.shape} at ×{scale}; "
            "check the LR folder's scale and frame count"
        )
    return pipeline.ClipPair(name, lr, hr)


def folder_pairs(
    gt_root: str, *, scale: int, degradation: str, lr_root: str | None = None, clips=None, max_clips: int = 0
) -> list[pipeline.ClipPair]:
    """ClipPairs of the clip folders (or video files) under `gt_root` (or `gt_root` as one clip)."""
    if not os.path.isdir(gt_root):
        raise DatasetError(f"test set folder {gt_root} does not exist")
    names = clip_names(gt_root)
    single = not names
    if single:  # a folder of frames: one clip
        names = [os.path.basename(os.path.normpath(gt_root))]
    if clips is not None:
        missing = [c for c in clips if c not in names]
        if missing:
            raise DatasetError(f"{gt_root} lacks the clip(s) {missing}; expected {list(clips)} (see vsr-eval --help)")
        names = list(clips)
    if max_clips:
        names = names[:max_clips]
    pairs = []
    for name in names:
        hr = read_clip(gt_root if single else os.path.join(gt_root, name))
        lr = None
        if lr_root is not None:
            lr_path = lr_root if single else os.path.join(lr_root, name)
            if not os.path.exists(lr_path):
                raise DatasetError(f"no LR clip {lr_path} for HR clip {name}")
            lr = read_clip(lr_path)
        pairs.append(_pair(os.path.splitext(name)[0], hr, lr, scale, degradation))
    return pairs


def named_pairs(dataset: str, root: str, *, scale: int, degradation: str, max_clips: int = 0):
    """Vid4 / REDS4 / UDM10 in BasicSR's layout under `root` (see the module docstring)."""
    root = os.path.abspath(os.path.expanduser(root))
    gt = next((os.path.join(root, d) for d in HR_DIRS[dataset] if os.path.isdir(os.path.join(root, d))), None)
    if gt is None:
        expected = " or ".join(os.path.join(root, d) for d in HR_DIRS[dataset])
        raise DatasetError(f"{dataset}: no HR folder {expected}; point --data_dir at the dataset's root")
    lr = next((d for d in _lr_dirs(root, degradation, scale) if os.path.isdir(d)), None)
    return folder_pairs(
        gt, scale=scale, degradation=degradation, lr_root=lr, clips=STANDARD_CLIPS[dataset], max_clips=max_clips
    )
