"""`vsr-bench`: speed ratios measured in one run (never in a timed test).

    python -m vsr_jax.bench [--quick] [--models=srresnet,gan:quick] [--json=out.json]

prints the model table (`vsr_jax.bench_models`): inference ms/frame at 64×64 and 180×320
LR, training frames/s, achieved GFLOP/s and their ratio to a matmul peak measured in the
same run, compile time, peak memory.

    python -m vsr_jax.bench --config=configs/unet.py [--config.data.name=... overrides] [--steps=20]

measures, for the given config on this machine:
* input pipeline alone: batches/s of `pipeline.make_dataset` (after warm-up) with 1 and with
  2 parallel map calls (their ratio is the scaling figure: 2.0 when building examples holds
  no lock, 1.0 when the GIL serialises them), and with the config's `data.parallel_calls`;
* train step alone: steps/s of the jitted step on one fixed device-resident batch;
* their ratio (the configured input rate / step rate) — the input pipeline's headroom.
  Below 1 the accelerator waits for data.

    python -m vsr_jax.bench upscale [--workdir=RUN] [--lengths=100,1000] [--size=180x320]

measures the upscaler instead: frames/s, peak RSS against clip length, and the time of
decode / model / encode (see `vsr_jax.upscale.bench`).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from vsr_jax import cli

_STEPS = flags.DEFINE_integer("steps", 20, "Timed batches / steps (after warm-up).")
config_flags.DEFINE_config_file(
    "config", None, "Input pipeline vs train step of this config (without it: the model table).", lock_config=True
)
_QUICK = flags.DEFINE_bool("quick", False, "Model table: two small recipes at 32x32, one repetition (a smoke test).")
_MODELS = flags.DEFINE_string("models", "", "Model table: configs[:preset], comma-separated (default: every recipe).")
_JSON = flags.DEFINE_string("json", "", "Model table: also write the results as JSON here.")


def rate(fn, n: int, min_seconds: float = 0.0) -> float:
    """Calls/s of `fn` over at least `n` calls and `min_seconds`, after one warm-up call."""
    fn()  # warm-up (compilation, pipeline fill)
    count, t0 = 0, time.perf_counter()
    while count < n or time.perf_counter() - t0 < min_seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - t0)


def input_pipeline_rate(config, steps: int, parallel_calls: int | None = None, min_seconds: float = 2.0) -> float:
    """Batches/s of `pipeline.make_dataset(config, 'train')` over at least `steps` batches and
    `min_seconds` (a few batches take milliseconds), with `parallel_calls` map threads
    (default: the config's `data.parallel_calls`; 0 = AUTOTUNE)."""
    from vsr_jax.data import pipeline

    if parallel_calls is not None:
        config = config.copy_and_resolve_references()
        with config.unlocked():
            config.data.parallel_calls = int(parallel_calls)
    batches = pipeline.make_dataset(config, "train").as_numpy_iterator()
    for _ in range(3):
        next(batches)
    return rate(lambda: next(batches), steps, min_seconds)


def train_step_rate(config, steps: int) -> float:
    import jax

    from vsr_jax import config_lib, sharding
    from vsr_jax.data import pipeline
    from vsr_jax.optimizers import make_optimizer
    from vsr_jax.train_state import create_train_state
    from vsr_jax.train_step import jit_train_step, make_train_step

    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), make_optimizer(config)
    state = create_train_state(config, model, tx, mesh)
    # from step 0: a recipe with a warm-up (gan.pretrain_steps) times its warm-up program
    step = jit_train_step(make_train_step(model, tx, config), mesh, pretrain_steps=int(config.gan.pretrain_steps))
    batch = sharding.global_batch(next(pipeline.make_dataset(config, "train").as_numpy_iterator()), mesh)
    holder = {"state": state}

    def one():
        holder["state"], m = step(holder["state"], batch)
        jax.block_until_ready(m)

    return rate(one, steps)


def measure_config(config, steps: int) -> dict:
    """`vsr-bench --config`'s figures: input batches/s with 1 and 2 parallel calls and with the
    config's `data.parallel_calls`, train steps/s, the scaling figure and the headroom."""
    one, two = input_pipeline_rate(config, steps, 1), input_pipeline_rate(config, steps, 2)
    calls = int(config.data.parallel_calls)
    configured = {1: one, 2: two}.get(calls) or input_pipeline_rate(config, steps)
    step = train_step_rate(config, steps)
    d = config.data
    return {
        "config": f"model={config.model.name} data={d.name} x{d.scale} batch={config.batch_size} T={d.num_frames}",
        "cpu_count": os.cpu_count(),
        "input_1_call": one,
        "input_2_calls": two,
        "scaling": two / one,
        "parallel_calls": calls,
        "input": configured,
        "train_step": step,
        "headroom": configured / step,
    }


def config_report_lines(r: dict) -> list[str]:
    label = "AUTOTUNE" if r["parallel_calls"] == 0 else str(r["parallel_calls"])
    return [
        f"config: {r['config']}  ({r['cpu_count']} CPUs)",
        f"input pipeline, 1 parallel call : {r['input_1_call']:8.2f} batches/s",
        f"input pipeline, 2 parallel calls: {r['input_2_calls']:8.2f} batches/s",
        f"scaling (2 calls / 1 call)      : {r['scaling']:8.2f}x  (2 = no lock held; 1 = the GIL serialises)",
        f"input pipeline, data.parallel_calls={label}: {r['input']:8.2f} batches/s",
        f"train step     : {r['train_step']:8.2f} steps/s",
        f"headroom (input / step): {r['headroom']:.1f}x  (< 1 means the device waits for data)",
    ]


@cli.exit_path("vsr-bench")
def main(argv):
    del argv
    from vsr_jax import config_lib

    config = flags.FLAGS.config
    if config is None:
        from vsr_jax import bench_models

        bench_models.main(_QUICK.value, _MODELS.value, _JSON.value)
        return
    config_lib.validate(config)
    print("\n".join(config_report_lines(measure_config(config, _STEPS.value))))


def run():
    if sys.argv[1:2] == ["upscale"]:  # `vsr-bench upscale ...`: the upscaler's own benchmark
        from vsr_jax.upscale import bench as upscale_bench

        upscale_bench.main(sys.argv[2:])
        return
    app.run(main)


if __name__ == "__main__":
    run()
