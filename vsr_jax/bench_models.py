"""The model table of `vsr-bench`: speed of every recipe, against the device's own peak.

For each config (random weights; speed does not depend on them), at each LR size:

* inference: ms per frame of a jitted forward pass (T frames for video models), the
  GFLOP/s it achieves (FLOPs from XLA's cost analysis of the compiled program / time);
* training: frames/s of the jitted train step at the config's batch and patch size, and
  its GFLOP/s;
* the device's peak measured in the same run: a large matmul in float32 through XLA (and
  numpy's sgemm on a CPU: the hardware's practical peak), and each GFLOP/s as a
  fraction of it;
* compile time, apart from the steady state; peak memory (device statistics on GPU/TPU,
  the process's peak RSS on a CPU).

Results are printed as a markdown table and, with `--json`, written as JSON. The published
architectures run at the sizes of the PyTorch comparison (`experiments/published_speed.py`):
msrresnet as its recipe (×4, 64×64 and 180×320 LR, batch 16 of 32×32 for training),
basicvsr on 15-frame clips for inference and one 7-frame clip of 64×64 for training
(`TRAIN_OVERRIDES`), basicvsrpp the same, edvr on 5-frame clips (training: 4 windows, the
centre frames counted); weight files a recipe starts from are not loaded (`NO_INIT_KEYS`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax.models import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL = (
    "srcnn", "unet", "runet", "srresnet", "srgan", "convlstm", "gan", "msrresnet", "basicvsr", "edvr", "basicvsrpp",
)  # fmt: skip
QUICK = ("srcnn:quick", "srresnet:quick")
# Training rows at other sizes than the recipe's own (config overrides, by config file name):
# BasicVSR trains on one 7-frame clip of 64×64 LR as in the PyTorch comparison of issue 19
# (experiments/published_speed.py); its inference rows keep the recipe's 15 frames.
# BasicVSR++ likewise (its recipe's 30-frame clips: inference on 15 as basicvsr's); EDVR trains
# a batch of 4 windows (its recipe: 32).
TRAIN_OVERRIDES = {
    "basicvsr": {"batch_size": 1, "data.num_frames": 7},
    "basicvsrpp": {"batch_size": 1, "data.num_frames": 7},
    "edvr": {"batch_size": 4},
}
INFER_OVERRIDES = {"basicvsrpp": {"data.num_frames": 15}}
# Weight files a recipe starts from (a download; speed does not depend on the weights).
NO_INIT_KEYS = ("init_from", "model.spynet_init")


def load_config(spec: str):
    """'srresnet:quick' -> configs/srresnet.py's get_config('quick')."""
    name, _, preset = spec.partition(":")
    path = os.path.join(ROOT, "configs", f"{name}.py")
    module_spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(preset) if preset else module.get_config()


def _set(config, dotted: str, value, only_if_present: bool = False) -> None:
    """config.<dotted> = value (`only_if_present`: only where the config has that key)."""
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
        node = node[p]
    if not only_if_present or leaf in node:
        node[leaf] = value


def _call_times(fn, reps: int) -> list[float]:
    """Seconds of each of `reps` calls of fn (blocked until done), after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def _timed(fn, reps: int) -> float:
    """Median seconds of `reps` calls of fn (see `_call_times`)."""
    return float(np.median(_call_times(fn, reps)))


def _apply(model, params, x):
    return model.apply({"params": params}, x)


def matmul_peak(n: int, reps: int = 5) -> dict:
    """GFLOP/s of an n×n float32 matmul through XLA, and numpy's sgemm on the host: the best
    of `reps` calls (a peak is what the machine can reach, not its median)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    out = {"matmul_n": n, "xla_matmul_gflops": 2 * n**3 / min(_call_times(lambda: f(a), reps)) / 1e9}
    if jax.default_backend() == "cpu":
        h = np.asarray(a)
        out["numpy_sgemm_gflops"] = 2 * n**3 / min(_call_times(lambda: h @ h, reps)) / 1e9
    return out


