"""The input pipeline's rate and how it scales with host threads, per recipe and dataset (issue 22).

For each recipe (default: the sample recipes unet, convlstm:cpu, basicvsr:quick) and each
dataset layout — the bundled sample clips, a video folder and a Vimeo-90K septuplet tree
(both generated here: smooth moving textures, 448×256 like Vimeo-90K) — prints, measured in
one run:

* batches/s of `pipeline.make_dataset` with 1 and with 2 parallel calls, and their ratio
  (the scaling figure of `vsr-bench --config`: 2.0 when building batches holds no lock);
* batches/s of the pipeline as it was before issue 22 (every step of an example in one
  `tf.numpy_function` per example: band degradation, whole Vimeo-90K septuplets decoded,
  float32 out), with 2 parallel calls, for comparison;
* whether the LR cache was used, the recipe's train steps/s on this machine and the input /
  step ratio (2 calls).

    python experiments/input_pipeline.py [--configs=unet,convlstm:cpu,basicvsr:quick]
        [--datasets=sample,video_folder,vimeo90k] [--seconds=3] [--sequences=48]

Nothing is trained; about a minute per recipe. Timings need an otherwise idle machine.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
from absl import app, flags

_CONFIGS = flags.DEFINE_list("configs", ["unet", "convlstm:cpu", "basicvsr:quick"], "configs/<name>.py[:preset]")
_DATASETS = flags.DEFINE_list("datasets", ["sample", "video_folder", "vimeo90k"], "Dataset layouts to measure.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Least time per input-rate figure.")
_SEQUENCES = flags.DEFINE_integer("sequences", 48, "Generated Vimeo-90K train septuplets.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 3, "Timed train steps per recipe.")

H, W = 256, 448  # Vimeo-90K's frame size


def texture(seed: int, n: int) -> np.ndarray:
    """n (H, W, 3) uint8 frames of a smooth random texture with fine noise, moving 2 px per frame."""
    rng = np.random.default_rng(seed)
    big = np.kron(rng.integers(0, 256, (H // 16 + 2, (W + 2 * n) // 16 + 2, 3)), np.ones((16, 16, 1)))
    frames = np.stack([big[1 : H + 1, 2 * t : 2 * t + W] for t in range(n)])
    return np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)


def make_vimeo_tree(root: pathlib.Path, sequences: int) -> None:
    """Vimeo-90K's unpacked layout: sep_trainlist.txt, sep_testlist.txt, sequences/NNNNN/NNNN/im1..7.png."""
    import cv2

    ids = [f"{1 + i // 100:05d}/{1 + i % 100:04d}" for i in range(sequences + 2)]
    for k, sequence in enumerate(ids):
        folder = root / "sequences" / sequence
        folder.mkdir(parents=True)
        for t, frame in enumerate(texture(k, 7)):
            cv2.imwrite(str(folder / f"im{t + 1}.png"), frame[..., ::-1])
    (root / "sep_trainlist.txt").write_text("\n".join(ids[:sequences]) + "\n")
    (root / "sep_testlist.txt").write_text("\n".join(ids[sequences:]) + "\n")


def make_video_folder(root: pathlib.Path) -> None:
    """Four 60-frame lossless (FFV1) videos."""
    import av

    root.mkdir(parents=True)
    for k in range(4):
        with av.open(str(root / f"clip{k}.mkv"), "w") as out:
            stream = out.add_stream("ffv1", rate=25)
            stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
            for f in texture(100 + k, 60):
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)


class WholeRecords:
    """Records without `frames(i, start, stop)`: a window decodes all of its record, as before issue 22."""

    def __init__(self, records):
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]


def before_rate(config, calls: int, seconds: float) -> float:
    """Batches/s of the pipeline before issue 22: one `tf.numpy_function` per example running all of
    `pipeline.make_example` (band degradation, NumPy flips, float32 out), then `batch`."""
    from vsr_jax import bench
    from vsr_jax.data import pipeline

    tf = pipeline._tf()
    pipeline.single_threaded_blas()
    d = config.data
    source = pipeline.make_source(d, "train")
    if hasattr(source, "_records"):  # Vimeo-90K: each window decoded its whole septuplet then
        source._records = WholeRecords(source._records)
    maker = pipeline.ExampleMaker(source, d, config.seed)
    t, p, s = int(d.num_frames), int(d.patch_size), int(d.scale)

    def load(index):
        lr, hr = tf.numpy_function(maker, [index], [tf.float32, tf.float32], stateful=False)
        return {"lr": tf.ensure_shape(lr, (t, p, p, 3)), "hr": tf.ensure_shape(hr, (t, p * s, p * s, 3))}

    ds = tf.data.Dataset.range(0, 2**62).map(load, num_parallel_calls=calls, deterministic=True)
    it = ds.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
    for _ in range(3):  # the same warm-up as bench.input_pipeline_rate
        next(it)
    return bench.rate(lambda: next(it), 10, seconds)


def with_data(config, **fields):
    config = config.copy_and_resolve_references()
    with config.unlocked():
        for key, value in fields.items():
            config.data[key] = value
    return config


def main(argv):
    del argv
    from vsr_jax import bench, bench_models
    from vsr_jax.data import pipeline

    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"{os.cpu_count()} CPUs; OPENBLAS_NUM_THREADS={blas}; {_SECONDS.value:g} s or more per input figure")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vsr_input_"))
    layouts = {"sample": {}}
    if "video_folder" in _DATASETS.value:
        make_video_folder(tmp / "videos")
        layouts["video_folder"] = {"name": "video_folder", "path": str(tmp / "videos"), "cache_dir": str(tmp / "cache")}
    if "vimeo90k" in _DATASETS.value:
        make_vimeo_tree(tmp / "vimeo" / "vimeo_septuplet", _SEQUENCES.value)
        layouts["vimeo90k"] = {"name": "vimeo90k", "manual_dir": str(tmp / "vimeo"), "tfds_data_dir": str(tmp / "tfds")}
    layouts = {k: v for k, v in layouts.items() if k in _DATASETS.value}
    print(
        "\n| recipe | data | batch × T × LR patch | LR cache | before, 2 calls | 1 call | 2 calls | scaling "
        "| train steps/s | input / step |"
    )
    print("|---" * 10 + "|")
    for spec in _CONFIGS.value:
        base = bench_models.load_config(spec)
        step = bench.train_step_rate(base, _TRAIN_STEPS.value)
        for layout, fields in layouts.items():
            config = with_data(base, val_percent=25, **fields) if fields else base
            d = config.data
            source = pipeline.make_source(d, "train")  # prepares the dataset / decode cache once
            cached = pipeline.LRCache.for_source(source, d) is not None
            old = before_rate(config, 2, _SECONDS.value)
            one, two = (bench.input_pipeline_rate(config, 10, calls, _SECONDS.value) for calls in (1, 2))
            shape = f"{config.batch_size} × {d.num_frames} × {d.patch_size}²"
            print(
                f"| {spec} | {layout} | {shape} | {'yes' if cached else 'no'} | {old:.1f} | {one:.1f} | {two:.1f} "
                f"| {two / one:.2f} | {step:.2f} | {two / step:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    app.run(main)
