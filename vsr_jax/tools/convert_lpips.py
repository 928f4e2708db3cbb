"""Converts LPIPS weights (the lpips package's linear layers + torchvision's backbone) to one .npz.

    python -m vsr_jax.tools.convert_lpips --net=alex alex.pth alexnet-owt-7be5be79.pth OUT.npz
    python -m vsr_jax.tools.convert_lpips --net=vgg vgg.pth vgg16-397923af.pth OUT.npz

LIN is ``lpips/weights/v0.1/<net>.pth`` of the lpips pip package; BACKBONE the torchvision
ImageNet weights of the same net. Reading .pth files needs torch (run this where it is
installed); the .npz is then used without torch: `vsr-eval --lpips_weights=OUT.npz`.
Bad input prints one line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "python -m vsr_jax.tools.convert_lpips"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Convert LPIPS weights to vsr_jax's .npz.")
    parser.add_argument("lin", help="the lpips package's linear layers: alex.pth or vgg.pth")
    parser.add_argument("backbone", help="torchvision weights: alexnet-owt-7be5be79.pth or vgg16-397923af.pth")
    parser.add_argument("output", help="the .npz to write")
    parser.add_argument("--net", choices=("alex", "vgg"), default="alex")
    args = parser.parse_args(argv)
    from vsr_jax import lpips
    from vsr_jax.errors import UserError

    try:
        for path in (args.lin, args.backbone):
            if not os.path.isfile(path):
                raise UserError(f"{path} not found: LPIPS needs {lpips.WHERE}")
        try:
            import torch
        except ImportError:
            raise UserError("reading .pth files needs torch: run this where torch is installed") from None
        lin = torch.load(args.lin, map_location="cpu", weights_only=True)
        backbone = torch.load(args.backbone, map_location="cpu", weights_only=True)
        lpips.save_lpips(args.output, lpips.from_state_dicts(lin, backbone, args.net), args.net)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: LPIPS-{args.net}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
