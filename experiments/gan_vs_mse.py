"""Regenerates the README table "MSE-only vs GAN on the bundled clips".

Trains the recurrent video GAN's `:quick` preset (configs/gan.py) at ×4 on the bundled
sample clips twice for the same number of steps:

- "MSE only": the generator alone on its warm-up objective (pixel MSE + the flow
  network's warp loss; FRVSR), no discriminator, no ping-pong;
- "GAN": the full preset: the same warm-up, then + ping-pong + adversarial loss from the
  spatio-temporal discriminator (and VGG19 perceptual when `--vgg_weights` is given);

and, with `--image`, the same pair for single-image SR (configs/srgan.py:quick: SRResNet
on L1 alone vs SRGAN with the VGG-style discriminator). Each is evaluated on the held-out shots:
Y-PSNR / Y-SSIM (crop 4) and TecoGAN's tOF (lower is better), with bicubic under the same
protocol. Runs live in WORKDIR/<entry> and are read, not retrained, when finished.

    python experiments/gan_vs_mse.py --workdir=runs/gan_vs_mse [--image] [--steps=N]
"""

from __future__ import annotations

import os

from absl import app, flags
from common import entry_dir, load_config, machine_line, run_or_read

ENTRIES = {
    "recurrent_gan, MSE only": ("gan.py", "quick", {"gan.loss": "", "loss.pingpong_weight": 0.0}),
    "recurrent_gan, GAN": ("gan.py", "quick", {}),
}
IMAGE_ENTRIES = {
    "srresnet, MSE only": ("srgan.py", "quick", {"gan.loss": ""}),
    "srresnet, GAN (SRGAN)": ("srgan.py", "quick", {}),
}

_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory for the runs.", required=True)
_IMAGE = flags.DEFINE_bool("image", False, "Also compare SRResNet (MSE) with SRGAN.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override every entry's training steps (0: the preset's).")
_VGG = flags.DEFINE_string("vgg_weights", "", "VGG19 weights file: adds the perceptual term to the GAN entries.")


def main(argv):
    del argv
    entries = dict(ENTRIES, **(IMAGE_ENTRIES if _IMAGE.value else {}))
    rows = []
    for name, (filename, preset, overrides) in entries.items():
        overrides = dict(overrides)
        if _VGG.value and "GAN" in name:
            overrides.update({"loss.vgg_weights": _VGG.value, "loss.perceptual_weight": 0.2})
        config = load_config(filename, preset, overrides, steps=_STEPS.value)
        result, minutes = run_or_read(config, entry_dir(_WORKDIR.value, name))
        rows.append((name, f"configs/{filename}:{preset}", int(config.total_steps), minutes, result))
    lines = [
        "| model | config | steps | minutes | Y-PSNR | Y-SSIM | tOF ↓ |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, config_name, steps, minutes, r in rows:
        m = f"{minutes:.1f}" if minutes is not None else "–"
        lines.append(
            f"| {name} | `{config_name}` | {steps} | {m} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['tof']:.3f} |"
        )
    r = rows[0][-1]
    lines.append(f"| bicubic | | | | {r['bicubic_psnr_y']:.2f} | {r['bicubic_ssim_y']:.4f} | {r['bicubic_tof']:.3f} |")
    lines += [
        "",
        f"×4 on the bundled held-out shots ({r['num_frames']} frames), Y channel (BT.601), crop 4; tOF as TecoGAN's "
        f"metrics.py (all frames); {machine_line()}.",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(_WORKDIR.value, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
