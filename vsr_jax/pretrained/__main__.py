"""`python -m vsr_jax.pretrained list`: the published weight files vsr_jax knows by name.

For each: our architecture and scale, the task it was trained for, its parameters (counted
from our port, so the size of its float32 weights), the published score it was reported
with, its source and licence, and the authors' URL. Nothing is downloaded.
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
    parser = argparse.ArgumentParser(prog="python -m vsr_jax.pretrained", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list"])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
