"""`vsr-bench upscale`: the upscaler's speed and memory, measured in one run.

    vsr-bench upscale                                   # random-weight gan.py:quick model
    vsr-bench upscale --workdir=RUN --lengths=100,1000 --size=180x320
    vsr-bench upscale --model_config=configs/srcnn.py --bf16

For each clip length it encodes a synthetic clip of that many frames (a pattern moving a
pixel per frame, with an AAC track), upscales it with `vsr-upscale` in a fresh process,
and reports frames/s, the process's peak resident memory (RSS), and how busy each
pipeline stage was (decode / model / encode, seconds and share of the wall time: the
busiest stage is the bottleneck). Peak RSS must not grow with the length of the video:
the ratio of the longest clip's to the shortest's is printed and checked (≤ 1.1).
Without --workdir the model is the config's, with random weights (speed does not depend
on the values). `--json=FILE` also writes the rows, for `experiments/upscale_table.py`,
which runs this and publishes the README table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

from vsr_jax import cli, fileio
from vsr_jax.errors import UserError

RSS_GROWTH_LIMIT = 1.1


def _load_config(spec: str):
    path, _, preset = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("bench_config", path)
    if module_spec is None or not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(preset) if preset else module.get_config()


def write_random_checkpoint(workdir: str, config, *, noise: float = 0.01, step: int = 0, seed: int = 0) -> None:
    """A run folder holding the config's model with random weights at `step`: the init
    plus `noise`·N(0,1) on every weight (zero-initialised output convs would make it plain
    bicubic), both drawn from `seed`."""
    import jax
    import jax.numpy as jnp

    from vsr_jax import checkpointing, config_lib, models

    model = config_lib.build_model(config)
    t = int(config.data.num_frames)
    init_key, noise_key = jax.random.split(jax.random.key(seed))
    params = models.init_variables(model, init_key, jnp.zeros((1, max(t, 1), 16, 16, 3)))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(noise_key, len(leaves))
    params = jax.tree.unflatten(
        tree, [x + noise * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    )
    checkpointing.write_run(workdir, config, params, step=step)


def write_clip(path: str, frames: int, height: int, width: int, rate: int = 25) -> None:
    """A synthetic H.264 clip: smooth noise moving a pixel per frame, with a stereo AAC track."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    coarse = rng.random((height // 8 + 2, (width + frames) // 8 + 2, 3)).astype(np.float32)
    import cv2

    big = cv2.resize(coarse, (coarse.shape[1] * 8, coarse.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big * 255, 0, 255).astype(np.uint8)
    with av.open(path, "w") as out:
        v = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[:height, i : i + width]), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        n = frames * 48000 // rate // 1024 * 1024
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
        for i in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.stack([tone[i : i + 1024]] * 2), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, i
            out.mux(a.encode(af))
        out.mux(a.encode(None))


_WROTE = re.compile(
    r"wrote .*: (\d+) frames, ([\d.]+) frames/s \(busy s: decode ([\d.]+), model ([\d.]+) \+ first chunk "
    r"([\d.]+), encode ([\d.]+)\)"
)


