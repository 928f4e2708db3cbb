"""`python -m vsr_jax.pretrained list|import`: published weight files in vsr_jax.

``list [--json|--markdown]``: the published weight files vsr_jax knows by name. For each: our
architecture and scale, the task it was trained for, where it comes from and its licence, the
published score it was reported with (and where), its size (the float32 parameters of our
port, counted, when the release page gives none) and whether it is in the weights cache
already; ``--json`` adds the URLs, the cache paths and how each file is verified. Nothing is
downloaded. Files marked "by hand" are on Google Drive only: put them at their cache path.

``fetch NAME...``: downloads those files (and a denoise twin) into the weights cache and prints
their paths, e.g. on a connected machine before working offline.

``import FILE RUN_DIR [--arch=NAME] [--scale=N] [--options=k=v,...]``: a state_dict (.pth or
.npz) -> a run folder (config + checkpoint) that ``vsr-eval --workdir=RUN_DIR`` and
``vsr-upscale IN -o OUT --workdir=RUN_DIR`` read like a trained run
(`vsr_jax.pretrained.importer`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

from vsr_jax import cli

PROG = "python -m vsr_jax.pretrained"

os.environ.setdefault("JAX_PLATFORMS", "cpu")


@functools.cache
def _count_params(arch: str, scale: int, kwargs: tuple) -> int:
    from vsr_jax import models
    from vsr_jax.models import stats

    return stats.count_params(models.create_model(arch, scale, dict(kwargs)))


def rows() -> list[dict]:
    """One dict per registry entry: the table's columns, and everything else the entry says."""
    from vsr_jax import models
    from vsr_jax.pretrained import registry

    out = []
    for e in registry.ENTRIES.values():
        params = None
        if e.runnable and e.arch in models.available():
            params = _count_params(e.arch, e.scale, tuple(sorted(e.kwargs.items())))
        out.append(
            {
                "name": e.name,
                "arch": e.arch,
                "scale": e.scale or None,
                "task": e.task,
                "params": params,
                "mb": None if params is None else params * 4 / 1e6,
                "size": e.size,
                "score": e.score,
                "origin": e.origin,
                "licence": e.licence,
                "source": e.source,
                "url": e.url,
                "file": e.filename,
                "twin": e.twin,
                "manual": e.manual,
                "verified_by": e.verified_by,
                "sha256": e.sha256,
                "runnable": e.runnable and e.arch in models.available(),
                "cached": registry.is_cached(e),
                "cache_path": registry.cache_path(e),
            }
        )
    return out


def _size(r: dict) -> str:
    if r["size"]:
        return f"{r['size'] / 1e6:.1f} MB"
    return f"~{r['mb']:.1f} MB" if r["mb"] is not None else "—"


def _scale(r: dict) -> str:
    return f"×{r['scale']}" if r["scale"] else "—"


def markdown(table: list[dict]) -> list[str]:
    """The README's table (no machine-specific columns)."""
    lines = [
        "| name | architecture | scale | task | source, licence | published score | params | get |",
        "|---|---|---:|---|---|---|---:|---|",
    ]
    for r in table:
        params = f"{r['params']:,}" if r["params"] is not None else "—"
        get = "by hand" if r["manual"] else "download"
        lines.append(
            f"| {r['name']} | `{r['arch']}` | {_scale(r)} | {r['task']} | {r['origin']}, {r['licence']} | "
            f"{r['score']} | {params} | {get} |"
        )
    return lines


def text(table: list[dict], folder: str) -> list[str]:
    """An aligned plain-text table for a terminal, with whether each file is in the cache."""
    head = ("name", "arch", "scale", "task", "source, licence", "size", "cache", "published score")
    body = [
        (
            r["name"],
            r["arch"],
            _scale(r),
            r["task"],
            f"{r['origin']}, {r['licence']}",
            _size(r),
            "yes" if r["cached"] else ("by hand" if r["manual"] else "-"),
            r["score"],
        )
        for r in table
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in [head, *body]]
    lines.append(
        f"cache: {folder} (size: ~ float32 params of our port; 'by hand': put the file there, see --json for the page)"
    )
    return [line.rstrip() for line in lines]


def main(argv=None) -> int:
    prog = PROG
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="the published weight files known by name")
    form = lister.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON (every field of every entry)")
    form.add_argument("--markdown", action="store_true", help="print the README's Markdown table")
    fetcher = sub.add_parser("fetch", help="download published files into the weights cache (for offline use)")
    fetcher.add_argument("names", nargs="+", help="names from `list` (a model with a denoise twin: both files)")
    imp = sub.add_parser("import", help="a state_dict (.pth/.npz) -> a run folder for vsr-eval/vsr-upscale")
    imp.add_argument("file", help="the weight file: a PyTorch .pth or an .npz state_dict")
    imp.add_argument("run_dir", help="the run folder to write (new or empty; never overwritten)")
    imp.add_argument("--arch", help="the architecture (default: recognised from the keys)")
    imp.add_argument("--scale", type=int, help="the scale (default: from the shapes)")
    imp.add_argument("--options", default="", help="model options the shapes do not show, k=v,... (res_scale=0.1)")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_command(args)
    if args.command == "fetch":
        return fetch_command(args.names, prog)
    from vsr_jax.pretrained import download

    table = rows()
    if args.json:
        print(json.dumps(table, indent=1))
    elif args.markdown:
        print("\n".join(markdown(table)))
    else:
        print("\n".join(text(table, download.weights_dir())))
    return 0


def fetch_command(names: list[str], prog: str) -> int:
    """Each name's file (and twin) into the weights cache; prints the paths. One line per failure."""
    from vsr_jax.errors import UserError
    from vsr_jax.pretrained import registry

    failed = 0
    for name in names:
        try:
            entry = registry.get(name)
            for twin in (False, True) if entry.twin else (False,):
                print(registry.fetch(entry, twin=twin))
        except UserError as e:  # one line each; the other names are still fetched
            print(cli.error_line(prog, e), file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def import_command(args) -> int:
    """Raises UserError for a bad file or run folder (`cli.call` makes it one line and exit 1)."""
    from vsr_jax.pretrained import importer

    options = importer.parse_options(args.options)
    spec, _ = importer.import_weights(args.file, args.run_dir, arch=args.arch, scale=args.scale, options=options)
    opts = ", ".join(f"{k}={v}" for k, v in spec.kwargs.items())
    print(
        f"wrote {args.run_dir}: {spec.arch} x{spec.scale} ({opts}), {spec.num_frames} frame(s); "
        f"use it with vsr-eval --workdir={args.run_dir} or vsr-upscale IN -o OUT --workdir={args.run_dir}"
    )
    return 0


if __name__ == "__main__":
    cli.call(main, sys.argv[1:], prog=PROG)
