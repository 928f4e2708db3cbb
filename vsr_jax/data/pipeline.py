"""The input pipeline: tf.data streams of LR/HR clip pairs for training, full clips for eval.

Training batches are dicts of NumPy arrays
``{"lr": (B, T, p, p, 3), "hr": (B, T, p·s, p·s, 3)}`` float32 in [0,1] (B = the
per-process batch, p = ``data.patch_size``, s = ``data.scale``, T = ``data.num_frames``).

Every training example is a pure function of (``seed``, its global index): the index
picks a window through a per-epoch stateless permutation, and crop and flips use stateless
random ops seeded by the index. So a run that resumes at step N sees exactly the batches a
run that never stopped would see, whatever the number of processes, without saving any
iterator state; process p of P takes the examples whose index ≡ p (mod P).

LR frames are made once per clip from whole HR frames with MATLAB bicubic (BI) and
rounded to uint8, as the published LR sets were made, then cropped together with HR.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vsr_jax.data import degrade, sample, scenes

DATASETS = ("sample",)


@dataclasses.dataclass(frozen=True)
class ClipPair:
    """A whole clip: LR (T, h, w, 3) and HR (T, h·s, w·s, 3), both uint8."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def _tf():
    """Imports TensorFlow for tf.data only, with every GPU hidden from it."""
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    return tf


def make_lr(hr: np.ndarray, scale: int, batch: int = 16) -> np.ndarray:
    """BI degradation of uint8 HR frames (T, H, W, 3) -> uint8 LR (T, H/s, W/s, 3)."""
    import jax

    out = []
    with jax.default_device(jax.devices("cpu")[0]):
        for i in range(0, len(hr), batch):
            x = np.asarray(hr[i : i + batch], np.float32) / 255.0
            lr = np.asarray(degrade.bicubic_downsample(x, scale))
            out.append(np.floor(np.clip(lr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return np.concatenate(out)


def load_clip_pairs(data_config, split: str) -> list[ClipPair]:
    """Whole LR/HR clips of a split (shots of the sample videos), HR cropped to a multiple of s."""
    if data_config.name != "sample":
        raise ValueError(f"unknown data.name {data_config.name!r}; available: {', '.join(DATASETS)}")
    scale = int(data_config.scale)
    pairs = []
    for shot in sample.load_split(split):
        hr = np.asarray(degrade.modcrop(shot.frames, scale))
        pairs.append(ClipPair(shot.name, make_lr(hr, scale), hr))
    return pairs


@dataclasses.dataclass
class _PackedClips:
    """All frames of many clips in two padded arrays, plus a table of training windows."""

    lr: np.ndarray  # (F, h_max, w_max, 3) uint8
    hr: np.ndarray  # (F, H_max, W_max, 3) uint8
    window_start: np.ndarray  # (n,) first frame (row of lr/hr) of each window
    window_size: np.ndarray  # (n, 2) LR (h, w) of the clip the window lies in


def _pack(pairs: list[ClipPair], num_frames: int, stride: int, patch: int) -> _PackedClips:
    h_max = max(p.lr.shape[1] for p in pairs)
    w_max = max(p.lr.shape[2] for p in pairs)
    s = pairs[0].hr.shape[1] // pairs[0].lr.shape[1]
    total = sum(len(p.lr) for p in pairs)
    lr = np.zeros((total, h_max, w_max, 3), np.uint8)
    hr = np.zeros((total, h_max * s, w_max * s, 3), np.uint8)
    starts, sizes, row = [], [], 0
    for p in pairs:
        t, h, w, _ = p.lr.shape
        lr[row : row + t, :h, :w] = p.lr
        hr[row : row + t, : h * s, : w * s] = p.hr
        if h >= patch and w >= patch:
            for a in scenes.window_starts(t, num_frames, stride):
                starts.append(row + a)
                sizes.append((h, w))
        row += t
    if not starts:
        raise ValueError(f"no {num_frames}-frame window with {patch}x{patch} LR patches in the data")
    return _PackedClips(lr, hr, np.asarray(starts, np.int64), np.asarray(sizes, np.int32))


def count_windows(pairs: list[ClipPair], num_frames: int, stride: int) -> int:
    return sum(len(scenes.window_starts(len(p.lr), num_frames, stride)) for p in pairs)


def window_of(index, num_windows: int, seed):
    """The window that global example `index` shows: each epoch is a fresh permutation (TF op)."""
    tf = _tf()
    index = tf.cast(index, tf.int64)
    epoch, pos = index // num_windows, index % num_windows
    return tf.random.experimental.index_shuffle(pos, tf.stack([tf.cast(seed, tf.int64), epoch]), num_windows - 1)


def make_train_dataset(config, *, start_step: int = 0, process_index: int = 0, process_count: int = 1):
    """tf.data.Dataset of this process's training batches, starting at `start_step`.

    Args:
      config: the run config (uses `seed`, `batch_size` (global), and `data.*`).
      start_step: global step of the first batch (resume).
      process_index, process_count: this host's share of every global batch.
    """
    tf = _tf()
    data = config.data
    if config.batch_size % process_count:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by {process_count} processes")
    local_batch = config.batch_size // process_count
    scale, patch, num_frames = int(data.scale), int(data.patch_size), int(data.num_frames)
    packed = _pack(load_clip_pairs(data, "train"), num_frames, int(data.window_stride), patch)
    lr_all = tf.constant(packed.lr)
    hr_all = tf.constant(packed.hr)
    starts = tf.constant(packed.window_start)
    sizes = tf.constant(packed.window_size)
    n = len(packed.window_start)
    seed = tf.constant(int(config.seed), tf.int64)
    augment = bool(data.augment)

    def example(index):
        w = window_of(index, n, seed)
        keys = tf.random.experimental.stateless_split(tf.stack([seed, index]), 5)
        h, wd = sizes[w][0], sizes[w][1]
        y0 = tf.random.stateless_uniform([], keys[0], 0, h - patch + 1, tf.int32)
        x0 = tf.random.stateless_uniform([], keys[1], 0, wd - patch + 1, tf.int32)
        f0 = tf.cast(starts[w], tf.int32)
        lr = lr_all[f0 : f0 + num_frames, y0 : y0 + patch, x0 : x0 + patch]
        hr = hr_all[f0 : f0 + num_frames, y0 * scale : (y0 + patch) * scale, x0 * scale : (x0 + patch) * scale]
        if augment:
            for axis, key in ((2, keys[2]), (1, keys[3])):  # horizontal, vertical flip
                flip = tf.random.stateless_uniform([], key) < 0.5
                lr = tf.cond(flip, lambda a=lr, ax=axis: tf.reverse(a, [ax]), lambda a=lr: a)
                hr = tf.cond(flip, lambda a=hr, ax=axis: tf.reverse(a, [ax]), lambda a=hr: a)
            swap = tf.random.stateless_uniform([], keys[4]) < 0.5  # transpose = 90° rotation + flip
            lr = tf.cond(swap, lambda: tf.transpose(lr, [0, 2, 1, 3]), lambda: lr)
            hr = tf.cond(swap, lambda: tf.transpose(hr, [0, 2, 1, 3]), lambda: hr)
        lr = tf.ensure_shape(tf.cast(lr, tf.float32) / 255.0, (num_frames, patch, patch, 3))
        hr = tf.ensure_shape(tf.cast(hr, tf.float32) / 255.0, (num_frames, patch * scale, patch * scale, 3))
        return {"lr": lr, "hr": hr}

    first = start_step * config.batch_size + process_index
    ds = tf.data.Dataset.range(first, 2**62, process_count)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local_batch, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(2)
