"""The input pipeline: tf.data streams of LR/HR clip pairs for training, whole clips for eval.

`make_dataset(config, split, ...)` yields dicts of NumPy arrays
``{"lr": (B, T, p, p, 3), "hr": (B, T, p·s, p·s, 3)}`` float32 in [0,1] (B = this
process's share of `config.batch_size`, p = `data.patch_size`, s = `data.scale`,
T = `data.num_frames`) from any dataset (`data.name`), through one code path:

1. a `sources` object gives random access to the split's HR windows;
2. global example `k` shows window `perm_e[k mod n]`, where `perm_e` is a fresh seeded
   permutation for epoch `e = k // n` (a full shuffle, not a shuffle buffer);
3. its crop, augmentation and noise come from a generator seeded with (`seed`, `k`);
4. LR is the configured degradation (`data.degradation`: BI / BD / BD-DUF) of the *whole*
   HR frame, rounded to 8 bits as the published LR sets are — cropped from a per-run cache
   of whole-frame LR, or computed from the band of HR pixels the crop needs
   (`degrade.crop_degrade`), which gives the same bytes (see `LRCache`).

So a run that resumes at step N sees exactly the batches an uninterrupted run sees, on any
number of processes, without saving iterator state: process p of P takes the examples
whose index ≡ p (mod P). Batches are built in parallel tf.data map threads
(`data.parallel_calls` of them; 0 = AUTOTUNE), one host call per batch
(`ExampleMaker.batch`), and prefetched; they do not depend on the number of threads.

Where the clips are arrays (the sample clips, video folders), each clip's whole-frame LR is
made once per run (`LRCache`, up to `data.lr_cache_gb`) and an example's LR is a crop of it:
per example, Python then only draws the crop and augmentation under the GIL; the copies
that orient the crops into the batch and its conversion to float release it. Other sources
(Vimeo-90K records, REDS frame files, photos) degrade each example's band as above.
`make_example` is one example in NumPy alone (the reference the tests compare with).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import time
import weakref

import numpy as np

from vsr_jax.data import augment, degrade, sources
from vsr_jax.errors import ConfigError, UserError

log = logging.getLogger(__name__)

DATASETS = ("sample", "video_folder", "vimeo90k", "reds", "cats_vs_dogs")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ClipPair:
    """A whole clip for evaluation: LR (T, h, w, 3) and HR (T, h·s, w·s, 3), both uint8."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def _tf():
    """Imports TensorFlow for tf.data only, with every GPU hidden from it."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    return tf


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0,255]-scale floats -> uint8 with MATLAB's rounding (half away from zero)."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


@functools.cache
def single_threaded_blas() -> bool:
    """Sets NumPy's OpenBLAS to one thread, once per process, unless OPENBLAS_NUM_THREADS is set.

    The pipeline's parallelism is its map threads: an OpenBLAS that also starts a thread per
    core for each small product of `degrade.crop_degrade` oversubscribes the host (measured
    on 2 cores: the degradation 6-13x slower, 2 map calls slower than 1). Each product's
    result is the same (OpenBLAS splits the output, not the sums), so batches are unchanged.
    NumPy products elsewhere in the process then run on one core too. True if it was set.
    """
    import ctypes
    import re

    if os.environ.get("OPENBLAS_NUM_THREADS"):
        return False
    try:
        with open("/proc/self/maps") as f:
            libs = sorted(set(re.findall(r"/\S*openblas\S*\.so\S*", f.read())))
    except OSError:  # not Linux
        return False
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(1)
                return True
    return False


# ------------------------------------------------------------------------ sources


def _path(value: str) -> str | None:
    """A user-given path with ~ expanded, or None when empty."""
    return os.path.abspath(os.path.expanduser(value)) if value else None


def make_source(data, split: str):
    """The `sources` object of `data.name` for `split` ('train' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    t, stride = int(data.num_frames), int(data.window_stride)
    if data.name == "sample":
        from vsr_jax.data import sample

        clips = [sources.Clip(s.name, s.frames) for s in sample.load_split(split)]
        return sources.ArraySource(clips, t, stride)
    if data.name == "video_folder":
        from vsr_jax.data import video_folder

        return video_folder.make_source(data, split)
    if data.name == "reds":
        from vsr_jax.data import reds

        return reds.make_source(data, split)
    if data.name == "vimeo90k":
        from vsr_jax.data import vimeo90k

        records = vimeo90k.load(split, manual_dir=_path(data.manual_dir), data_dir=_path(data.tfds_data_dir))
        return sources.RecordSource(
            records, frames_key="frames", name_key="id", num_frames=t, record_length=7, stride=stride
        )
    if data.name == "cats_vs_dogs":
        from vsr_jax.data import tfds_images

        records = tfds_images.load("cats_vs_dogs", split, data_dir=_path(data.tfds_data_dir))
        if t != 1:
            raise ConfigError("cats_vs_dogs holds single images: set --config.data.num_frames=1")
        return sources.RecordSource(records, frames_key="image", num_frames=1, record_length=1, prefix="image")
    raise ConfigError(f"unknown data.name {data.name!r}; available: {', '.join(DATASETS)}")


def signature(source, data) -> dict:
    """What identifies a training set, recorded in checkpoints: a resumed run whose data
    changed cannot replay the batches an uninterrupted run would have seen."""
    return {"name": data.name, "windows": len(source), "fingerprint": source.fingerprint()}


# ------------------------------------------------------------------------ examples


def make_example(frames: np.ndarray, rng: np.random.Generator, data) -> tuple[np.ndarray, np.ndarray]:
    """One training example from an HR window (T, H, W, 3) uint8 -> (lr, hr) float32 in [0,1].

    lr is (T, p, p, 3), hr (T, p·s, p·s, 3). Frames smaller than the HR patch are
    mirror-padded first (rare: tiny images in photo datasets). The reference of what
    `make_dataset` yields, in NumPy alone and without the LR cache.
    """
    lr, hr, bits = example_u8(frames, rng, data)
    return orient(lr, bits).astype(np.float32) / 255.0, orient(hr, bits).astype(np.float32) / 255.0


AUGMENT_KEYS = ("hflip", "vflip", "transpose", "reverse")  # the order augment.apply applies them in


def orient(clip: np.ndarray, bits) -> np.ndarray:
    """A view of `clip` (T, H, W, C) with the augmentation `bits` (AUGMENT_KEYS) applied, in
    augment.apply's order; copying it out (into a batch) is the one copy."""
    hflip, vflip, transpose, reverse = bits
    if hflip:
        clip = clip[:, :, ::-1]
    if vflip:
        clip = clip[:, ::-1]
    if transpose:
        clip = clip.transpose(0, 2, 1, 3)
    if reverse:
        clip = clip[::-1]
    return clip


def allowed_augmentations(data) -> tuple[bool, ...]:
    """Which AUGMENT_KEYS the config turns on (`data.augment`: the flips and transpose)."""
    return (bool(data.augment),) * 3 + (bool(data.temporal_reverse),)


def _bits(choice: dict, on: tuple[bool, ...]) -> tuple[bool, ...]:
    """`augment.draw`'s choice as 4 bools in AUGMENT_KEYS' order, those not `on` False."""
    return tuple(bool(choice[k]) and o for k, o in zip(AUGMENT_KEYS, on, strict=True))


def example_u8(frames: np.ndarray, rng: np.random.Generator, data) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(lr, hr) uint8 crops of an HR window before augmentation, and the augmentation to apply
    as 4 bools (AUGMENT_KEYS; those the config turns off are False). LR is computed from the
    band of HR the crop needs (`degrade.crop_degrade`)."""
    s, p = int(data.scale), int(data.patch_size)
    need = p * s
    h, w = frames.shape[1], frames.shape[2]
    if h < need or w < need:
        pad = ((0, 0), (0, max(0, need - h)), (0, max(0, need - w)), (0, 0))
        frames = np.pad(frames, pad, mode="symmetric")
    frames = degrade.modcrop(frames, s)
    top, left = augment.crop_origin(rng, frames.shape[1] // s, frames.shape[2] // s, p)
    choice = augment.draw(rng)
    hr = frames[:, top * s : (top + p) * s, left * s : (left + p) * s]
    lr = degrade.crop_degrade(frames, s, data.degradation, top, left, p, p)  # 0–255 scale
    lr = _corrupt(to_uint8(lr), rng, data)
    return lr, hr, _bits(choice, allowed_augmentations(data))


def _corrupt(lr_u8: np.ndarray, rng: np.random.Generator, data) -> np.ndarray:
    """Optional robustness corruptions of uint8 LR frames: Gaussian noise, then JPEG (both off by default)."""
    sigma, quality = float(data.noise_sigma), int(data.jpeg_quality)
    if sigma > 0:
        lr_u8 = to_uint8(lr_u8 + rng.normal(0.0, sigma, lr_u8.shape))
    if quality > 0:
        from PIL import Image

        out = []
        for frame in lr_u8:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
            out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
        lr_u8 = np.stack(out)
    return lr_u8


_LR_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # source -> {(degradation, scale): LRCache}


class LRCache:
    """Every clip's whole-frame LR (`degrade_clip`: the degradation rounded to 8 bits), made
    once per run, so an example's LR is a crop of it instead of a degradation of its own.

    It holds the LR that evaluation and the published LR sets use: the whole frame's
    degradation. The band product of `crop_degrade` gives the same bytes except where the
    exact value is a tie (x.5) that the two products' float64 summation orders round apart:
    rare (tests/test_pipeline_exact.py's batches are unchanged). Made only for
    sources whose clips are arrays (`sources.ArraySource`: the sample clips, video folders)
    and large enough for a patch; `for_source` says None otherwise.
    """

    def __init__(self, hr: list[np.ndarray], lr: list[np.ndarray]):
        self.hr, self.lr = hr, lr  # per clip: HR (modcropped view) and its LR, uint8

    @classmethod
    def for_source(cls, source, data) -> LRCache | None:
        """The cache of `source`'s clips, or None when it cannot or should not be made: clips
        that are not arrays (records, REDS' frame files), frames smaller than an HR patch
        (those are padded per example), or LR frames over `data.lr_cache_gb` in total."""
        budget = float(data.get("lr_cache_gb", 0.0)) * 2**30
        s, need = int(data.scale), int(data.patch_size) * int(data.scale)
        clips = getattr(source, "clip_frames", None)
        if budget <= 0 or clips is None or not all(isinstance(c, np.ndarray) for c in clips):
            return None
        if any(c.shape[1] < need or c.shape[2] < need for c in clips):
            return None
        size = sum(len(c) * (c.shape[1] // s) * (c.shape[2] // s) * 3 for c in clips)
        if size > budget:
            log.info("LR cache: %.2f GiB > data.lr_cache_gb; each example degrades its own crop", size / 2**30)
            return None
        made = _LR_CACHES.setdefault(source, {})  # a rewound run makes its dataset again: not its cache
        key = (str(data.degradation), s)
        if key not in made:
            t0 = time.perf_counter()
            hr = [degrade.modcrop(c, s) for c in clips]
            lr = [degrade_clip(c, s, data.degradation) for c in hr]
            log.info(
                "LR cache: %d frames, %.1f MiB, in %.1f s", sum(map(len, lr)), size / 2**20, time.perf_counter() - t0
            )
            made[key] = cls(hr, lr)
        return made[key]

    def example_u8(self, clip: int, start: int, rng: np.random.Generator, shape: Shape):
        """`example_u8` of the window (clip, start) from the cache: the same draws, crops of the cached LR."""
        s, p = shape.scale, shape.patch
        lr_clip = self.lr[clip]
        top, left = augment.crop_origin(rng, lr_clip.shape[1], lr_clip.shape[2], p)
        choice = augment.draw(rng)
        hr = self.hr[clip][start : start + shape.frames, top * s : (top + p) * s, left * s : (left + p) * s]
        lr = lr_clip[start : start + shape.frames, top : top + p, left : left + p]
        if shape.corrupt:
            lr = _corrupt(lr, rng, shape.data)
        return lr, hr, _bits(choice, shape.on)


@dataclasses.dataclass(frozen=True)
class Shape:
    """The `data` fields an example needs, read once: ConfigDict's attribute access costs
    microseconds, and the host holds the GIL for every one of them."""

    data: object
    scale: int
    patch: int
    frames: int
    corrupt: bool
    on: tuple[bool, ...]  # allowed_augmentations(data)

    @classmethod
    def of(cls, data) -> Shape:
        corrupt = float(data.noise_sigma) > 0 or int(data.jpeg_quality) > 0
        return cls(
            data, int(data.scale), int(data.patch_size), int(data.num_frames), corrupt, allowed_augmentations(data)
        )


class ExampleMaker:
    """Global example index -> (lr, hr): the window via a per-epoch permutation, then `make_example`."""

    def __init__(self, source, data, seed: int, lr_cache: LRCache | None = None):
        self.source, self.data, self.seed = source, data, int(seed)
        self.lr_cache, self.shape = lr_cache, Shape.of(data)
        if lr_cache is not None:  # (clip, first frame) of each window, as Python ints
            self.windows = source.windows.tolist()
        self.n = len(source)
        if not self.n:
            raise UserError(
                f"{data.name} has no {data.num_frames}-frame windows in this split; "
                "lower data.num_frames or add longer clips"
            )

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few epochs' permutations, per instance
    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0x5EED, epoch]).permutation(self.n)

    def window_of(self, index: int) -> int:
        epoch, pos = divmod(int(index), self.n)
        return int(self.permutation(epoch)[pos])

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) float32 of global example `index` (`make_example`)."""
        return make_example(self.source.window(self.window_of(index)), self.rng(index), self.data)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def u8(self, index: int) -> tuple[np.ndarray, np.ndarray, tuple]:
        """(lr, hr, augmentation bits) of global example `index`, from the LR cache if there is one."""
        window = self.window_of(index)
        if self.lr_cache is not None:
            clip, start = self.windows[window]
            return self.lr_cache.example_u8(clip, start, self.rng(index), self.shape)
        return example_u8(self.source.window(window), self.rng(index), self.data)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples `indices`, augmented, as float32 batches (B, T, p, p, 3) and (B, T, p·s, p·s, 3).

        Python holds the GIL per example only for the draws and the views. The copies that
        orient the crops into a batch and the one conversion of the batch (x / 255, as
        `make_example`) release it, few and large: each release and retake is a hand-over
        between the map threads. TF takes the 64-byte-aligned batches without a copy."""
        t, p, s = self.shape.frames, self.shape.patch, self.shape.scale
        lr_out = _aligned_empty((len(indices), t, p, p, 3))
        hr_out = _aligned_empty((len(indices), t, p * s, p * s, 3))
        crops = [self.u8(index) for index in indices]  # the draws, under the GIL
        lr_u8 = np.stack([orient(lr, bits) for lr, _, bits in crops])
        hr_u8 = np.stack([orient(hr, bits) for _, hr, bits in crops])
        np.divide(lr_u8, _255, out=lr_out)
        np.divide(hr_u8, _255, out=hr_out)
        return lr_out, hr_out


_255 = np.float32(255.0)


def _aligned_empty(shape: tuple[int, ...], align: int = 64) -> np.ndarray:
    """An uninitialised float32 array at a 64-byte boundary: tf.numpy_function uses such an
    array as the tensor's memory; any other it copies, holding the GIL."""
    size = int(np.prod(shape)) * 4
    buf = np.empty(size + align, np.uint8)
    offset = -buf.ctypes.data % align
    return buf[offset : offset + size].view(np.float32).reshape(shape)


def make_dataset(
    config, split: str = "train", *, source=None, start_step: int = 0, process_index: int = 0, process_count: int = 1
):
    """tf.data.Dataset of this process's batches of `split`, starting at global step `start_step`.

    Args:
      config: the run config (uses `seed`, `batch_size` (global) and `data.*`).
      split: 'train' or 'test'.
      source: the split's source, if already made (`make_source(config.data, split)`).
      start_step: global step of the first batch (resume).
      process_index, process_count: this host's share of every global batch.
    """
    tf = _tf()
    single_threaded_blas()
    data = config.data
    if config.batch_size % process_count:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by {process_count} processes")
    local_batch = config.batch_size // process_count
    t, p, s = int(data.num_frames), int(data.patch_size), int(data.scale)
    source = source if source is not None else make_source(data, split)
    maker = ExampleMaker(source, data, config.seed, LRCache.for_source(source, data))

    def load(indices):  # one host call per batch
        lr, hr = tf.numpy_function(maker.batch, [indices], [tf.float32, tf.float32], stateful=False)
        return {
            "lr": tf.ensure_shape(lr, (local_batch, t, p, p, 3)),
            "hr": tf.ensure_shape(hr, (local_batch, t, p * s, p * s, 3)),
        }

    first = start_step * config.batch_size + process_index
    ds = tf.data.Dataset.range(first, 2**62, process_count).batch(local_batch, drop_remainder=True)
    calls = int(data.get("parallel_calls", 0)) or tf.data.AUTOTUNE  # a config saved before the field: AUTOTUNE
    ds = ds.map(load, num_parallel_calls=calls, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_train_dataset(config, **kwargs):
    """`make_dataset(config, 'train', **kwargs)`."""
    return make_dataset(config, "train", **kwargs)


# --------------------------------------------------------------------- evaluation


def degrade_clip(hr_u8: np.ndarray, scale: int, kind: str = "bi", chunk: int = 16) -> np.ndarray:
    """Whole-frame LR of uint8 HR frames (T, H, W, 3), H and W multiples of `scale` -> uint8."""
    t, h, w, _ = hr_u8.shape
    out = [
        to_uint8(degrade.crop_degrade(hr_u8[i : i + chunk], scale, kind, 0, 0, h // scale, w // scale))
        for i in range(0, t, chunk)
    ]
    return np.concatenate(out)


def load_clip_pairs(data, split: str, max_clips: int = 0) -> list[ClipPair]:
    """Whole LR/HR clips of `split` for evaluation (HR cropped to a multiple of the scale)."""
    scale = int(data.scale)
    pairs = []
    for clip in make_source(data, split).clips(max_clips):
        hr = np.asarray(degrade.modcrop(clip.frames, scale))
        pairs.append(ClipPair(clip.name, degrade_clip(hr, scale, data.degradation), hr))
    return pairs
