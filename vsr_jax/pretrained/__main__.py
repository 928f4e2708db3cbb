"""`python -m vsr_jax.pretrained list|import`: published weight files in vsr_jax.

``list``: the published weight files vsr_jax knows by name. For each: our architecture and
scale, the task it was trained for, its parameters (counted from our port, so the size of
its float32 weights), the published score it was reported with, its source and licence,
and the authors' URL. Nothing is downloaded.

``import FILE RUN_DIR [--arch=NAME] [--scale=N] [--options=k=v,...]``: a state_dict (.pth or
.npz) -> a run folder (config + checkpoint) that ``vsr-eval --workdir=RUN_DIR`` and
``vsr-upscale IN -o OUT --workdir=RUN_DIR`` read like a trained run
(`vsr_jax.pretrained.importer`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def rows() -> list[dict]:
    from vsr_jax import models
    from vsr_jax.models import stats
    from vsr_jax.pretrained import registry

    out = []
    for e in registry.ENTRIES.values():
        params = stats.count_params(models.create_model(e.arch, e.scale, e.kwargs))
        out.append(
            {
                "name": e.name,
                "arch": e.arch,
                "scale": e.scale,
                "task": e.task,
                "params": params,
                "mb": params * 4 / 1e6,
                "score": e.score,
                "source": e.source,
                "url": e.url,
            }
        )
    return out


def main(argv=None) -> int:
    prog = "python -m vsr_jax.pretrained"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="the published weight files known by name")
    lister.add_argument("--json", action="store_true", help="print JSON instead of a table")
    imp = sub.add_parser("import", help="a state_dict (.pth/.npz) -> a run folder for vsr-eval/vsr-upscale")
    imp.add_argument("file", help="the weight file: a PyTorch .pth or an .npz state_dict")
    imp.add_argument("run_dir", help="the run folder to write (new or empty; never overwritten)")
    imp.add_argument("--arch", help="the architecture (default: recognised from the keys)")
    imp.add_argument("--scale", type=int, help="the scale (default: from the shapes)")
    imp.add_argument("--options", default="", help="model options the shapes do not show, k=v,... (res_scale=0.1)")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_command(args, prog)
    table = rows()
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    print("| name | architecture | scale | task | params | float32 MB | published score | source |")
    print("|---|---|---:|---|---:|---:|---|---|")
    for r in table:
        print(
            f"| {r['name']} | `{r['arch']}` | ×{r['scale']} | {r['task']} | {r['params']:,} | {r['mb']:.1f} | "
            f"{r['score']} | {r['source']} |"
        )
    return 0


def import_command(args, prog: str) -> int:
    from vsr_jax.errors import UserError
    from vsr_jax.pretrained import importer

    try:
        options = importer.parse_options(args.options)
        spec, _ = importer.import_weights(args.file, args.run_dir, arch=args.arch, scale=args.scale, options=options)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    opts = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items())
    print(
        f"wrote {args.run_dir}: {spec.arch} x{spec.scale} ({opts}), {spec.num_frames} frame(s); "
        f"use it with vsr-eval --workdir={args.run_dir} or vsr-upscale IN -o OUT --workdir={args.run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