def upscale_once(clip: str, out: str, workdir: str, extra: list[str]) -> dict:
    """Runs vsr-upscale in a fresh process: its frames/s, stage times and peak RSS."""
    cmd = [sys.executable, "-m", "vsr_jax.upscale", "--noprogress", clip, "-o", out, f"--workdir={workdir}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    match = _WROTE.search(stderr)
    if os.waitstatus_to_exitcode(status) != 0 or not match:
        raise UserError(f"vsr-upscale failed:\n{stderr[-3000:]}{stdout[-500:]}")
    frames, fps, decode, model, first, encode = (float(x) for x in match.groups())
    return {
        "frames": int(frames),
        "fps": fps,
        "decode_s": decode,
        "model_s": model,
        "first_chunk_s": first,
        "encode_s": encode,
        "process_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
    }


def main(argv: list[str]) -> None:
    """`vsr-bench upscale ARGS` (`vsr_jax.bench` hands it `argv`); exits with the status."""
    cli.call(measure, argv, prog="vsr-bench upscale")


def measure(argv: list[str]) -> int:
    """The benchmark: 0, or 1 when peak memory grows with the clip's length."""
    parser = argparse.ArgumentParser(prog="vsr-bench upscale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="", help="training run to use (default: random weights of --model_config)")
    parser.add_argument(
        "--model_config", default="configs/gan.py:quick", help="config file[:preset] for random weights"
    )
    parser.add_argument("--lengths", default="100,1000", help="clip lengths in frames, comma-separated")
    parser.add_argument("--size", default="180x320", help="LR frame size HxW")
    parser.add_argument("--keep", default="", help="keep the clips and outputs in this folder")
    parser.add_argument("--json", default="", help="also write the rows and the setup as JSON here")
    args, extra = parser.parse_known_args(argv)  # other flags go to vsr-upscale (--bf16, --tile, --crf, ...)
    height, width = (int(x) for x in args.size.lower().split("x"))
    lengths = [int(x) for x in args.lengths.split(",")]
    root = args.keep or tempfile.mkdtemp(prefix="vsr-bench-upscale-")
    os.makedirs(root, exist_ok=True)
    workdir = args.workdir
    if not workdir:
        config = _load_config(args.model_config)
        workdir = os.path.join(root, "random_" + re.sub(r"[^A-Za-z0-9]+", "_", args.model_config).strip("_"))
        if not os.path.isdir(workdir):
            write_random_checkpoint(workdir, config)
        label = f"{args.model_config} (random weights)"
    else:
        label = workdir
    import jax

    print(f"model: {label}; LR {height}x{width}; backend {jax.default_backend()}; vsr-upscale flags: {extra or '-'}")
    rows = []
    for n in lengths:
        clip, out = os.path.join(root, f"clip_{n}.mp4"), os.path.join(root, f"out_{n}.mp4")
        if not os.path.exists(clip):
            write_clip(clip, n, height, width)
        if os.path.exists(out):
            os.remove(out)
        rows.append(upscale_once(clip, out, workdir, [*extra, "--overwrite"]))
    print(
        f"{'frames':>7} {'frames/s':>9} {'peak RSS MB':>12} {'decode s':>9} {'model s':>8} {'1st chunk s':>12} "
        f"{'encode s':>9}  bottleneck after the first chunk (compilation)"
    )
    for r in rows:
        stages = {"decode": r["decode_s"], "model": r["model_s"], "encode": r["encode_s"]}
        busiest = max(stages, key=stages.get)
        rest = max(r["frames"] / r["fps"] - r["first_chunk_s"], 1e-9)
        print(
            f"{r['frames']:>7} {r['fps']:>9.2f} {r['peak_rss_mb']:>12.0f} {r['decode_s']:>9.1f} {r['model_s']:>8.1f} "
            f"{r['first_chunk_s']:>12.1f} {r['encode_s']:>9.1f}  {busiest} ({100 * stages[busiest] / rest:.0f}% of "
            f"the other {rest:.0f} s)"
        )
    if args.json:  # for experiments/upscale_table.py, which publishes the README table
        setup = {"model": label, "size": f"{height}x{width}", "flags": extra, "backend": jax.default_backend()}
        setup["device"] = str(jax.devices()[0].device_kind)
        fileio.write_json(args.json, {**setup, "rows": rows}, indent=1)
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        verdict = "ok" if ratio <= RSS_GROWTH_LIMIT else "FAIL: memory grows with length"
        print(
            f"peak RSS {rows[-1]['frames']} / {rows[0]['frames']} frames: {ratio:.3f} "
            f"(limit {RSS_GROWTH_LIMIT}) {verdict}"
        )
        if ratio > RSS_GROWTH_LIMIT:
            return 1
    return 0
