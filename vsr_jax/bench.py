"""`vsr-bench`: speed ratios measured in one run (never in a timed test).

    python -m vsr_jax.bench [--quick] [--models=srresnet,gan:quick] [--json=out.json]

prints the model table (`vsr_jax.bench_models`): inference ms/frame at 64×64 and 180×320
LR, training frames/s, achieved GFLOP/s and their ratio to a matmul peak measured in the
same run, compile time, peak memory.

    python -m vsr_jax.bench --config=configs/unet.py [--config.data.name=... overrides] [--steps=20]

measures, for the given config on this machine:
* input pipeline alone: batches/s of `pipeline.make_dataset` (after warm-up);
* train step alone: steps/s of the jitted step on one fixed device-resident batch;
* their ratio — the input pipeline's headroom. Below 1 the accelerator waits for data.

    python -m vsr_jax.bench upscale [--workdir=RUN] [--lengths=100,1000] [--size=180x320]

measures the upscaler instead: frames/s, peak RSS against clip length, and the time of
decode / model / encode (see `vsr_jax.upscale.bench`).
"""

from __future__ import annotations

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


def _rate(fn, n: int) -> float:
    fn()  # warm-up (compilation, pipeline fill)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def input_pipeline_rate(config, steps: int) -> float:
    from vsr_jax.data import pipeline

    batches = pipeline.make_dataset(config, "train").as_numpy_iterator()
    for _ in range(3):
        next(batches)
    return _rate(lambda: next(batches), steps)


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

    return _rate(one, steps)


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
    data_rate = input_pipeline_rate(config, _STEPS.value)
    step_rate = train_step_rate(config, _STEPS.value)
    d = config.data
    print(f"config: model={config.model.name} data={d.name} x{d.scale} batch={config.batch_size} T={d.num_frames}")
    print(f"input pipeline : {data_rate:8.2f} batches/s")
    print(f"train step     : {step_rate:8.2f} steps/s")
    print(f"headroom (input / step): {data_rate / step_rate:.1f}x  (< 1 means the device waits for data)")


def run():
    if sys.argv[1:2] == ["upscale"]:  # `vsr-bench upscale ...`: the upscaler's own benchmark
        from vsr_jax.upscale import bench as upscale_bench

        upscale_bench.main(sys.argv[2:])
        return
    app.run(main)


if __name__ == "__main__":
    run()
