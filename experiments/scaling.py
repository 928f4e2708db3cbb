"""Regenerates the README table "Scaling with devices".

Trains the same recipe (default `configs/unet.py:quick`, 100 steps; `--steps`, `--config`)
with the same global batch on 1, 2, 4, 8 devices (`--devices`), each run a separate
training command: data parallel over a `data` mesh axis, each device gets batch/n
examples. It reports the steady-state training speed (the trainer's own measurement,
after the compiling first step) and the speed-up over one device, and scores every final
checkpoint with the metrics binary in one batch call: the held-out Y-PSNR should not depend
on the device count beyond floating-point summation order (the runs see the same examples
in the same order; 100 steps here agree within 0.04 dB).

Devices: on a CPU-only machine the runs use `--xla_force_host_platform_device_count=n`
virtual devices, which share the machine's cores, so the table measures the overhead of
sharding (and checks the numbers agree), not a speed-up. On a GPU host the first n GPUs
are used (`CUDA_VISIBLE_DEVICES`); on a TPU host only the full slice. Counts the machine
does not have are skipped. `--full` trains the full recipe on Vimeo-90K.

    python experiments/scaling.py --workdir=runs/scaling [--devices=1,2,4,8] [--steps=N]
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from common import Entry, ExperimentError, evaluate, machine_line, publish, train

_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Device counts to train on.")
_CONFIG = flags.DEFINE_string("config", "unet.py", "Recipe file in configs/ (its :quick preset).")
_QUICK_STEPS = 100


def device_env(n: int, backend: str, available: int) -> dict | None:
    """Environment that makes a training command see n devices (None: this machine cannot)."""
    if backend == "cpu":
        xla = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)
        return {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"{xla} --xla_force_host_platform_device_count={n}".strip()}
    if n > available:
        return None
    if backend == "gpu":
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(n))}
    return {} if n == available else None  # TPU: the whole slice


def main(argv):
    del argv
    import jax

    backend, available = jax.default_backend(), jax.device_count()
    counts = sorted({int(d) for d in _DEVICES.value})
    entry_config = {"total_steps": _QUICK_STEPS}
    rows = []
    for n in counts:
        env = device_env(n, backend, available)
        if env is None:
            print(f"skipping {n} devices: this {backend} machine has {available}", flush=True)
            continue
        entry = Entry(f"{_CONFIG.value[:-3]} {n} devices", _CONFIG.value, overrides=entry_config)
        rows.append((n, train(entry, env=env)))
    if not rows:
        raise ExperimentError(f"none of --devices={','.join(map(str, counts))} fits this machine")
    results = evaluate([w for _, w in rows])
    lines = [
        "| devices | global batch | per device | steps/s | frames/s | speed-up | Y-PSNR | Δ vs first row |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_rate, base_psnr = None, results[0]["psnr_y"]
    for (n, w), r in zip(rows, results, strict=True):
        with open(os.path.join(w, "config.json")) as f:
            config = json.load(f)
        with open(os.path.join(w, "eval", "metrics.json")) as f:
            rate = json.load(f).get("train_steps_per_sec")
        batch, frames = int(config["batch_size"]), int(config["data"]["num_frames"])
        base_rate = base_rate or rate
        speedup = f"×{rate / base_rate:.2f}" if rate and base_rate else "–"
        speed = f"{rate:.2f} | {rate * batch * frames:.1f}" if rate else "– | –"
        lines.append(
            f"| {n} | {batch} | {batch // n} | {speed} | {speedup} | "
            f"{r['psnr_y']:.3f} | {r['psnr_y'] - base_psnr:+.3f} |"
        )
    cfg = rows[0][1]
    with open(os.path.join(cfg, "config.json")) as f:
        config = json.load(f)
    virtual = " (virtual CPU devices sharing the cores)" if backend == "cpu" else ""
    lines += [
        "",
        f"`configs/{_CONFIG.value}`, {results[0]['step']} steps, LR patches {config['data']['patch_size']}² ×"
        f"{config['data']['scale']}; steps/s after the first (compiling) step, checkpoints included; "
        f"{machine_line()}{virtual}.",
    ]
    publish("scaling", "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
