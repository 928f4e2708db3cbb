"""Regenerates the README table "Benchmark: every recipe on this machine".

Runs the model benchmark (`python -m vsr_jax.bench --json=WORKDIR/bench.json`, every
recipe at 64×64 and 180×320 LR: inference ms/frame, train frames/s, GFLOP/s against a
matmul measured in the same run, compile time, peak memory) and publishes its table.

    python experiments/bench_table.py --workdir=runs/bench [--models=srcnn,unet]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags
from common import ROOT, WORKDIR, ExperimentError, machine_name, publish

_MODELS = flags.DEFINE_string("models", "", "configs[:preset], comma-separated (default: every recipe).")
_FROM_JSON = flags.DEFINE_string("from_json", "", "Publish this `vsr-bench --json` result instead of running it.")


def main(argv):
    del argv
    from vsr_jax import bench_models

    os.makedirs(WORKDIR.value, exist_ok=True)
    path = _FROM_JSON.value or os.path.join(WORKDIR.value, "bench.json")
    if not _FROM_JSON.value:
        cmd = [sys.executable, "-m", "vsr_jax.bench", f"--json={path}"] + (
            [f"--models={_MODELS.value}"] if _MODELS.value else []
        )
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise ExperimentError("vsr-bench failed")
    with open(path) as f:
        result = json.load(f)
    if not _FROM_JSON.value:  # vsr-bench names the backend, not the CPU: record it beside the numbers
        result["machine"] = machine_name()
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
    machine = result.get("machine", "machine not recorded")
    publish("bench_models", f"{bench_models.markdown(result)}\n\nMeasured on: {machine}.")


if __name__ == "__main__":
    app.run(main)
