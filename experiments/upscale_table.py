"""Regenerates the README table of `vsr-upscale`'s speed and memory (block `upscale_bench`).

Runs `vsr-bench upscale` (`python -m vsr_jax.bench upscale --json=...`) once per case: a
model config with random weights (speed does not depend on them) and `vsr-upscale` flags,
on synthetic LR clips (a pattern moving a pixel per frame, with an AAC track) of each
length, upscaled ×4 to H.264 (crf 18, preset medium) by `vsr-upscale` in a fresh process.
It publishes frames/s, the upscaling process's peak RSS (and its growth from the shortest
clip to the longest), the busy seconds of decoder, model and encoder after the first
chunk, and the first chunk's time (compilation), with the date and machine of the run.

    python experiments/upscale_table.py --workdir=runs/upscale_bench     # a CPU: gan.py:quick, 80 and 160 frames
    python experiments/upscale_table.py --workdir=runs/upscale_bench --cases=gpu --lengths=100,1000

A case already measured with the same lengths (WORKDIR/<case>.json) is read, not rerun.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys

from absl import app, flags
from common import ROOT, WORKDIR, ExperimentError, machine_name, publish

from vsr_jax import fileio  # (on sys.path once common is imported)

_CASES = flags.DEFINE_string(
    "cases", "", "cpu, gpu, or one config file[:preset] (default: gpu when JAX sees an accelerator, else cpu)."
)
# The shortest clip must outlast the frames in flight (queues, x264's lookahead): on a 2-core
# CPU, peak RSS grew 1.19x from 20 frames to 100, and 1.02x from 80 to 160 (2026-11-30).
_LENGTHS = flags.DEFINE_string("lengths", "", "Clip lengths in frames (default: 80,160 on a CPU, 100,1000 else).")
_SIZE = flags.DEFINE_string("size", "180x320", "LR frame size HxW.")
_FROM_JSON = flags.DEFINE_string("from_json", "", "Publish this saved upscale_bench.json instead of measuring.")

_GAN = "recurrent_gan, `gan.py` (64 ch × 10 blocks)"
_TILES = ["--tile=96", "--tile_pad=16", "--tile_batch=8"]
_QUICK = "recurrent_gan, `gan.py:quick` (32 ch × 4 blocks)"
# (label, model config, vsr-upscale flags)
CASES = {
    "cpu": [(_QUICK, "configs/gan.py:quick", [])],
    "gpu": [
        (_GAN, "configs/gan.py", []),
        ("same, `--bf16`", "configs/gan.py", ["--bf16"]),
        ("same, `--tile=96 --tile_pad=16 --tile_batch=8`", "configs/gan.py", _TILES),
        (_QUICK, "configs/gan.py:quick", []),
    ],
}


def measure() -> dict:
    import jax

    kind = _CASES.value or ("cpu" if jax.default_backend() == "cpu" else "gpu")
    cases = CASES.get(kind) or [(f"`{kind}`", kind, [])]
    lengths = _LENGTHS.value or ("80,160" if jax.default_backend() == "cpu" else "100,1000")
    work = os.path.join(WORKDIR.value, "work")  # the clips and random-weight runs, shared by the cases
    results = []
    for label, config, extra in cases:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{config} {' '.join(extra)} {lengths}").strip("_")
        path = os.path.join(WORKDIR.value, f"{slug}.json")
        if not os.path.exists(path):
            cmd = [sys.executable, "-m", "vsr_jax.bench", "upscale", f"--model_config={os.path.join(ROOT, config)}"]
            cmd += [f"--lengths={lengths}", f"--size={_SIZE.value}", f"--keep={work}", f"--json={path}.tmp", *extra]
            print(f"\n### {label}: {' '.join(cmd[1:])}", flush=True)
            done = subprocess.run(cmd, cwd=ROOT)
            if done.returncode != 0:
                raise ExperimentError(f"vsr-bench upscale failed for {label!r} (exit {done.returncode})")
            os.replace(f"{path}.tmp", path)  # kept only when the benchmark passed (a failed one writes it too)
        with open(path) as f:
            results.append({"label": label, **json.load(f)})
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(),
        "jax": jax.__version__,
        "command": f"python experiments/upscale_table.py --cases={kind} --lengths={lengths} --size={_SIZE.value}",
        "cases": results,
    }


def markdown(result: dict) -> str:
    """The README table: one row per case and clip length, then when, where and how it was measured."""
    lines = [
        "| model | frames | frames/s | peak RSS | decode / model / encode busy s (after the 1st chunk) "
        "| 1st chunk (compile) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for case in result["cases"]:
        first_rss = case["rows"][0]["peak_rss_mb"]
        for i, r in enumerate(case["rows"]):
            rss = f"{r['peak_rss_mb']:.0f} MB" + (f" (×{r['peak_rss_mb'] / first_rss:.3f})" if i else "")
            busy = f"{r['decode_s']:.1f} / {r['model_s']:.1f} / {r['encode_s']:.1f}"
            lines.append(
                f"| {case['label']} | {r['frames']} | {r['fps']:.2f} | {rss} | {busy} | {r['first_chunk_s']:.1f} s |"
            )
    size = result["cases"][0]["size"]
    lines += [
        "",
        f"{result['date']} · {result['machine']} · jax {result['jax']} · LR {size.replace('x', '×')} "
        f"to H.264, random weights · `{result['command']}`",
    ]
    return "\n".join(lines)


def main(argv):
    del argv
    os.makedirs(WORKDIR.value, exist_ok=True)
    if _FROM_JSON.value:
        with open(_FROM_JSON.value) as f:
            result = json.load(f)
    else:
        result = measure()
        fileio.write_json(os.path.join(WORKDIR.value, "upscale_bench.json"), result, indent=1)
    publish("upscale_bench", markdown(result))


if __name__ == "__main__":
    app.run(main)
