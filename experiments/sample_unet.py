"""Regenerates the README table "Results: SR-U-Net on the bundled clips".

Trains `configs/unet.py` for `--steps` steps on the sample clips in a fresh `--workdir`,
evaluates on the held-out shots, and prints the table (also written to
WORKDIR/eval/table.md) with the training speed measured in this run.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_WORKDIR = flags.DEFINE_string("workdir", None, "A new directory for this run.", required=True)
_STEPS = flags.DEFINE_integer("steps", 400, "Training steps (the README quick start uses 400).")


def main(argv):
    del argv
    import importlib.util

    import jax

    from vsr_jax import train

    if os.path.exists(os.path.join(_WORKDIR.value, "checkpoints")):
        raise app.UsageError(f"{_WORKDIR.value} already holds a run; pass a new --workdir")
    spec = importlib.util.spec_from_file_location("unet_config", os.path.join(ROOT, "configs", "unet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.total_steps = _STEPS.value

    t0 = time.time()
    result = train.train_and_evaluate(config, _WORKDIR.value)
    minutes = (time.time() - t0) / 60
    rows = [
        "| clip | frames | bicubic Y-PSNR | SR-U-Net Y-PSNR | bicubic Y-SSIM | SR-U-Net Y-SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in result["clips"].items():
        rows.append(
            f"| {name} | {c['num_frames']} | {c['bicubic_psnr_y']:.2f} | {c['psnr_y']:.2f} | "
            f"{c['bicubic_ssim_y']:.4f} | {c['ssim_y']:.4f} |"
        )
    rows.append(
        f"| **mean over clips** | {result['num_frames']} | {result['bicubic_psnr_y']:.2f} | "
        f"**{result['psnr_y']:.2f}** | {result['bicubic_ssim_y']:.4f} | **{result['ssim_y']:.4f}** |"
    )
    device = f"{jax.device_count()}× {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()})"
    rows.append("")
    rows.append(
        f"×2, {config.total_steps} steps of batch {config.batch_size} (64×64 → 128×128 patches), "
        f"{minutes:.1f} min wall clock including start-up and evaluation on {device}, "
        f"{datetime.date.today().isoformat()}. Crop border {result['crop_border']}, Y channel (BT.601)."
    )
    table = "\n".join(rows)
    with open(os.path.join(_WORKDIR.value, "eval", "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    app.run(main)
