"""`python -m vsr_jax.models --list`: every registered model with its size and cost.

Prints parameters and forward GFLOPs per output frame (XLA cost analysis) for each model's
default (published-size) configuration at one scale and LR frame size; video models are
measured on clips of `--frames` frames. Nothing is trained or downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsr_jax.models", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the models (the default action)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--height", type=int, default=180, help="LR frame height")
    parser.add_argument("--width", type=int, default=320, help="LR frame width")
    parser.add_argument("--frames", type=int, default=7, help="clip length for video models")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    from vsr_jax import models
    from vsr_jax.models import stats

    rows = []
    for name in models.available():
        model = models.create_model(name, args.scale)
        shape = (1, args.frames, args.height, args.width, 3)
        rows.append(
            {
                "model": name,
                "params": stats.count_params(model),
                "gflops_per_frame": stats.flops_per_frame(model, shape) / 1e9,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"x{args.scale}, LR {args.height}x{args.width} -> {args.height * args.scale}x{args.width * args.scale}")
    print(f"{'model':<16}{'params':>14}{'GFLOPs/frame':>16}")
    for r in rows:
        print(f"{r['model']:<16}{r['params']:>14,}{r['gflops_per_frame']:>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
