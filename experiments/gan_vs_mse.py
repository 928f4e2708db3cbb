"""Regenerates the README table "MSE only vs GAN".

Trains the recurrent video GAN's `:quick` preset (configs/gan.py) at ×4 on the bundled
sample clips twice for the same number of steps:

- "MSE only": the generator alone on its warm-up objective (pixel MSE + the flow
  network's warp loss; FRVSR), no discriminator, no ping-pong;
- "GAN": the full preset: the same warm-up, then + ping-pong + adversarial loss from the
  spatio-temporal discriminator (and VGG19 perceptual when `--vgg_weights` is given);

and, with `--image`, the same pair for single-image SR (configs/srgan.py: SRResNet on its
pixel loss alone vs SRGAN with the VGG-style discriminator). The final checkpoints are
scored by the metrics binary in one batch call: Y-PSNR / Y-SSIM (crop 4) and TecoGAN's
tOF (lower is better), with bicubic under the same protocol. `--full` trains the full
recipes on Vimeo-90K. Finished runs are read, not retrained.

    python experiments/gan_vs_mse.py --workdir=runs/gan_vs_mse [--image] [--steps=N] [--vgg_weights=F]
"""

from __future__ import annotations

import dataclasses

from absl import app, flags
from common import Entry, data_line, evaluate, machine_line, minutes, publish, train

NO_GAN = {"gan.loss": "", "loss.pingpong_weight": 0.0, "loss.perceptual_weight": 0.0}
ENTRIES = [
    Entry("recurrent_gan, MSE only", "gan.py", overrides=NO_GAN),
    Entry("recurrent_gan, GAN", "gan.py"),
]
IMAGE_ENTRIES = [
    Entry("srresnet, MSE only", "srgan.py", overrides={"gan.loss": "", "loss.perceptual_weight": 0.0}),
    Entry("srresnet, GAN (SRGAN)", "srgan.py"),
]

_IMAGE = flags.DEFINE_bool("image", False, "Also compare SRResNet (MSE) with SRGAN.")
_VGG = flags.DEFINE_string("vgg_weights", "", "VGG19 weights file: adds the perceptual term to the GAN entries.")


def main(argv):
    del argv
    entries = ENTRIES + (IMAGE_ENTRIES if _IMAGE.value else [])
    if _VGG.value:
        vgg = {"loss.vgg_weights": _VGG.value, "loss.perceptual_weight": 0.2}
        entries = [dataclasses.replace(e, overrides={**e.overrides, **vgg}) if "GAN" in e.name else e for e in entries]
    workdirs = [train(e) for e in entries]
    results = evaluate(workdirs)
    lines = [
        "| model | config | steps | minutes | Y-PSNR | Y-SSIM | tOF ↓ |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for e, w, r in zip(entries, workdirs, results, strict=True):
        m = minutes(w)
        lines.append(
            f"| {e.name} | `{e.config_name}` | {r['step']} | {'–' if m is None else f'{m:.1f}'} | "
            f"{r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['tof']:.3f} |"
        )
    r = results[0]
    lines.append(f"| bicubic | | | | {r['bicubic_psnr_y']:.2f} | {r['bicubic_ssim_y']:.4f} | {r['bicubic_tof']:.3f} |")
    lines += [
        "",
        f"{data_line(results)}; tOF as TecoGAN's metrics.py (all frames); scored by `vsr-eval` in batch mode; "
        f"{machine_line()}.",
    ]
    publish("gan_vs_mse", "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
