"""Regenerates the README tables "Models" and "Every model after a short CPU run".

1. Sizes: parameters and forward GFLOPs per output frame (XLA cost analysis, ×4, LR
   180×320 -> 720×1280) of every registered model at its default (published) size, with
   BasicVSR's published parameter count for reference.
2. Short runs: trains each recipe's `:quick` preset at ×4 on the bundled sample clips in
   WORKDIR/<entry>, evaluates on the held-out shots (Y-PSNR/Y-SSIM, crop 4, the bicubic
   baseline under the same protocol), and tabulates them with the trained network's size.
   An entry whose WORKDIR/<entry>/eval/metrics.json exists is read, not retrained, so an
   interrupted run continues where it stopped.

Tables are printed and written to WORKDIR/tables.md.
"""

from __future__ import annotations

import os

from absl import app, flags
from common import entry_dir, load_config, machine_line, run_or_read

# entry -> (config file, preset, overrides); every entry trains at ×4.
ENTRIES = {
    "srcnn": ("srcnn.py", "quick", {}),
    "unet": ("unet.py", "quick", {"data.patch_size": 32, "total_steps": 300}),
    "runet": ("runet.py", "quick", {}),
    "srresnet": ("srresnet.py", "quick", {}),
    "convlstm_vsr": ("convlstm.py", "quick", {}),
    "convlstm_vsr (bidirectional)": ("convlstm.py", "quick", {"model.bidirectional": True}),
    # FRVSR: the video GAN's generator trained alone (pixel + flow loss, its warm-up objective)
    "recurrent_gan (no D)": ("gan.py", "quick", {"gan.loss": "", "loss.pingpong_weight": 0.0}),
}
BASICVSR = ("BasicVSR (Chan et al., 2021; published)", 6_300_000)

_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory for the runs.", required=True)
_ONLY = flags.DEFINE_list(
    "only", [], f"Train only these entries (default all; the table shows every finished one): {', '.join(ENTRIES)}."
)
_STEPS = flags.DEFINE_integer("steps", 0, "Override every entry's training steps (0: the preset's).")


def size_table() -> str:
    from vsr_jax import models
    from vsr_jax.models import stats

    rows = [
        "| model | params | GFLOPs / frame (×4, 180×320 → 720×1280) |",
        "|---|---:|---:|",
    ]
    for name in models.available():
        model = models.create_model(name, 4)
        params = stats.count_params(model)
        gflops = stats.flops_per_frame(model, (1, 7, 180, 320, 3)) / 1e9
        rows.append(f"| `{name}` | {params / 1e6:.2f} M | {gflops:.0f} |")
    rows.append(f"| {BASICVSR[0]} | {BASICVSR[1] / 1e6:.1f} M | |")
    return "\n".join(rows)


def train_entry(name: str, *, train_if_missing: bool = True) -> dict | None:
    from vsr_jax import config_lib, models
    from vsr_jax.models import stats

    filename, preset, overrides = ENTRIES[name]
    config = load_config(filename, preset, overrides, steps=_STEPS.value)
    done = run_or_read(config, entry_dir(_WORKDIR.value, name), train_if_missing=train_if_missing)
    if done is None:
        return None
    result, minutes = done
    model = models.create_model(config.model.name, 4, config_lib.model_kwargs(config))
    t = int(config.data.num_frames)
    return {
        "entry": name,
        "config": f"configs/{filename}:{preset}",
        "steps": int(config.total_steps),
        "params": stats.count_params(model, (1, t, 32, 32, 3)),
        "gflops": stats.flops_per_frame(model, (1, 7, 180, 320, 3)) / 1e9,
        "minutes": minutes,
        **{k: result[k] for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y", "num_frames")},
    }


def results_table(rows: list[dict]) -> str:
    lines = [
        "| model | config | params | GFLOPs/frame | steps | minutes | Y-PSNR | Y-SSIM | Δ PSNR vs bicubic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        minutes = f"{r['minutes']:.1f}" if r["minutes"] is not None else "–"
        lines.append(
            f"| `{r['entry']}` | `{r['config']}` | {r['params'] / 1e6:.3f} M | {r['gflops']:.0f} | {r['steps']} | "
            f"{minutes} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['psnr_y'] - r['bicubic_psnr_y']:+.2f} dB |"
        )
    if rows:
        r = rows[0]
        lines.append(f"| bicubic | | | | | | {r['bicubic_psnr_y']:.2f} | {r['bicubic_ssim_y']:.4f} | |")
    lines.append("")
    lines.append(
        f"×4 on the bundled held-out shots ({rows[0]['num_frames'] if rows else 0} frames), Y channel (BT.601), "
        f"crop 4; minutes are wall clock including start-up and evaluation on {machine_line()} (upper bounds "
        "when the machine ran other work meanwhile)."
    )
    return "\n".join(lines)


def main(argv):
    del argv
    unknown = sorted(set(_ONLY.value) - set(ENTRIES))
    if unknown:
        raise app.UsageError(f"unknown entries {unknown}; choose from {list(ENTRIES)}")
    os.makedirs(_WORKDIR.value, exist_ok=True)
    sizes = size_table()
    print(sizes, flush=True)
    for name in _ONLY.value or ENTRIES:
        train_entry(name)
    rows = [r for name in ENTRIES if (r := train_entry(name, train_if_missing=False))]
    text = "### Models\n\n" + sizes + "\n\n### Every model after a short CPU run\n\n" + results_table(rows) + "\n"
    with open(os.path.join(_WORKDIR.value, "tables.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
