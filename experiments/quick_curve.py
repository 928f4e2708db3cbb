"""Regenerates the README table "quick_curve": what the CPU video preset gains per minute.

Trains one `:quick` video recipe on the bundled sample clips for a wall-clock budget's worth
of steps (a checkpoint every `--every` steps, all kept), then scores every checkpoint on
the held-out shots with the metrics binary (`--step=S`, Y-PSNR, crop 4, the bicubic
baseline under the same protocol) and tabulates the gain over bicubic against the minutes
of training it took to get there (from the run's own TensorBoard log: the wall time of the
step's log line, minus the start of the training command; compilation included).

    python experiments/quick_curve.py --workdir=runs/curve [--entry=cpu|quick] [--steps=N] [--every=80]

The issue-19 target: ≥ +1.8 dB over bicubic within 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

from absl import app, flags
from common import ROOT, STEPS, Entry, ExperimentError, data_line, machine_line, metrics_path, publish, train

ENTRIES = {
    # the README quick start's video model: :quick in both directions, lr 2e-3, 480 steps
    "cpu": Entry("convlstm cpu", "convlstm.py", preset="cpu"),
    # the model tables' short run (one direction, lr 1e-3, 300 steps)
    "quick": Entry("convlstm quick", "convlstm.py"),
}
TARGET_DB, TARGET_MINUTES = 1.8, 15.0

_ENTRY = flags.DEFINE_enum("entry", "cpu", list(ENTRIES), "The recipe to train.")
_EVERY = flags.DEFINE_integer("every", 80, "Checkpoint (and score) every this many steps.")


def _log_times(workdir: str) -> dict[int, float]:
    """{step: wall time} of the training log's scalar events (TensorBoard files in workdir)."""
    import tensorflow as tf

    times: dict[int, float] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.step and event.summary.value:
                times.setdefault(int(event.step), float(event.wall_time))
    return times


def load_config(entry: Entry):
    """The entry's training config, as the training binary builds it (its steps, its rate)."""
    from vsr_jax.bench_models import load_config as recipe

    return recipe(f"{entry.config_file.removesuffix('.py')}:{entry.preset}")


def main(argv):
    del argv
    base = ENTRIES[_ENTRY.value]
    steps = STEPS.value or load_config(base).total_steps
    every = _EVERY.value
    if steps % every:
        raise ExperimentError(f"--steps={steps} is not a multiple of --every={every}")
    entry = Entry(
        base.name,
        base.config_file,
        preset=base.preset,
        overrides={
            **base.overrides,
            "total_steps": steps,
            "checkpoint_every": every,
            "keep_checkpoints": steps // every + 1,
            "log_every": every,
        },
    )
    workdir = entry.run_dir()
    start_file = os.path.join(workdir, "eval", "start_time.txt")
    if not os.path.exists(start_file):
        os.makedirs(os.path.dirname(start_file), exist_ok=True)
        with open(start_file, "w") as f:
            f.write(f"{time.time()}\n")
    train(entry)
    with open(start_file) as f:
        start = float(f.read())
    times = _log_times(workdir)
    points = list(range(every, steps + 1, every))
    todo = [s for s in points if not os.path.exists(metrics_path(workdir, s))]
    for s in todo:
        cmd = [sys.executable, "-m", "vsr_jax.evaluate", f"--workdir={workdir}", f"--step={s}"]
        print(f"\n### scoring: {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise ExperimentError(f"the metrics binary failed on step {s}")
    rows, results = [], []
    for s in points:
        with open(metrics_path(workdir, s)) as f:
            r = json.load(f)
        results.append(r)
        minutes = (times[s] - start) / 60 if s in times else float("nan")
        gain = r["psnr_y"] - r["bicubic_psnr_y"]
        rows.append(f"| {s} | {minutes:.1f} | {r['psnr_y']:.2f} | {gain:+.2f} dB | {gain / minutes:.3f} |")
    changes = {**base.overrides, **({"total_steps": steps} if STEPS.value else {})}
    head = (
        f"`python -m vsr_jax.main --config={entry.config_name}"
        + "".join(f" --config.{k}={v}" for k, v in changes.items())
        + f"` (a checkpoint every {every} steps, each scored), {data_line(results)}; {machine_line()}; "
        f"minutes since the training command started (compilation included). "
        f"Target: ≥ +{TARGET_DB} dB within {TARGET_MINUTES:.0f} minutes."
    )
    table = ["| step | minutes | Y-PSNR | Δ vs bicubic | dB per minute |", "|---:|---:|---:|---:|---:|", *rows]
    publish("quick_curve", head + "\n\n" + "\n".join(table))


if __name__ == "__main__":
    app.run(main)
