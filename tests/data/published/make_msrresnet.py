"""Writes msrresnet.npz: BasicSR 1.4.2's own MSRResNet on random weights (see README.md).

Run in the reference venv (never the project's):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_msrresnet.py

Contents (all float32 unless said): ``input`` (2, 11, 13, 3) NHWC in [0, 1]; per scale s in
2, 3, 4: ``x{s}/sd/<state_dict key>`` (a narrow net: 8 features, 2 blocks, every weight and
bias drawn at random) and ``x{s}/output`` (2, 11·s, 13·s, 3) NHWC; ``param_count_x4_64_16``
(int64): parameters of the published size (×4, 64 features, 16 blocks); ``meta``: versions.
"""

from __future__ import annotations

import pathlib

import basicsr
import numpy as np
import torch
from basicsr.archs.srresnet_arch import MSRResNet

OUT = pathlib.Path(__file__).with_name("msrresnet.npz")
NUM_FEAT, NUM_BLOCK = 8, 2


def perturb(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter at random (weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1²)): no zero
    or BasicSR-init value that could hide a wrong mapping."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight"):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(19)
    x = torch.rand((2, 3, 11, 13), generator=gen)
    arrays = {"input": x.permute(0, 2, 3, 1).numpy()}
    for scale in (2, 3, 4):
        net = MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=NUM_FEAT, num_block=NUM_BLOCK, upscale=scale).eval()
        perturb(net, gen)
        sd = net.state_dict()
        assert set(sd) == {n for n, _ in net.named_parameters()}, "buffers in the state_dict"
        for key, value in sd.items():
            arrays[f"x{scale}/sd/{key}"] = value.numpy()
        with torch.no_grad():
            y = net(x.clone())
        arrays[f"x{scale}/output"] = y.permute(0, 2, 3, 1).numpy()
    published = MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4)
    arrays = {k: np.array(v, dtype=np.float32, order="C") for k, v in arrays.items()}
    arrays["param_count_x4_64_16"] = np.int64(sum(p.numel() for p in published.parameters()))
    arrays["meta"] = np.array(f"basicsr {basicsr.__version__}, torch {torch.__version__}")
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); published x4 params: {arrays['param_count_x4_64_16']}")


if __name__ == "__main__":
    main()
