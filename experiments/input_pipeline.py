"""Where the input pipeline's time goes, and whether it scales with threads (issue 22).

For each recipe (default: the `sample` recipes unet, convlstm:cpu, basicvsr:quick) prints

* the time of each stage of one example (`pipeline.make_example`'s steps, timed one by one
  on the host thread): window read, crop origin and augmentation draw, HR crop, exact
  degradation (`degrade.crop_degrade`), rounding and corruptions, augmentation and float;
* examples/s of `ExampleMaker` called from 1 and from 2 Python threads (no tf.data): the
  share of an example that holds the GIL shows as a ratio below 2;
* batches/s of the pre-issue-22 pipeline (all of an example in one `tf.numpy_function`) and
  of `pipeline.make_dataset` with 1 and 2 parallel calls (`vsr-bench --config`'s scaling figure).

    python experiments/input_pipeline.py [--configs=unet,convlstm:cpu,basicvsr:quick] [--examples=200]

Nothing is trained; a few seconds per recipe. Timings need an otherwise idle machine.
"""

from __future__ import annotations

import concurrent.futures
import os
import time

import numpy as np
from absl import app, flags

_CONFIGS = flags.DEFINE_list("configs", ["unet", "convlstm:cpu", "basicvsr:quick"], "configs/<name>.py[:preset]")
_EXAMPLES = flags.DEFINE_integer("examples", 200, "Examples per measurement.")
_BATCHES = flags.DEFINE_integer("batches", 10, "Timed batches per pipeline rate.")


def load(spec: str):
    from vsr_jax import bench_models

    return bench_models.load_config(spec)


def stage_ms(maker, n: int) -> dict:
    """Mean ms per example of each step of `pipeline.make_example` (the same calls, timed)."""
    from vsr_jax.data import augment, degrade, pipeline

    data = maker.data
    s, p = int(data.scale), int(data.patch_size)
    totals = dict.fromkeys(("window", "draws", "hr_crop", "degrade", "round_corrupt", "augment_float"), 0.0)
    for k in range(n):
        t0 = time.perf_counter()
        rng = np.random.default_rng([maker.seed, k])
        frames = degrade.modcrop(maker.source.window(maker.window_of(k)), s)
        t1 = time.perf_counter()
        top, left = augment.crop_origin(rng, frames.shape[1] // s, frames.shape[2] // s, p)
        choice = augment.draw(rng)
        t2 = time.perf_counter()
        hr = frames[:, top * s : (top + p) * s, left * s : (left + p) * s]
        t3 = time.perf_counter()
        lr = degrade.crop_degrade(frames, s, data.degradation, top, left, p, p)
        t4 = time.perf_counter()
        lr = pipeline._corrupt(pipeline.to_uint8(lr), rng, data)
        t5 = time.perf_counter()
        kw = dict(flips=bool(data.augment), transpose=bool(data.augment), reverse=bool(data.temporal_reverse))
        lr, hr = augment.apply(lr, choice, **kw), augment.apply(hr, choice, **kw)
        lr, hr = lr.astype(np.float32) / 255.0, hr.astype(np.float32) / 255.0
        t6 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            totals[key] += dt
    return {key: 1000 * v / n for key, v in totals.items()}


def thread_rate(maker, n: int, threads: int) -> float:
    """Examples/s of `maker` over examples n..2n-1 from `threads` Python threads."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(maker, range(threads)))  # warm-up
        t0 = time.perf_counter()
        list(pool.map(maker, range(n, 2 * n)))
        return n / (time.perf_counter() - t0)


def numpy_map_rate(config, maker, calls: int, n: int) -> float:
    """Batches/s of the pre-issue-22 pipeline: every step of an example (`ExampleMaker.__call__`,
    float32 out) in one `tf.numpy_function`, `calls` parallel map calls."""
    from vsr_jax.data import pipeline

    tf = pipeline._tf()
    t, p, s = int(config.data.num_frames), int(config.data.patch_size), int(config.data.scale)

    def load(index):
        lr, hr = tf.numpy_function(maker, [index], [tf.float32, tf.float32], stateful=False)
        return {"lr": tf.ensure_shape(lr, (t, p, p, 3)), "hr": tf.ensure_shape(hr, (t, p * s, p * s, 3))}

    ds = tf.data.Dataset.range(0, 2**62).map(load, num_parallel_calls=calls, deterministic=True)
    it = ds.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
    for _ in range(3):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


def make_dataset_rate(config, calls: int, n: int) -> float | None:
    """Batches/s of `pipeline.make_dataset` with `calls` parallel calls (None before `data.parallel_calls`)."""
    from vsr_jax import bench

    try:
        return bench.input_pipeline_rate(config, n, calls)
    except TypeError:  # a vsr_jax from before issue 22
        return None


def main(argv):
    del argv
    from vsr_jax.data import pipeline

    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"vsr_jax from {os.path.dirname(pipeline.__file__)}; OPENBLAS_NUM_THREADS={blas}")
    print(f"{os.cpu_count()} CPUs; {_EXAMPLES.value} examples per figure")
    rows = []
    for spec in _CONFIGS.value:
        config = load(spec)
        d = config.data
        maker = pipeline.ExampleMaker(pipeline.make_source(d, "train"), d, config.seed)
        maker(0)  # the degradation matrices, the first window
        stages = stage_ms(maker, _EXAMPLES.value)
        one, two = (thread_rate(maker, _EXAMPLES.value, t) for t in (1, 2))
        m1, m2 = (numpy_map_rate(config, maker, t, _BATCHES.value) for t in (1, 2))
        b1, b2 = (make_dataset_rate(config, t, _BATCHES.value) for t in (1, 2))
        rows.append((spec, config, stages, one, two, m1, m2, b1, b2))
    keys = list(rows[0][2])
    print("\n| recipe | batch × T × LR patch | " + " | ".join(f"{k} ms" for k in keys) + " | total ms |")
    print("|---" * (len(keys) + 3) + "|")
    for spec, config, stages, *_ in rows:
        shape = f"{config.batch_size} × {config.data.num_frames} × {config.data.patch_size}²"
        cells = " | ".join(f"{stages[k]:.3f}" for k in keys)
        print(f"| {spec} | {shape} | {cells} | {sum(stages.values()):.3f} |")
    print(
        "\n| recipe | examples/s, 1 thread | 2 threads | ratio | NumPy-only map, batches/s, 1 call | 2 calls | ratio "
        "| make_dataset, 1 call | 2 calls | ratio |"
    )
    print("|---" * 10 + "|")
    for spec, _, _, one, two, m1, m2, b1, b2 in rows:
        tail = f"{b1:.2f} | {b2:.2f} | {b2 / b1:.2f}" if b1 else "- | - | -"
        print(f"| {spec} | {one:.1f} | {two:.1f} | {two / one:.2f} | {m1:.2f} | {m2:.2f} | {m2 / m1:.2f} | {tail} |")


if __name__ == "__main__":
    app.run(main)
