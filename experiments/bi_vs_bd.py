"""Regenerates the README table "BI vs BD degradation".

The field trains and tests ×4 models under two degradations (BasicSR's naming): BI,
MATLAB bicubic downsampling, and BD, MATLAB's 12×12 Gaussian blur with σ = 1.6 followed
by taking every 4th pixel (the protocol of Vid4/UDM10 BD results). A model learns the
inverse of the degradation it was trained on, so the interesting numbers are off the
diagonal: a BI model tested on BD inputs (and the other way round).

This script trains SRResNet's `:quick` preset on the bundled sample clips under each
degradation, scores both final checkpoints on both test sets with the metrics binary
(`--degradation=bi|bd`), and writes the 2×2 table with bicubic upsampling of the same LR
frames as the baseline. `--full` trains the full recipe on Vimeo-90K.

    python experiments/bi_vs_bd.py --workdir=runs/bi_vs_bd [--steps=N] [--config=srresnet.py]
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from common import Entry, data_line, evaluate, machine_line, publish, train

DEGRADATIONS = ("bi", "bd")
_CONFIG = flags.DEFINE_string("config", "srresnet.py", "Recipe file in configs/ (its :quick preset is trained).")


def main(argv):
    del argv
    entries = [
        Entry(f"{_CONFIG.value[:-3]} trained on {d.upper()}", _CONFIG.value, overrides={"data.degradation": d})
        for d in DEGRADATIONS
    ]
    workdirs = [train(e) for e in entries]
    with open(os.path.join(workdirs[0], "config.json")) as f:
        dataset = json.load(f)["data"]["name"]
    scores = {}  # (trained on, tested on) -> metrics
    for test in DEGRADATIONS:
        tags = ["" if train_deg == test else f"{dataset}_{test}" for train_deg in DEGRADATIONS]
        for train_deg, r in zip(DEGRADATIONS, evaluate(workdirs, f"--degradation={test}", tags=tags), strict=True):
            scores[train_deg, test] = r
    lines = [
        "| trained on ↓ / tested on → | BI: Y-PSNR | BI: Y-SSIM | BD: Y-PSNR | BD: Y-SSIM |",
        "|---|---:|---:|---:|---:|",
    ]
    for train_deg in DEGRADATIONS:
        cells = []
        for test in DEGRADATIONS:
            r = scores[train_deg, test]
            cells += [f"{r['psnr_y']:.2f}", f"{r['ssim_y']:.4f}"]
        lines.append(f"| {train_deg.upper()} | {' | '.join(cells)} |")
    bicubic = []
    for test in DEGRADATIONS:
        r = scores["bi", test]
        bicubic += [f"{r['bicubic_psnr_y']:.2f}", f"{r['bicubic_ssim_y']:.4f}"]
    lines.append(f"| bicubic upsampling | {' | '.join(bicubic)} |")
    r = scores["bi", "bi"]
    lines += [
        "",
        f"`{entries[0].config_name}`, {r['step']} steps per model; {data_line([r])}; scored by `vsr-eval` in "
        f"batch mode; {machine_line()}.",
    ]
    publish("bi_vs_bd", "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
