"""What the experiment scripts share: configs with overrides, resumable runs, the machine line."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def load_config(filename: str, preset: str, overrides: dict, *, steps: int = 0):
    """configs/<filename>'s get_config(preset) at ×4 with dotted `overrides` (and `steps`)."""
    spec = importlib.util.spec_from_file_location(f"config_{filename[:-3]}", os.path.join(ROOT, "configs", filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(preset)
    config.data.scale = 4
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    if steps:
        config.total_steps = steps
    return config


def entry_dir(root: str, name: str) -> str:
    """A run's directory under `root`, named after the table entry."""
    for ch in " ()+,":
        name = name.replace(ch, "_")
    return os.path.join(root, "_".join(p for p in name.split("_") if p))


def run_or_read(config, workdir: str, *, train_if_missing: bool = True) -> tuple[dict, float | None] | None:
    """Trains `config` in `workdir` unless its eval/metrics.json exists; returns that result and
    the wall-clock minutes of the training run (None when unknown), or None when it is missing
    and `train_if_missing` is False. An interrupted run resumes from its last checkpoint."""
    from vsr_jax import train

    metrics_path = os.path.join(workdir, "eval", "metrics.json")
    minutes_path = os.path.join(workdir, "eval", "minutes.txt")
    if not os.path.exists(metrics_path):
        if not train_if_missing:
            return None
        t0 = time.time()
        train.train_and_evaluate(config, workdir)
        with open(minutes_path, "w") as f:
            f.write(f"{(time.time() - t0) / 60:.2f}\n")
    with open(metrics_path) as f:
        result = json.load(f)
    minutes = None
    if os.path.exists(minutes_path):
        with open(minutes_path) as f:
            minutes = float(f.read())
    return result, minutes


def machine_line() -> str:
    """'1× cpu (x86_64), 2026-11-25': the devices the numbers were measured on, and the date."""
    import jax

    device = f"{jax.device_count()}× {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()})"
    return f"{device}, {datetime.date.today().isoformat()}"
