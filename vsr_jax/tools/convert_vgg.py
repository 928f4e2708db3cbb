"""Converts pretrained VGG16/VGG19 weights to vsr_jax's .npz (see `vsr_jax.vgg_weights`).

    python -m vsr_jax.tools.convert_vgg IN OUT.npz [--depth=19]

IN is a Keras applications .h5 (e.g. vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5),
a torchvision .pth (e.g. vgg19-dcbb9e9d.pth; read without torch by `vsr_jax.pretrained.pth`)
or one of our .npz files. The depth is read from the file unless given. OUT holds
``conv1_1/kernel`` (HWIO), ``conv1_1/bias``,
... and ``input_mode`` ("caffe" for Keras files, "torch" for torchvision ones); it is written
to a temporary file and renamed, so a failed run leaves no partial OUT. Bad input prints one
line on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys

PROG = "python -m vsr_jax.tools.convert_vgg"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Convert VGG16/VGG19 weights to vsr_jax's .npz.")
    parser.add_argument("input", help="Keras .h5, torchvision .pth or vsr_jax .npz weight file")
    parser.add_argument("output", help="the .npz to write")
    parser.add_argument("--depth", type=int, choices=(16, 19), default=None, help="16 or 19 (default: from the file)")
    return parser.parse_args(argv)


def convert(input_path, output_path, depth: int | None = None) -> str:
    """Reads `input_path`, writes `output_path`; returns a one-line summary."""
    from vsr_jax import vgg_weights

    params, input_mode = vgg_weights.load_vgg_params(input_path, depth)
    vgg_weights.save_vgg_params(output_path, params, input_mode)
    depth = vgg_weights.params_depth(params)
    widths = vgg_weights.params_widths(params)
    return f"wrote {output_path}: VGG{depth}, {len(params)} convs, widths {widths}, input_mode={input_mode}"


def main(argv=None) -> int:
    args = parse_args(argv)
    from vsr_jax.errors import UserError

    try:
        print(convert(args.input, args.output, args.depth))
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