def _reset_peak_memory() -> None:
    """Starts a new peak-RSS window for this process (Linux: `5` into /proc/self/clear_refs
    resets VmHWM), so each recipe's row shows its own peak, not the largest so far."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_memory_mb() -> float:
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_model(spec: str, sizes, reps: int) -> list[dict]:
    """Inference and training rows of one config at each LR size (h, w)."""
    from vsr_jax import adversarial, config_lib, models, optimizers, sharding, train_state, train_step

    config = load_config(spec)
    for key in NO_INIT_KEYS:
        _set(config, key, "", only_if_present=True)
    for key, value in INFER_OVERRIDES.get(spec.partition(":")[0], {}).items():
        _set(config, key, value)
    _reset_peak_memory()
    model = config_lib.build_model(config)
    t = int(config.data.num_frames)
    s = int(config.data.scale)
    params = models.init_variables(model, jax.random.key(0), jnp.zeros((1, t, 16, 16, 3)))["params"]
    rows = []
    for h, w in sizes:
        x = jax.random.uniform(jax.random.key(1), (1, t, h, w, 3))
        apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
        t0 = time.perf_counter()
        compiled = apply.lower(params, x).compile()
        compile_s = time.perf_counter() - t0
        seconds = _timed(functools.partial(compiled, params, x), reps)
        flops = stats.program_flops(jax.jit(functools.partial(_apply, stats.unrolled(model, t))).lower(params, x))
        rows.append(
            {
                "model": spec,
                "task": "inference",
                "size": f"{h}x{w}",
                "frames": t,
                "ms_per_frame": 1000 * seconds / t,
                "frames_per_s": t / seconds,
                "gflops": flops / seconds / 1e9,
                "compile_s": compile_s,
            }
        )
    # training at the recipe's batch and patch size, on one device, every loss term of the
    # recipe (discriminator and VGG included: random VGG weights, speed does not depend on them)
    config.loss.allow_random_vgg = True
    config.loss.vgg_weights = ""  # no download for a speed row
    for key, value in TRAIN_OVERRIDES.get(spec.partition(":")[0], {}).items():
        _set(config, key, value)
    t = int(config.data.num_frames)
    mesh = sharding.make_mesh(jax.devices()[:1])
    tx = optimizers.make_optimizer(config)
    critic = adversarial.Critic(config) if config.gan.loss else None
    d_tx = optimizers.make_optimizer(config, learning_rate=config.gan.learning_rate) if critic else None
    state = train_state.create_train_state(config, model, tx, mesh, critic, d_tx)
    perceptual, frozen = train_step.build_perceptual(config)
    p = int(config.data.patch_size)
    b = int(config.batch_size)
    key = jax.random.key(2)
    batch = {
        "lr": jax.random.uniform(key, (b, t, p, p, 3)),
        "hr": jax.random.uniform(key, (b, t, p * s, p * s, 3)),
    }
    batch = sharding.global_batch({k: np.asarray(v) for k, v in batch.items()}, mesh)
    step_fn = train_step.make_train_step(model, tx, config, critic=critic, d_tx=d_tx, perceptual=perceptual)
    pretrain = int(config.gan.pretrain_steps)
    step = train_step.jit_train_step(step_fn, mesh, frozen, pretrain_steps=pretrain)
    if pretrain > 0:  # time the full (adversarial) step, not the warm-up
        state = state.replace(step=jnp.asarray(pretrain, jnp.int32))
    t0 = time.perf_counter()
    state, _ = step(state, batch)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t0
    counted_fn = train_step.make_train_step(
        stats.unrolled(model, t), tx, config, critic=critic, d_tx=d_tx, perceptual=perceptual
    )
    # the adversarial program: the steady state of a GAN recipe (the others have one program)
    flops = stats.program_flops(train_step.jit_train_step(counted_fn, mesh, frozen).lower(state, batch, True))
    holder = {"state": state}

    def one():
        holder["state"], m = step(holder["state"], batch)
        return m

    seconds = _timed(one, reps)
    frames = b if config.loss.get("frames", "all") == "center" else b * t  # the frames the loss sees
    rows.append(
        {
            "model": spec,
            "task": "train",
            "size": f"{p}x{p}",
            "frames": frames,
            "ms_per_frame": 1000 * seconds / frames,
            "frames_per_s": frames / seconds,
            "gflops": flops / seconds / 1e9 if flops else float("nan"),
            "compile_s": compile_s,
        }
    )
    for r in rows:
        r["peak_memory_mb"] = _peak_memory_mb()
    return rows


def run(specs, sizes, reps: int, matmul_n: int) -> dict:
    before = matmul_peak(matmul_n)
    rows = []
    for spec in specs:
        try:
            new = bench_model(spec, sizes, reps)
        except Exception as e:  # noqa: BLE001 — one recipe failing must not lose the others' numbers
            print(f"{spec}: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            continue
        for r in new:
            print(
                f"{spec} {r['task']} {r['size']}: {r['ms_per_frame']:.1f} ms/frame, {r['gflops']:.1f} GFLOP/s",
                flush=True,
            )
        rows += new
    # the peak before and after the models (a busy machine or clock changes show as a gap): the best of both
    after = matmul_peak(matmul_n)
    peak = {k: max(before[k], after[k]) for k in before}
    ref = peak.get("numpy_sgemm_gflops", peak["xla_matmul_gflops"])
    for r in rows:
        r["of_xla_matmul"] = r["gflops"] / peak["xla_matmul_gflops"]
        r["of_peak"] = r["gflops"] / ref
    return {
        "date": time.strftime("%Y-%m-%d"),
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **peak,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    peak = f"XLA {result['matmul_n']}² f32 matmul {result['xla_matmul_gflops']:.0f} GFLOP/s"
    if "numpy_sgemm_gflops" in result:
        peak += f", numpy sgemm {result['numpy_sgemm_gflops']:.0f} GFLOP/s"
    flags = f" · XLA_FLAGS: `{result['xla_flags']}`" if result.get("xla_flags") else ""
    lines = [
        f"{result['date']} · {result['backend']} ({result['device']}, {result['cpu_count']} CPUs) · "
        f"peak: {peak}{flags}",
        "",
        "| model | task | LR size | ms/frame | frames/s | GFLOP/s | of matmul | of peak | compile s | peak mem MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['task']} | {r['size']} | {r['ms_per_frame']:.1f} | {r['frames_per_s']:.2f} | "
            f"{r['gflops']:.1f} | {r['of_xla_matmul']:.0%} | {r['of_peak']:.0%} | {r['compile_s']:.1f} | "
            f"{r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(quick: bool, models_arg: str, json_path: str) -> None:
    specs = [m for m in models_arg.split(",") if m] or list(QUICK if quick else FULL)
    sizes = [(32, 32)] if quick else [(64, 64), (180, 320)]
    result = run(specs, sizes, reps=1 if quick else 3, matmul_n=1024 if quick else 4096)
    print(markdown(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
