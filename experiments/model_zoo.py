"""Regenerates the README tables "Models" (sizes) and "Every model after a short CPU run".

1. Sizes: parameters and forward GFLOPs per output frame (XLA cost analysis, ×4, LR
   180×320 -> 720×1280) of every registered model at its default (published) size, with
   BasicVSR's published parameter count for reference.
2. Runs: trains each recipe's `:quick` preset at ×4 on the bundled sample clips (`--full`:
   the full recipes on Vimeo-90K) in WORKDIR/<entry> with the training binary, scores the
   final checkpoints with the metrics binary in one batch call (Y-PSNR/Y-SSIM, crop 4, the
   bicubic baseline under the same protocol) and tabulates them with the network's size.
   Finished runs are read, not retrained; an interrupted one resumes.

    python experiments/model_zoo.py --workdir=runs/zoo [--only=srcnn,unet] [--steps=N] [--full]
"""

from __future__ import annotations

from absl import app, flags
from common import Entry, ExperimentError, data_line, evaluate, final_step, machine_line, minutes, publish, train

# every entry trains at ×4 (the :quick presets of image recipes are ×4 already except the U-Net)
ENTRIES = [
    Entry("srcnn", "srcnn.py"),
    Entry("unet", "unet.py", overrides={"data.scale": 4, "data.patch_size": 32, "total_steps": 300}),
    Entry("runet", "runet.py"),
    Entry("srresnet", "srresnet.py"),
    Entry("convlstm_vsr", "convlstm.py"),
    Entry("convlstm_vsr (bidirectional)", "convlstm.py", overrides={"model.bidirectional": True}),
    # FRVSR: the video GAN's generator trained alone (pixel + flow loss, its warm-up objective)
    Entry(
        "recurrent_gan (no D)",
        "gan.py",
        overrides={"gan.loss": "", "loss.pingpong_weight": 0.0},
        full_overrides={"gan.loss": "", "loss.pingpong_weight": 0.0, "loss.perceptual_weight": 0.0},
    ),
]

_ONLY = flags.DEFINE_list(
    "only",
    [],
    "Train only these entries (default all; the table shows every finished one): " + ", ".join(e.name for e in ENTRIES),
)


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
    return "\n".join(rows)


def network_size(workdir: str) -> tuple[int, float]:
    """(parameters, forward GFLOPs per frame at 180×320 ×4) of the run's trained network."""
    import json

    import ml_collections

    from vsr_jax import config_lib
    from vsr_jax.models import stats

    with open(f"{workdir}/config.json") as f:
        config = ml_collections.ConfigDict(json.load(f))
    model = config_lib.build_model(config)
    t = int(config.data.num_frames)
    return stats.count_params(model, (1, t, 32, 32, 3)), stats.flops_per_frame(model, (1, 7, 180, 320, 3)) / 1e9


def results_table(entries: list[Entry], workdirs: list[str], results: list[dict]) -> str:
    lines = [
        "| model | config | params | GFLOPs/frame | steps | minutes | Y-PSNR | Y-SSIM | Δ PSNR vs bicubic |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e, w, r in zip(entries, workdirs, results, strict=True):
        params, gflops = network_size(w)
        m = minutes(w)
        lines.append(
            f"| `{e.name}` | `{e.config_name}` | {params / 1e6:.3f} M | {gflops:.0f} | {r['step']} | "
            f"{'–' if m is None else f'{m:.1f}'} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | "
            f"{r['psnr_y'] - r['bicubic_psnr_y']:+.2f} dB |"
        )
    r = results[0]
    lines.append(f"| bicubic | | | | | | {r['bicubic_psnr_y']:.2f} | {r['bicubic_ssim_y']:.4f} | |")
    lines += [
        "",
        f"{data_line(results)}; scored by `vsr-eval` in batch mode; minutes are the training command's wall "
        f"clock (start-up and its own final evaluation included) on {machine_line()}.",
    ]
    return "\n".join(lines)


def main(argv):
    del argv
    names = [e.name for e in ENTRIES]
    unknown = sorted(set(_ONLY.value) - set(names))
    if unknown:
        raise ExperimentError(f"unknown entries {unknown}; choose from {names}")
    publish("model_sizes", size_table())
    for e in ENTRIES:
        if not _ONLY.value or e.name in _ONLY.value:
            train(e)
    done = [e for e in ENTRIES if final_step(e.run_dir()) is not None]
    if not done:
        raise ExperimentError("no entry has finished training")
    workdirs = [e.run_dir() for e in done]
    results = evaluate(workdirs)
    publish("model_zoo", results_table(done, workdirs, results))


if __name__ == "__main__":
    app.run(main)
