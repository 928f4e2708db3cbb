"""Regenerates the README table "Results: SR-U-Net on the bundled clips".

Trains `configs/unet.py:quick` (the README's quick start: ×2, 400 steps; `--steps` to
change) on the sample clips in WORKDIR/unet with the training binary, scores the final
checkpoint with the metrics binary, and tabulates it per held-out clip next to bicubic.
`--full` trains the full recipe on Vimeo-90K.

    python experiments/sample_unet.py --workdir=runs/exp_sample_unet [--steps=5000]
"""

from __future__ import annotations

import json
import os

from absl import app
from common import Entry, data_line, evaluate, machine_line, minutes, publish, train

ENTRY = Entry("unet", "unet.py")


def main(argv):
    del argv
    workdir = train(ENTRY)
    (result,) = evaluate([workdir])
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
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
    m = minutes(workdir)
    p = config["data"]["patch_size"]
    s = config["data"]["scale"]
    rows += [
        "",
        f"{data_line([result])}; `{ENTRY.config_name}`, {result['step']} steps of batch {config['batch_size']} "
        f"({p}×{p} → {p * s}×{p * s} patches)"
        + (f", {m:.1f} min for the training command" if m is not None else "")
        + f"; {machine_line()}.",
    ]
    publish("sample_unet", "\n".join(rows))


if __name__ == "__main__":
    app.run(main)
