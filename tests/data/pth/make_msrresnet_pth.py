"""Writes msrresnet_x4.pth: the x4 state_dict of tests/data/published/msrresnet.npz saved
by torch as BasicSR saves its models ({"params": ...}, zip format), so a test can take a
real .pth through `python -m vsr_jax.pretrained import` to the authors' outputs.

Run in the reference venv (tests/data/published/README.md):
    PYTHONPATH=tests/data/published/refstub python tests/data/pth/make_msrresnet_pth.py
"""

import collections
import pathlib

import numpy as np
import torch

HERE = pathlib.Path(__file__).parent


def main():
    with np.load(HERE.parent / "published" / "msrresnet.npz") as f:
        sd = collections.OrderedDict(
            (k[len("x4/sd/") :], torch.from_numpy(f[k].copy())) for k in f.files if k.startswith("x4/sd/")
        )
    torch.save({"params": sd}, HERE / "msrresnet_x4.pth")


if __name__ == "__main__":
    main()
